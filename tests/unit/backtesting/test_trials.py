"""Sweep trials: the fast path and the event engine give the same record; engine choice."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from raytrader.backtesting.config import AgentSpec, BacktestConfig
from raytrader.backtesting.fast_path import FastPathUnsupported
from raytrader.backtesting.runner import run_backtest
from raytrader.backtesting.search_space import Dimension, SearchSpace
from raytrader.backtesting.trials import TrialRunner, TrialSetup, evaluate_chunk, metrics_record
from raytrader.data.market_data import MarketData
from raytrader.data.spec import DataSpec
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.execution.paper_broker import PaperBrokerConfig

BROKER = PaperBrokerConfig(
    commission=CommissionModel(bps=10, minimum=1.0), slippage=SlippageModel(bps=3)
)


@pytest.fixture
def data(gbm_frame: Callable[..., pd.DataFrame]) -> MarketData:
    return MarketData.from_frames({"X": gbm_frame(3000, seed=5, freq="1h", vol=0.01)})


@pytest.mark.parametrize(
    ("agent", "dims"),
    [
        ("sma_cross", {"fast": Dimension(values=[5, 12]), "slow": Dimension(values=[20, 50])}),
        (
            "rsi_reversion",
            {"period": Dimension(values=[7, 14]), "oversold": Dimension(values=[25, 35])},
        ),
        (
            "bollinger_breakout",
            {"period": Dimension(values=[10, 30]), "k": Dimension(values=[1.5, 2.5])},
        ),
    ],
)
def test_fast_and_event_records_agree(
    data: MarketData, agent: str, dims: dict[str, Dimension]
) -> None:
    grid = SearchSpace(agent, dims, {}).grid()
    fast = evaluate_chunk(data, TrialSetup(agent, broker=BROKER), grid)
    event = evaluate_chunk(data, TrialSetup(agent, broker=BROKER, engine="event"), grid)
    assert [r["engine"] for r in fast] == ["fast"] * len(grid)
    assert [r["engine"] for r in event] == ["event"] * len(grid)
    for f, e in zip(fast, event, strict=True):
        assert f["key"] == e["key"] and f["params"] == e["params"]
        assert f["metrics"]["trade_count"] == e["metrics"]["trade_count"] > 0
        for name, value in e["metrics"].items():
            assert f["metrics"][name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_record_equals_a_plain_backtest(data: MarketData) -> None:
    params = {"fast": 7, "slow": 40}
    rec = TrialRunner(data, TrialSetup("sma_cross", broker=BROKER)).evaluate(params)
    config = BacktestConfig(
        data=DataSpec(synthetic={"n_bars": 10}),
        agents=[AgentSpec(name="sma_cross", params=params)],
        broker=BROKER,
    )
    expected = metrics_record(run_backtest(config, data=data).metrics())
    assert rec["metrics"] == pytest.approx(expected, rel=1e-9)


def test_agents_that_cannot_vectorize_run_on_the_event_engine() -> None:
    from raytrader.data.synthetic import correlated_universe

    universe = MarketData.from_frames(correlated_universe(n_symbols=6, n_bars=400, seed=2))
    params = {"lookback_period": 30, "index_ma_period": 50, "exit_ma_period": 40}
    rec = TrialRunner(universe, TrialSetup("momentum")).evaluate(params)
    assert rec["engine"] == "event"
    assert np.isfinite(rec["metrics"]["final_equity"])
    with pytest.raises(FastPathUnsupported, match="engine is fast, but"):
        TrialRunner(universe, TrialSetup("momentum", engine="fast")).evaluate(params)


def test_trials_share_indicators(data: MarketData) -> None:
    space = SearchSpace(
        "sma_cross", {"fast": Dimension(values=[5, 10, 15]), "slow": Dimension(values=[20, 40])}, {}
    )
    runner = TrialRunner(data, TrialSetup("sma_cross"))
    for params in space.grid():
        runner.evaluate(params)
    # 6 trials, 2 SMAs each, but only 5 distinct lengths: each computed once.
    assert runner.cache.misses == 5
    assert runner.cache.hits == 7


def test_metrics_record_is_json_safe(data: MarketData) -> None:
    rec = TrialRunner(data, TrialSetup("sma_cross")).evaluate({"fast": 400, "slow": 2900})
    values = rec["metrics"].values()
    assert all(v is None or np.isfinite(v) for v in values)
