"""Waiting for a measurement running in another process to have committed trials to its session."""

import os
import subprocess
import sys
import time

PROBE = """
import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    d = f["runs/000/trials"] if "runs/000/trials" in f else None
    print(int(d.attrs["n_committed"]) if d is not None else 0)
"""


def wait_for_committed_trials(path, minimum, proc, timeout_s=60.0):
    """Poll the session (read-only, without HDF5 file locking) until ``minimum`` trials are committed."""
    env = {**os.environ, "HDF5_USE_FILE_LOCKING": "FALSE"}
    deadline = time.monotonic() + timeout_s
    committed = 0
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        probe = subprocess.run([sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env)
        if probe.returncode == 0 and probe.stdout.strip():
            committed = int(probe.stdout.strip())
        if committed >= minimum:
            return committed
    raise AssertionError(f"the measurement ended or stalled with {committed} trials committed")
