"""How a network is shaped and trained: one plain, validated configuration."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from instruments.failures import UserFacingError


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
        if not self.learning_rate > 0:
            raise TrainConfigError(f"learning_rate: must be positive, got {self.learning_rate!r}")

    def seeds(self) -> dict[str, int]:
        """The seeds of one run: weight initialization, minibatch order, stochastic sampling."""
        return {"init": self.seed, "shuffle": self.seed + 1, "sampling": self.seed + 2}

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out
