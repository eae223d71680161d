"""Instrument drivers, instrument roles and the probe station."""
