"""A first-order lag driven by a piecewise-constant input: ``τ dx/dt = y(t) − x``.

Two things on the bench behave this way: a Hall bar's temperature under Joule heating (``x`` the temperature,
``y`` the steady temperature of each segment's power, ``τ`` the thermal time constant) and the charge of a DC
block in series with the pulse generator (``x`` the capacitor's voltage, ``y`` the generator's level, ``τ =
R·C``). Within a segment of duration ``d`` the response is exact: ``x_end = y + (x_start − y)·e^(−d/τ)``, an
affine map of ``x_start``. A waveform is the composition of its segments' maps, computed for every prefix at once
by a doubling scan (log₂ of the number of segments vectorized passes, no loop over segments): a waveform of
10⁵ segments costs 17 passes.
"""

from __future__ import annotations

import torch


def settle(x0: torch.Tensor, targets: torch.Tensor, durations: torch.Tensor,
           tau: float | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The lag's value at the start and at the end of every segment.

    ``targets`` (rows, segments): the value each segment drives towards; ``durations`` (broadcast to it) in s;
    ``tau`` in s (a number, or a tensor broadcast to the rows, e.g. ``(rows, 1)``); ``x0`` (rows,) the value
    before the first segment. Returns ``(starts, ends)``, each (rows, segments), in float64.
    """
    y = targets.to(torch.float64)
    decay = torch.exp(-durations.to(torch.float64) / tau).expand_as(y)
    # x_k = a_k x_(k−1) + b_k, composed for every prefix: (A, B) with x_k = A_k x0 + B_k
    a = decay.clone()
    b = (1.0 - decay) * y
    shift = 1
    n = y.shape[-1]
    while shift < n and bool(a[..., shift:].any()):  # once every composed decay is 0, the prefixes are done
        a_prev, b_prev = a[..., :-shift], b[..., :-shift]
        b_new = b.clone()
        b_new[..., shift:] = torch.addcmul(b[..., shift:], a[..., shift:], b_prev)
        a_new = a.clone()
        a_new[..., shift:] = a[..., shift:] * a_prev
        a, b = a_new, b_new
        shift *= 2
    start = x0.to(torch.float64).reshape(-1, 1) if y.dim() > 1 else x0.to(torch.float64).reshape(())
    ends = a * start + b
    starts = torch.cat([start.expand(*y.shape[:-1], 1), ends[..., :-1]], dim=-1)
    return starts, ends
