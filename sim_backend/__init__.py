"""Device physics (SOT stochastic neurons) and the emulated instruments that serve it."""

from sim_backend.chip import Chip, ChipConfigError, load_chip
from sim_backend.sot import logistic_from_neel_brown, switching_probability

__all__ = ["Chip", "ChipConfigError", "load_chip", "switching_probability", "logistic_from_neel_brown"]
