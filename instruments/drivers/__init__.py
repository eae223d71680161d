"""PyMeasure drivers: PyMeasure's own where it has them, extended or written in its declarative style."""
