"""hil: hardware-in-loop experiments with stochastic spintronic devices."""

__version__ = "0.2.0"
