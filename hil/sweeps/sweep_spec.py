"""Sweep files: which experiment, over which axes, reporting which metrics (YAML, ``hil-sweep/1``).

::

    format: hil-sweep/1
    name: width-vs-bias
    experiment: bias            # train | bias | energy | synapses | transfer | package.module:function
    base:                       # the experiment's settings shared by every point
      epochs: 10
      hidden: [64]
    axes:
      grid:                     # every combination
        width: [3um, 5um, 10um]
        bias_error: [0, 50uA, 100uA]
      random:                   # and/or: points drawn from ranges (uniform; log-uniform for names in log)
        count: 4
        seed: 7
        ranges: {margin: [0.0, 0.5]}
        log: []
      seeds: 3                  # every point with seeds seed, seed+1, ... (the experiment's own seed)
    seed: 0
    metrics: [accuracy, energy_per_inference_j]
    retries: 1                  # a point whose worker dies is run again this many times

The points are the grid's combinations × the random draws (either may be absent) × the seeds; each point is
one task with its own seed. Values may carry units (``3um``, ``50uA``); the experiment's parameter table
(:mod:`hil.sweeps.sweep_points`) gives each parameter's unit and checks its values before anything runs.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from instruments.config_files import read_yaml
from instruments.failures import UserFacingError

SWEEP_FORMAT = "hil-sweep/1"
MAX_POINTS = 100_000


class SweepSpecError(UserFacingError, ValueError):
    """A sweep file that cannot describe a sweep; the message names the key and the value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RandomAxes(_Strict):
    count: int = Field(ge=1)
    seed: int = 0
    ranges: dict[str, tuple[float, float]]
    log: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ranges(self) -> RandomAxes:
        for name, (low, high) in self.ranges.items():
            if not (math.isfinite(low) and math.isfinite(high) and low < high):
                raise ValueError(f"ranges.{name}: expected [low, high] with low < high, got {[low, high]}")
            if name in self.log and low <= 0:
                raise ValueError(f"ranges.{name}: a log-uniform range must be positive, got {[low, high]}")
        unknown = [name for name in self.log if name not in self.ranges]
        if unknown:
            raise ValueError(f"log: {unknown[0]!r} has no range")
        return self


class Axes(_Strict):
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    random: RandomAxes | None = None
    seeds: int = Field(default=1, ge=1)

    @field_validator("grid")
    @classmethod
    def _grid(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in grid.items():
            if not values:
                raise ValueError(f"grid.{name}: give one or more values")
            if len({repr(v) for v in values}) != len(values):
                raise ValueError(f"grid.{name}: a value is repeated in {values}")
        return grid

    @model_validator(mode="after")
    def _disjoint(self) -> Axes:
        both = set(self.grid) & set(self.random.ranges if self.random else {})
        if both:
            raise ValueError(f"{sorted(both)[0]}: swept both on the grid and at random; choose one")
        if "seed" in self.grid or (self.random and "seed" in self.random.ranges):
            raise ValueError("seed: sweep seeds with axes.seeds, not as a parameter")
        return self


class SweepSpec(_Strict):
    """A validated sweep file (see the module docstring)."""

    format: str = SWEEP_FORMAT
    name: str = "sweep"
    experiment: str
    base: dict[str, Any] = Field(default_factory=dict)
    axes: Axes = Field(default_factory=Axes)
    seed: int = 0
    metrics: list[str] = Field(min_length=1)
    retries: int = Field(default=1, ge=0, le=10)

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value != SWEEP_FORMAT:
            raise ValueError(f"this version reads {SWEEP_FORMAT!r}, got {value!r}")
        return value

    @property
    def axis_names(self) -> list[str]:
        """The swept parameters, in order: the grid's, then the random ones."""
        return [*self.axes.grid, *(self.axes.random.ranges if self.axes.random else {})]

    def points(self) -> list[dict[str, Any]]:
        """Every point: ``{"point": i, "seed": s, "params": {name: value}}`` (values as written)."""
        grid = [dict(zip(self.axes.grid, combo, strict=True)) for combo in itertools.product(*self.axes.grid.values())]
        random_draws: list[dict[str, Any]] = [{}]
        if self.axes.random is not None:
            rng = np.random.default_rng(self.axes.random.seed)
            random_draws = []
            for _ in range(self.axes.random.count):
                draw = {}
                for name, (low, high) in self.axes.random.ranges.items():
                    if name in self.axes.random.log:
                        draw[name] = float(math.exp(rng.uniform(math.log(low), math.log(high))))
                    else:
                        draw[name] = float(rng.uniform(low, high))
                random_draws.append(draw)
        points = []
        for combo in grid:
            for draw in random_draws:
                for s in range(self.axes.seeds):
                    points.append({"point": len(points), "seed": self.seed + s, "params": {**combo, **draw}})
        if len(points) > MAX_POINTS:
            raise SweepSpecError(f"axes: {len(points)} points; at most {MAX_POINTS} in one sweep")
        return points

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _location(error: Mapping[str, Any]) -> str:
    return ".".join(str(part) for part in error.get("loc", ()))


def parse_sweep(raw: Any, where: str = "sweep file") -> SweepSpec:
    """A :class:`SweepSpec` from a mapping; :class:`SweepSpecError` naming the first bad key."""
    if not isinstance(raw, Mapping):
        raise SweepSpecError(f"{where}: expected a mapping at the top level, got {type(raw).__name__}")
    try:
        return SweepSpec.model_validate(dict(raw))
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        at = _location(error)
        raise SweepSpecError(f"{where}: {at + ': ' if at else ''}{message}") from None


def load_sweep(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file."""
    return parse_sweep(read_yaml(path, "sweep", SweepSpecError), f"sweep file {path}")
