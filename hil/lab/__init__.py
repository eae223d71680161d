"""The probe station from hil's side: connecting (emulated or real), identities, characterization runs."""
