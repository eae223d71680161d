"""Emulated instruments on loopback TCP, backed by one simulated chip and a virtual clock."""
