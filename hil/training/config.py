"""How a network is shaped and trained: one plain, validated configuration.

Values that cannot work are refused (:class:`TrainConfigError`); values that can run but hardly ever
train well (a learning rate far outside Adam's range, an epoch count of days) are only warned about
(:meth:`TrainConfig.warnings`), so that an unusual experiment stays possible.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from instruments.failures import UserFacingError

PLAUSIBLE_LEARNING_RATE = (1e-6, 1.0)  # Adam: beyond these a network diverges or does not move
PLAUSIBLE_EPOCHS = 1000


class TrainConfigError(UserFacingError, ValueError):
    """A network or training setting that cannot be used; the message names it."""


@dataclass(frozen=True)
class TrainConfig:
    """Network shape and optimization. ``eval_samples``: stochastic samples averaged per evaluation."""

    hidden: tuple[int, ...] = (128,)
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-2
    seed: int = 0
    eval_samples: int = 16
    evaluate_every: int = 1  # epochs between test evaluations (the last epoch is always evaluated)

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not self.hidden or min(self.hidden) < 1:
            raise TrainConfigError(f"hidden: need one or more positive layer sizes, got {self.hidden!r}")
        for key in ("epochs", "batch_size", "eval_samples", "evaluate_every"):
            if int(getattr(self, key)) < 1:
                raise TrainConfigError(f"{key}: must be at least 1, got {getattr(self, key)!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise TrainConfigError(f"learning_rate: must be a positive number, got {self.learning_rate!r}")

    def warnings(self) -> dict[str, str]:
        """Implausible settings that are still used: setting name → what is odd and what is usual."""
        out = {}
        if not PLAUSIBLE_LEARNING_RATE[0] <= self.learning_rate <= PLAUSIBLE_LEARNING_RATE[1]:
            low, high = PLAUSIBLE_LEARNING_RATE
            out["learning_rate"] = (f"{self.learning_rate:g} is outside the range Adam trains with ({low:g} to "
                                    f"{high:g}; the default is 0.01): expect a collapsed or frozen network")
        if self.epochs > PLAUSIBLE_EPOCHS:
            out["epochs"] = (f"{self.epochs} epochs is far more than these networks need (20-50 reach their "
                             "accuracy); the run may take days")
        return out

    def seeds(self) -> dict[str, int]:
        """The seeds of one run: weight initialization, minibatch order, stochastic sampling."""
        return {"init": self.seed, "shuffle": self.seed + 1, "sampling": self.seed + 2}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out


def check_device(device: str) -> None:
    """Refuse (:class:`TrainConfigError`) a torch device this machine cannot use, before any work starts."""
    import torch

    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise TrainConfigError(f"--device {device}: not a torch device name; use cpu, or cuda / cuda:N on a "
                               "machine with an NVIDIA GPU") from None
    try:
        torch.empty(1, device=parsed)
    except (RuntimeError, AssertionError, NotImplementedError):
        raise TrainConfigError(f"--device {device}: torch {torch.__version__} cannot use {device} on this "
                               "machine; use --device cpu, or install a torch build for that device") from None
