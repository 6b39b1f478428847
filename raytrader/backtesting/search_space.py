"""The parameters a sweep searches: dimensions checked against an agent's parameter schema."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import annotated_types as at
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from raytrader.agents import registry

Scalar = int | float | bool | str
Params = dict[str, Any]


class Dimension(BaseModel):
    """One searched parameter: a list of ``values``, an inclusive ``start``..``stop`` by
    ``step`` range, or a ``low``..``high`` interval (random and Optuna sample it; a grid needs
    its ``step``). ``log`` samples the interval on a log scale."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    values: list[Scalar] | None = Field(None, min_length=1)
    start: float | None = None
    stop: float | None = None
    step: float | None = Field(None, gt=0)
    low: float | None = None
    high: float | None = None
    log: bool = False

    @model_validator(mode="after")
    def _one_form(self) -> Self:
        forms = [
            self.values is not None,
            self.start is not None or self.stop is not None,
            self.low is not None or self.high is not None,
        ]
        if sum(forms) != 1:
            raise ValueError("give exactly one of: values, start/stop/step, low/high")
        if forms[1]:
            if self.start is None or self.stop is None or self.step is None:
                raise ValueError("a range needs start, stop and step")
            if self.stop < self.start:
                raise ValueError(f"stop ({self.stop}) is below start ({self.start})")
        if forms[2]:
            if self.low is None or self.high is None:
                raise ValueError("an interval needs low and high")
            if self.high <= self.low:
                raise ValueError(f"high ({self.high}) must be above low ({self.low})")
            if self.log and self.low <= 0:
                raise ValueError(f"a log interval needs low > 0, got {self.low}")
        if self.log and not forms[2]:
            raise ValueError("log applies to a low/high interval")
        return self

    @property
    def is_interval(self) -> bool:
        return self.low is not None

    def grid_values(self) -> list[Scalar]:
        """Every value a grid visits (an interval needs its ``step``)."""
        if self.values is not None:
            return list(self.values)
        start = self.start if self.start is not None else self.low
        stop = self.stop if self.stop is not None else self.high
        if self.step is None or start is None or stop is None:
            raise ValueError("a grid needs values or a step; give step for low/high")
        n = math.floor((stop - start) / self.step + 1e-9) + 1
        return [start + k * self.step for k in range(n)]


@dataclass(frozen=True)
class _Field:
    name: str
    kind: type  # int, float, bool or str
    lower: float | None  # inclusive bounds from the schema (gt/lt are turned into strict)
    upper: float | None
    strict_lower: bool
    strict_upper: bool

    def check(self, value: Scalar, where: str) -> Scalar:
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{where}: {self.name} is a bool, got {value!r}")
            return value
        if self.kind is str:
            return str(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}: {self.name} is a number, got {value!r}")
        if self.kind is int:
            if float(value) != round(value):
                raise ValueError(f"{where}: {self.name} is an integer, got {value!r}")
            value = round(value)
        else:
            value = float(value)
        low, high = self.lower, self.upper
        if low is not None and (value < low or (self.strict_lower and value == low)):
            op = ">" if self.strict_lower else ">="
            raise ValueError(f"{where}: {self.name}={value} is out of bounds ({op} {low})")
        if high is not None and (value > high or (self.strict_upper and value == high)):
            op = "<" if self.strict_upper else "<="
            raise ValueError(f"{where}: {self.name}={value} is out of bounds ({op} {high})")
        return value


def _schema_field(params_model: type[BaseModel], name: str) -> _Field:
    info = params_model.model_fields[name]
    kinds: dict[object, type] = {int: int, float: float, bool: bool}
    kind = kinds.get(info.annotation, str)
    lower = upper = None
    strict_lower = strict_upper = False
    for meta in info.metadata:
        if isinstance(meta, at.Ge):
            lower = float(meta.ge)  # type: ignore[arg-type]
        elif isinstance(meta, at.Gt):
            lower, strict_lower = float(meta.gt), True  # type: ignore[arg-type]
        elif isinstance(meta, at.Le):
            upper = float(meta.le)  # type: ignore[arg-type]
        elif isinstance(meta, at.Lt):
            upper, strict_upper = float(meta.lt), True  # type: ignore[arg-type]
    return _Field(name, kind, lower, upper, strict_lower, strict_upper)


def trial_key(params: Mapping[str, Any]) -> str:
    """A short stable id of a parameter set (the same params, the same key)."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:16]


class SearchSpace:
    """The searched dimensions of one agent, with its fixed parameters.

    Every dimension is checked against the agent's schema when the space is built (name,
    type, bounds); a combination the schema rejects as a whole (``fast >= slow``) is skipped
    by ``grid`` and resampled by ``sample``, its reason kept in ``skipped``. Another schema
    than an agent's (a model's hyperparameters) is given as ``params_model``; ``agent`` then
    only names it in messages.
    """

    def __init__(
        self,
        agent: str,
        dimensions: Mapping[str, Dimension],
        fixed: Mapping[str, Any],
        params_model: type[BaseModel] | None = None,
    ) -> None:
        self.agent = agent
        self.params_model: type[BaseModel] = params_model or registry.get(agent).Params
        if not dimensions:
            raise ValueError("space: no dimension to search")
        known = self.params_model.model_fields
        for name in [*dimensions, *fixed]:
            if name not in known:
                raise ValueError(
                    f"space: {agent} has no parameter {name!r} (known: {', '.join(known)})"
                )
        both = set(dimensions) & set(fixed)
        if both:
            raise ValueError(f"space: {sorted(both)} are both searched and fixed")
        self.dimensions = dict(dimensions)
        self.fixed = dict(fixed)
        self.fields = {name: _schema_field(self.params_model, name) for name in dimensions}
        for name, dim in self.dimensions.items():
            f = self.fields[name]
            where = f"space.{name}"
            if dim.values is not None:
                for v in dim.values:
                    f.check(v, where)
            elif dim.is_interval:
                assert dim.low is not None and dim.high is not None
                f.check(dim.low, where)
                f.check(dim.high, where)
            else:
                for v in (dim.grid_values()[0], dim.grid_values()[-1]):
                    f.check(v, where)
        self.skipped = 0  # combinations the schema rejected, with the first few reasons
        self.skip_reasons: list[str] = []

    @property
    def names(self) -> list[str]:
        return list(self.dimensions)

    def validate(self, values: Mapping[str, Any]) -> Params | None:
        """The full parameter set of these searched values, or None if the schema rejects it."""
        merged = {**self.fixed, **values}
        try:
            self.params_model(**merged)
        except ValidationError as exc:
            self.skipped += 1
            if len(self.skip_reasons) < 3:
                self.skip_reasons.append(
                    "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
                )
            return None
        return merged

    def grid(self) -> list[Params]:
        """Every valid combination, in a stable order; ``ValueError`` if none is valid."""
        axes = []
        for name, dim in self.dimensions.items():
            f = self.fields[name]
            axes.append([f.check(v, f"space.{name}") for v in dim.grid_values()])
        out: list[Params] = []
        for combo in itertools.product(*axes):
            params = self.validate(dict(zip(self.names, combo, strict=True)))
            if params is not None:
                out.append(params)
        if not out:
            raise ValueError(f"the grid is empty: every combination is invalid ({self._why()})")
        return out

    def grid_size(self) -> int:
        return math.prod(len(d.grid_values()) for d in self.dimensions.values())

    def sample(self, n: int, seed: int) -> list[Params]:
        """``n`` distinct valid random combinations (fewer if the space has fewer)."""
        rng = np.random.default_rng(seed)
        out: dict[str, Params] = {}
        attempts = 0
        while len(out) < n and attempts < 50 * n + 100:
            attempts += 1
            values = {name: self._draw(name, rng) for name in self.names}
            params = self.validate(values)
            if params is not None:
                out.setdefault(trial_key(params), params)
        if not out:
            raise ValueError(f"no valid combination found in {attempts} draws ({self._why()})")
        return list(out.values())

    def _draw(self, name: str, rng: np.random.Generator) -> Scalar:
        dim, f = self.dimensions[name], self.fields[name]
        if not dim.is_interval or dim.step is not None:
            grid = dim.grid_values()
            return f.check(grid[int(rng.integers(len(grid)))], f"space.{name}")
        assert dim.low is not None and dim.high is not None
        if dim.log:
            x = math.exp(rng.uniform(math.log(dim.low), math.log(dim.high)))
        else:
            x = float(rng.uniform(dim.low, dim.high))
        if f.kind is int:
            x = min(max(round(x), math.ceil(dim.low)), math.floor(dim.high))
        return f.check(x, f"space.{name}")

    def _why(self) -> str:
        return "; ".join(self.skip_reasons) or "no reason recorded"
