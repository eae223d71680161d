"""Waiting for a measurement running in another process to have committed units to its session."""

import time

import h5py


def committed_units(path, run="000"):
    """Units committed so far by run ``run`` of the session at ``path`` (read without file locking)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            units = f.get(f"runs/{run}/units")
            return int(units.attrs["n_committed"]) if units is not None else 0
    except (OSError, KeyError):  # not created yet, or caught between two writes
        return 0


def wait_for_committed_units(path, minimum, proc, timeout_s=120.0, run="000", may_end=False):
    """Poll the session until ``minimum`` units of ``run`` are committed while the process runs.

    A process that ends first is an error, unless ``may_end`` (then ``None`` is returned).
    """
    deadline = time.monotonic() + timeout_s
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        committed = committed_units(path, run)
        if committed >= minimum:
            return committed
        time.sleep(0.05)
    if may_end and proc.poll() is not None:
        return None
    raise AssertionError(f"the measurement ended or stalled with {committed} units committed")
