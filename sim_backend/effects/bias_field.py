"""The probe station's in-plane bias field ``H_x`` along the current (physics.md §5).

Spin-orbit torque switches a perpendicular magnet deterministically only with an in-plane field along the
current: the field's sign sets the chirality, so reversing it reverses which current polarity switches down→up.
The critical current falls with the field as ``Ic0 ∝ H_k/2 − |H_x|/√2`` (Liu et al., PRL 109, 096602 (2012); the
macrospin threshold of the damping-like torque). The chip file's ``jc0`` holds at ``reference`` field; at
``H_x = 0`` there is no chirality: a pulse that switches leaves the magnet up or down with equal chance.
Fields are ``μ0 H`` in T.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class BiasField:
    """``field_t``: the applied in-plane field; ``anisotropy_t``: the effective anisotropy field ``μ0 H_k``;
    ``reference_t``: the field at which the chip's ``jc0`` was given."""

    field_t: float = 10e-3
    anisotropy_t: float = 0.3
    reference_t: float = 10e-3

    def __post_init__(self) -> None:
        for name, value in (("field", self.field_t), ("reference", self.reference_t)):
            if abs(value) >= self.anisotropy_t / math.sqrt(2.0):
                raise ValueError(f"{name}: |μ0 H_x| = {abs(value) * 1e3:g} mT leaves no perpendicular barrier "
                                 f"(it must stay below μ0 H_k/√2 = {self.anisotropy_t / math.sqrt(2.0) * 1e3:g} mT)")

    @property
    def chirality(self) -> int:
        """+1: a positive current switches down→up; −1: up→down; 0: no field, no preferred direction."""
        return (self.field_t > 0) - (self.field_t < 0)

    @property
    def ic0_factor(self) -> float:
        """``Ic0(H_x)/Ic0(reference)``."""
        half_k = self.anisotropy_t / 2.0
        return (half_k - abs(self.field_t) / math.sqrt(2.0)) / (half_k - abs(self.reference_t) / math.sqrt(2.0))
