"""Benchmarks: ``python -m benchmarks [--json] [--only NAME]``.

Each entry measures the project against a reference measured in the same run and reports rows
``{name, value, unit, reference, ratio, note}`` with ``ratio = value / reference``.
"""
