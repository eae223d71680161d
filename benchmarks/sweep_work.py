"""The work of the sweep benchmark's points: a fixed amount of CPU work (not a sleep), so that contention
between workers shows in the timings."""

from __future__ import annotations

import numpy as np


def matmuls(settings: dict, seed: int) -> dict:
    """``settings["repeats"]`` products of two 192 × 192 matrices on one thread; the trace as the metric."""
    import threadpoolctl

    rng = np.random.default_rng(seed)
    a = rng.standard_normal((192, 192))
    with threadpoolctl.threadpool_limits(1):
        for _ in range(int(settings["repeats"])):
            a = np.tanh(a @ a / 192.0)
    return {"trace": float(np.trace(a))}
