"""``active_bars`` is a promise: off those bars ``on_bar`` never acts, so skipping is exact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import Agent, create
from raytrader.agents.context import BarContext
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.execution import CommissionModel, PaperBrokerConfig
from raytrader.portfolio import PortfolioConfig

Frame = Callable[..., pd.DataFrame]

CASES = [
    ("sma_cross", {"fast": 5, "slow": 20}),
    ("sma_cross", {"fast": 5, "slow": 20, "allow_short": True}),
    ("rsi_reversion", {}),
    ("rsi_reversion", {"allow_short": True}),
    ("bollinger_breakout", {}),
    ("bollinger_breakout", {"allow_short": True}),
]


class Holding:
    def __init__(self, qty: float) -> None:
        self.qty = qty
        self.cash = 1e6

    def position(self, symbol: str) -> float:
        return self.qty

    def equity(self) -> float:
        return 1e6


@pytest.mark.parametrize(("name", "params"), CASES)
@pytest.mark.parametrize("held", [0.0, 10.0, -10.0])
def test_on_bar_is_silent_off_the_active_bars(
    gbm_frame: Frame, name: str, params: dict[str, Any], held: float
) -> None:
    data = MarketData.from_frames({"X": gbm_frame(3000, seed=17)})
    agent = create(name, params)
    ind = agent.indicators(data)
    active = agent.active_bars(data, ind)
    assert active is not None and 0 < active.sum() < data.n_bars / 2
    ctx = BarContext(data, ind, Holding(held))
    silent_off = 0
    for i in range(agent.warmup, data.n_bars):
        ctx.i = i
        out = agent.on_bar(ctx)
        if not active[i]:
            assert not out, f"{name} acted at inactive bar {i}"
            silent_off += 1
    assert silent_off > 1000


class EveryBar(Agent):
    """Wraps an agent but claims it may act on every bar (no skipping)."""

    name = "every_bar"

    def __init__(self, inner: Agent) -> None:
        super().__init__()
        self.inner = inner

    @property
    def warmup(self) -> int:
        return self.inner.warmup

    def indicators(self, data):  # type: ignore[no-untyped-def]
        return self.inner.indicators(data)

    def on_bar(self, ctx):  # type: ignore[no-untyped-def]
        return self.inner.on_bar(ctx)


@pytest.mark.parametrize(("name", "params"), [*CASES, ("momentum", {})])
def test_engine_results_do_not_depend_on_skipping(
    gbm_frame: Frame, name: str, params: dict[str, Any]
) -> None:
    if name == "momentum":
        frames = {f"S{k}": gbm_frame(600, seed=k, freq="B", vol=0.015) for k in range(10)}
        frames["INDEX"] = gbm_frame(600, seed=99, freq="B", vol=0.008)
    else:
        frames = {"X": gbm_frame(3000, seed=23)}
    data = MarketData.from_frames(frames)
    engine = BacktestEngine(
        100_000, PaperBrokerConfig(commission=CommissionModel(bps=10)), PortfolioConfig()
    )
    skipping = engine.run(data, [create(name, params)])
    every = engine.run(data, [EveryBar(create(name, params))])
    assert skipping.fills == every.fills and len(skipping.fills) > 3
    assert np.array_equal(skipping.equity.to_numpy(), every.equity.to_numpy())
