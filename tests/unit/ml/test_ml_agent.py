"""The ML agent: params checked against the registry, thresholds, sizing, backtests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import AgentConfigError, available, create
from raytrader.agents.host import AccountSnapshot, AgentHost
from raytrader.agents.ml_agent import MLAgent
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.ml.features import FeatureConfig
from raytrader.ml.registry import ModelRegistry
from raytrader.ml.training import LabelConfig, TrainSpec, train
from tests.unit.ml._synthetic import ar1_frame

N_BARS, N_TRAIN = 2400, 1400
SPEC = TrainSpec(
    kind="logistic",
    features=FeatureConfig(vol_rank_window=50),
    labels=LabelConfig(horizon=1),
    cv_splits=3,
)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelRegistry]:
    """A registry in a fresh data directory holding ``ar1`` v1, trained on the first bars."""
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(tmp_path))
    reg = ModelRegistry()
    frame = ar1_frame(N_BARS, 0.4, seed=8)
    result = train(frame.iloc[:N_TRAIN], SPEC, symbol="AR")
    reg.save("ar1", result.model, result.info)
    yield reg


def test_ml_agent_is_registered() -> None:
    assert "ml" in available()


def test_params_name_the_missing_model_or_version(registry: ModelRegistry) -> None:
    with pytest.raises(AgentConfigError, match="no model named 'nope'"):
        create("ml", {"model": "nope"})
    with pytest.raises(AgentConfigError, match="model 'ar1' has no version 4"):
        create("ml", {"model": "ar1", "version": 4})
    with pytest.raises(AgentConfigError, match="exit_threshold"):
        create("ml", {"model": "ar1", "long_threshold": 0.6, "exit_threshold": 0.65})
    agent = create("ml", {"model": "ar1", "version": 1})
    assert isinstance(agent, MLAgent)
    assert agent.warmup == SPEC.features.warmup


def test_target_thresholds_hold_and_exit_by_hand(registry: ModelRegistry) -> None:
    agent = MLAgent(model="ar1", long_threshold=0.6, exit_threshold=0.5, full_size_at=0.8)
    # Confidence sizing: 0 at 0.5, full at 0.8.
    assert agent.target(0.65, 0.30, 0.0) == pytest.approx(0.5)
    assert agent.target(0.90, 0.05, 0.0) == 1.0
    assert agent.target(0.58, 0.40, 0.0) == 0.0  # below the entry threshold: stay flat
    assert agent.target(0.55, 0.40, 0.5) == 0.5  # between exit and entry: hold
    assert agent.target(0.45, 0.50, 0.5) == 0.0  # below exit: close
    assert agent.target(0.20, 0.75, 0.0) == 0.0  # shorts not allowed
    short = MLAgent(model="ar1", allow_short=True, sizing="fixed", max_weight=0.4)
    assert short.target(0.20, 0.75, 0.0) == -0.4
    assert short.target(0.60, 0.30, -0.4) == 0.4  # flips
    assert short.target(0.35, 0.52, -0.4) == -0.4  # P(down) still above exit: hold
    assert short.target(0.55, 0.45, -0.4) == 0.4


def _run(agent: MLAgent, frame: pd.DataFrame) -> tuple[float, pd.DataFrame, int]:
    data = MarketData.from_frames({"AR": frame})
    result = BacktestEngine(initial_cash=100_000.0).run(data, [agent])
    return result.metrics().total_return, result.signals_frame(), len(result.fills)


def test_backtest_trades_only_out_of_sample_and_beats_buy_and_hold(
    registry: ModelRegistry,
) -> None:
    frame = ar1_frame(N_BARS, 0.4, seed=8)
    agent = MLAgent(model="ar1", allow_short=True)
    training_end = pd.Timestamp(registry.metadata("ar1").training_end)
    total, signals, n_fills = _run(agent, frame)
    assert n_fills > 50
    assert (pd.DatetimeIndex(signals["ts"]) > training_end).all()
    assert signals["strength"].between(0.5, 1.0).all()
    assert signals["weight"].abs().le(1.0).all()
    # Out of sample, next-bar direction under AR(1) is worth more than holding (no costs).
    oos = frame.loc[frame.index > training_end, "close"]
    buy_and_hold = oos.iloc[-1] / oos.iloc[0] - 1
    assert total > buy_and_hold + 0.2
    # Same model, same data: the same decisions.
    again_total, again_signals, _ = _run(MLAgent(model="ar1", allow_short=True), frame)
    assert again_total == total
    pd.testing.assert_frame_equal(again_signals, signals)


def test_predictions_ignore_the_future(registry: ModelRegistry) -> None:
    frame = ar1_frame(N_BARS, 0.4, seed=8)
    agent = MLAgent(model="ar1", trade_in_sample=True)
    base = agent.indicators(MarketData.from_frames({"AR": frame}))
    t = 1800
    changed = frame.copy()
    changed.iloc[t + 1 :, :4] *= 1.3
    other = agent.indicators(MarketData.from_frames({"AR": changed}))
    for name in ("p_up", "p_down"):
        np.testing.assert_array_equal(base[name][:, : t + 1], other[name][:, : t + 1])
    assert np.isnan(base["p_up"][0, : SPEC.features.warmup]).all()
    assert np.isfinite(base["p_up"][0, SPEC.features.warmup :]).all()


def test_state_round_trip(registry: ModelRegistry) -> None:
    agent = MLAgent(model="ar1")
    agent.set_state({"targets": {"AR": 0.5}})
    assert agent.get_state() == {"targets": {"AR": 0.5}}


def test_session_host_decides_as_the_backtest(registry: ModelRegistry) -> None:
    # A paper session feeds bars one at a time: its signals equal the backtest's.
    frame = ar1_frame(N_BARS, 0.4, seed=8)
    data = MarketData.from_frames({"AR": frame})
    stop = N_TRAIN + 120
    _, signals, _ = _run(MLAgent(model="ar1"), frame.iloc[:stop])
    host = AgentHost([MLAgent(model="ar1")], ["AR"])
    host.extend(data.slice(0, N_TRAIN))  # in sample: the agent would not trade there
    account = AccountSnapshot(cash=100_000.0, equity_value=100_000.0, positions={})
    live = []
    for i in range(N_TRAIN, stop):
        host.extend(data.slice(i, i + 1))
        live.extend(sig for _, sig in host.decide(account))
    assert len(live) == len(signals) > 5
    assert [s.ts for s in live] == list(signals["ts"])
    # The features are bit-identical; the model's matrix products over a different number of
    # rows may round differently in the last digit.
    np.testing.assert_allclose([s.weight for s in live], signals["weight"], rtol=1e-12)
    np.testing.assert_allclose([s.strength for s in live], signals["strength"], rtol=1e-12)
