"""Offline tools on recorded sessions: what a session holds, its figures, calibration, replay against the
simulator and through the drivers."""
