"""Sweep configuration, as written in ``configs/sweeps/*.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.backtesting.search_space import Dimension, SearchSpace
from raytrader.backtesting.walk_forward_windows import WalkForwardSpec
from raytrader.config_files import load_config_file, validate_config
from raytrader.data.spec import DataSpec
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import PortfolioConfig
from raytrader.state.metrics import Metrics

#: Metrics a sweep can rank by (numbers of ``Metrics``).
OBJECTIVES = tuple(
    name
    for name, info in Metrics.model_fields.items()
    if info.annotation in (float, int) and name not in ("bars", "periods_per_year", "start_equity")
)


class SearchSpec(BaseModel):
    """How the space is searched: every grid point, random draws, or Optuna's TPE."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["grid", "random", "optuna"] = "grid"
    n_trials: int | None = Field(None, ge=1, le=10_000_000, description="random and optuna")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _trials_given(self) -> Self:
        if self.method != "grid" and self.n_trials is None:
            raise ValueError(f"search.n_trials is required for method {self.method!r}")
        return self


class SweepConfig(BaseModel):
    """One agent, the parameters it searches, the data and the costs every trial shares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("sweep", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataSpec
    agent: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict, description="fixed parameters")
    space: dict[str, Dimension] = Field(min_length=1)
    search: SearchSpec = SearchSpec()
    objective: str = "sharpe"
    direction: Literal["maximize", "minimize"] = "maximize"
    initial_cash: float = Field(100_000.0, gt=0)
    broker: PaperBrokerConfig = PaperBrokerConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    periods_per_year: float | None = Field(None, gt=0)
    engine: Literal["auto", "fast", "event"] = Field(
        "auto", description="auto: the fast path where it reproduces the event engine"
    )
    workers: int | None = Field(None, ge=1, le=4096, description="parallel workers (all CPUs)")
    chunk_size: int | None = Field(None, ge=1, le=10_000, description="trials per task")
    walk_forward: WalkForwardSpec | None = None

    @model_validator(mode="after")
    def _checks(self) -> Self:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective {self.objective!r} is not one of {', '.join(OBJECTIVES)}")
        space = self.search_space()  # names, types and bounds against the agent's schema
        if self.search.method == "grid":
            space.grid()  # raises when no combination is valid
        else:
            space.sample(1, self.search.seed)
        return self

    def search_space(self) -> SearchSpace:
        return SearchSpace(self.agent, self.space, self.params)


def parse_sweep_config(raw: Any, where: str = "sweep config") -> SweepConfig:
    """Validate a mapping; ``ConfigError`` naming every problem and its field."""
    return validate_config(raw, SweepConfig, where)


def load_sweep_config(path: str | Path) -> SweepConfig:
    """Read and validate a sweep YAML file (data paths relative to the file)."""
    return load_config_file(path, SweepConfig)
