"""Design-space sweeps: sweep files, the points they compute, and sweeps run on Ray into a session."""
