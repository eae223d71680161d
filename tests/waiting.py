"""Waiting for a measurement running in another process to have committed units to its session."""

import time

from hil.session.reader import committed_units


def wait_for_committed_units(path, minimum, proc, timeout_s=120.0, run=0, may_end=False):
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
