"""One sweep trial: a parameter set backtested on shared data, reduced to a small record.

Pure: the Ray runner calls ``evaluate_chunk`` inside its workers, tests call it directly. A
trial runs on the fast path when it reproduces the event engine there (``engine="auto"``),
else on the event engine; its record holds the parameters and the numeric metrics, never the
equity curve, so a worker's memory does not grow with the number of trials.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from raytrader.agents import registry
from raytrader.agents.base import Agent
from raytrader.backtesting.engine import BacktestEngine
from raytrader.backtesting.fast_path import FastPathUnsupported, run_fast, unsupported_reason
from raytrader.backtesting.search_space import trial_key
from raytrader.data.indicator_cache import IndicatorCache, indicator_cache
from raytrader.data.market_data import OHLCV, MarketData
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import PortfolioConfig
from raytrader.state.metrics import Metrics, periods_per_year

Engine = Literal["auto", "fast", "event"]


@dataclass(frozen=True)
class TrialSetup:
    """What every trial of a sweep shares besides the data."""

    agent: str
    initial_cash: float = 100_000.0
    broker: PaperBrokerConfig = field(default_factory=PaperBrokerConfig)
    portfolio: PortfolioConfig = field(default_factory=PortfolioConfig)
    periods_per_year: float | None = None
    engine: Engine = "auto"


@dataclass(frozen=True)
class Curve:
    """A trial run in full: its equity curve and metrics (walk-forward, reports)."""

    equity: pd.Series
    metrics: Metrics
    engine: str


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def metrics_record(m: Metrics) -> dict[str, float | int | None]:
    """The numeric metrics of a run, JSON-safe (infinite or NaN values become None)."""
    out: dict[str, float | int | None] = {}
    for name, value in m.as_dict().items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[name] = value if isinstance(value, int) else _finite(value)
    return out


def _read_only(data: MarketData) -> MarketData:
    """Read-only views of the arrays, so their indicators may be cached (see indicator_cache)."""
    arrays = {}
    for name in OHLCV:
        view = getattr(data, name).view()
        view.flags.writeable = False
        arrays[name] = view
    return MarketData(index=data.index, symbols=data.symbols, **arrays)


class TrialRunner:
    """Runs trials of one setup on one data set; reuses indicators across its trials."""

    def __init__(self, data: MarketData, setup: TrialSetup, cache_bytes: int = 256 * 2**20):
        self.data = _read_only(data)
        self.setup = setup
        self.ppy = setup.periods_per_year or periods_per_year(data.index)
        self.cache = IndicatorCache(cache_bytes)
        # The data, broker and portfolio checks of the fast path do not depend on the parameters.
        self._fast_reason = unsupported_reason(
            data, setup.broker, initial_cash=setup.initial_cash, portfolio=setup.portfolio
        )

    def fast_reason(self, agent: Agent) -> str | None:
        """Why this agent cannot run on the fast path here, or None if it can."""
        if self.setup.engine == "event":
            return "engine is event"
        return self._fast_reason or unsupported_reason(
            self.data, self.setup.broker, agent=agent, initial_cash=self.setup.initial_cash
        )

    def _run(self, params: Mapping[str, Any]) -> tuple[Metrics, str, pd.Series]:
        s = self.setup
        agent = registry.create(s.agent, params)
        reason = self.fast_reason(agent)
        with indicator_cache(self.cache):
            if reason is None:
                fast = run_fast(self.data, agent, s.initial_cash, s.broker, s.portfolio)
                return fast.metrics(self.ppy), "fast", fast.equity
            if s.engine == "fast":
                raise FastPathUnsupported(f"engine is fast, but {reason}")
            result = BacktestEngine(s.initial_cash, s.broker, s.portfolio).run(self.data, [agent])
            return result.metrics(self.ppy), "event", result.equity

    def evaluate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The trial's record: key, params, metrics, engine and wall seconds."""
        t0 = time.perf_counter()
        metrics, engine, _ = self._run(params)
        return {
            "key": trial_key(params),
            "params": dict(params),
            "metrics": metrics_record(metrics),
            "engine": engine,
            "seconds": time.perf_counter() - t0,
        }

    def curve(self, params: Mapping[str, Any]) -> Curve:
        metrics, engine, equity = self._run(params)
        return Curve(equity, metrics, engine)


def evaluate_chunk(
    data: MarketData, setup: TrialSetup, chunk: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Records of a chunk of trials (a fresh runner; workers keep theirs across chunks)."""
    runner = TrialRunner(data, setup)
    return [runner.evaluate(p) for p in chunk]
