"""The ensemble agent: votes by hand, params errors, a pluggable member, backtests."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import AgentConfigError, available, create
from raytrader.agents import registry as agent_registry
from raytrader.agents.base import Agent
from raytrader.agents.context import BarContext
from raytrader.agents.ensemble import (
    DEFAULT_RULE_SCORES,
    EnsembleAgent,
    RegimeMember,
    RegimeMemberParams,
)
from raytrader.agents.host import AccountSnapshot, AgentHost
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Signal
from raytrader.ml.features import FeatureConfig
from raytrader.ml.regime import RuleRegimeConfig
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
RULES = RuleRegimeConfig(trend_window=20, vol_window=20, vol_rank_window=100)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelRegistry]:
    """A registry in a fresh data directory holding ``ar1`` v1, trained on the first bars."""
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(tmp_path))
    reg = ModelRegistry()
    result = train(ar1_frame(N_BARS, 0.4, seed=8).iloc[:N_TRAIN], SPEC, symbol="AR")
    reg.save("ar1", result.model, result.info)
    yield reg


class ConstantVoter(Agent):
    """Stands in for an RL agent: votes a fixed score on every bar."""

    name: ClassVar[str] = "constant_voter"

    @property
    def warmup(self) -> int:
        return 0

    def scores(self, data: MarketData) -> FloatArray:
        return np.full((len(data.symbols), data.n_bars), 0.5)

    def on_bar(self, ctx: BarContext) -> list[Signal] | None:
        return None


def test_ensemble_is_registered() -> None:
    assert "ensemble" in available()
    assert isinstance(create("ensemble"), EnsembleAgent)  # the regime member alone


def test_votes_by_hand() -> None:
    agent = EnsembleAgent()  # weights 0.4 / 0.4 / 0.2
    # All agree.
    score, weights = agent.combine({"ml": 0.5, "rl": 0.5, "regime": 1.0}) or (0, {})
    assert score == pytest.approx(0.6)
    assert weights == pytest.approx({"ml": 0.4, "rl": 0.4, "regime": 0.2})
    # ML and RL cancel out; the regime is neutral.
    assert agent.combine({"ml": 0.8, "rl": -0.8, "regime": 0.0}) == (
        pytest.approx(0.0),
        pytest.approx({"ml": 0.4, "rl": 0.4, "regime": 0.2}),
    )
    # RL absent (or silent at this bar): 0.4 / 0.2 renormalize to 2/3 and 1/3.
    score, weights = agent.combine({"ml": 0.9, "rl": math.nan, "regime": -1.0}) or (0, {})
    assert weights == pytest.approx({"ml": 2 / 3, "regime": 1 / 3})
    assert score == pytest.approx(0.9 * 2 / 3 - 1 / 3)
    score, weights = agent.combine({"regime": -0.5}) or (0, {})
    assert (score, weights) == (-0.5, {"regime": 1.0})
    assert agent.combine({"ml": math.nan}) is None


def test_target_thresholds_and_sizing_by_hand() -> None:
    agent = EnsembleAgent(long_threshold=0.3, exit_threshold=0.1)
    assert agent.target(0.6, 0.0) == pytest.approx(0.6)  # sized by the score
    assert agent.target(0.2, 0.0) == 0.0  # below the entry: stay flat
    assert agent.target(0.2, 0.6) == 0.6  # between exit and entry: hold
    assert agent.target(0.05, 0.6) == 0.0  # below the exit: close
    assert agent.target(-0.9, 0.0) == 0.0  # no shorts by default
    short = EnsembleAgent(allow_short=True, sizing="fixed", max_weight=0.5)
    assert short.target(-0.3, 0.0) == -0.5
    assert short.target(-0.1, -0.5) == -0.5
    assert short.target(0.1, -0.5) == 0.0
    assert short.target(0.3, -0.5) == 0.5


def test_params_errors_name_the_problem(registry: ModelRegistry) -> None:
    with pytest.raises(AgentConfigError, match="at least one member"):
        create("ensemble", {"regime": None})
    with pytest.raises(AgentConfigError, match="sum to 0"):
        create("ensemble", {"weights": {"regime": 0.0}})
    with pytest.raises(AgentConfigError, match="no model named 'nope'"):
        create("ensemble", {"ml": {"model": "nope"}})
    with pytest.raises(AgentConfigError, match="unknown agent 'ppo'"):
        create("ensemble", {"rl": {"agent": "ppo"}})
    with pytest.raises(AgentConfigError, match="'sma_cross' has no scores method"):
        create("ensemble", {"rl": {"agent": "sma_cross"}})
    with pytest.raises(AgentConfigError, match="unknown states"):
        create("ensemble", {"regime": {"state_scores": {"up/calm": 1.0}}})
    agent = create("ensemble", {"ml": {"model": "ar1"}, "regime": None})
    assert isinstance(agent, EnsembleAgent) and list(agent.members) == ["ml"]
    # A member weighted 0 is present but does not vote.
    muted = create("ensemble", {"ml": {"model": "ar1"}, "weights": {"ml": 1.0, "regime": 0.0}})
    assert isinstance(muted, EnsembleAgent) and list(muted.members) == ["ml", "regime"]
    assert muted.combine({"ml": -0.2, "regime": 1.0}) == (-0.2, {"ml": 1.0})


def test_an_rl_member_plugs_in_by_its_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(agent_registry._REGISTRY, ConstantVoter.name, ConstantVoter)
    agent = create("ensemble", {"rl": {"agent": "constant_voter"}, "regime": None})
    assert isinstance(agent, EnsembleAgent)
    frame = ar1_frame(300, 0.0, seed=1)
    result = BacktestEngine(initial_cash=100_000.0).run(
        MarketData.from_frames({"X": frame}), [agent]
    )
    signals = result.signals_frame()
    assert len(signals) == 1  # long at the first bar, then held
    assert signals["weight"].iloc[0] == pytest.approx(0.5)
    assert signals["reason"].iloc[0] == "ensemble score=+0.500: rl=+0.500 (w=1.00)"


def test_regime_member_scores_are_expected_state_scores() -> None:
    frame = ar1_frame(600, 0.0, seed=2)
    data = MarketData.from_frames({"X": frame})
    member = RegimeMember(RegimeMemberParams(rules=RULES))
    scores = member.scores(data)[0]
    from raytrader.ml.regime import RuleRegimeClassifier

    joint = RuleRegimeClassifier(RULES).classify(data.frame("X")).joint.proba
    expected = joint.to_numpy() @ np.array([DEFAULT_RULE_SCORES[s] for s in joint.columns])
    np.testing.assert_allclose(scores, expected)
    assert np.isnan(scores[: RULES.warmup]).all()
    assert np.isfinite(scores[RULES.warmup :]).all()
    assert (np.abs(scores[RULES.warmup :]) <= 1).all()


def _run(agent: EnsembleAgent, frame: pd.DataFrame) -> tuple[pd.DataFrame, int, float]:
    result = BacktestEngine(initial_cash=100_000.0).run(
        MarketData.from_frames({"AR": frame}), [agent]
    )
    return result.signals_frame(), len(result.fills), result.metrics().total_return


def _params() -> dict[str, object]:
    return {
        "ml": {"model": "ar1"},
        "regime": {"rules": RULES.model_dump()},
        "long_threshold": 0.1,
        "exit_threshold": 0.05,
        "min_change": 0.05,
        "allow_short": True,
    }


def test_backtest_of_ml_and_regime_trades_deterministically(registry: ModelRegistry) -> None:
    frame = ar1_frame(N_BARS, 0.4, seed=8)
    agent = create("ensemble", _params())
    assert isinstance(agent, EnsembleAgent)
    signals, n_fills, total = _run(agent, frame)
    assert n_fills > 20
    training_end = pd.Timestamp(registry.metadata("ar1").training_end)
    after = signals[pd.DatetimeIndex(signals["ts"]) > training_end]
    before = signals[pd.DatetimeIndex(signals["ts"]) <= training_end]
    # In sample the model abstains and the regime votes alone; afterwards both vote.
    assert len(before) > 0 and len(after) > 20
    assert before["reason"].str.contains(r"ml=none \(w=0\.00\), regime=").all()
    assert (
        after["reason"]
        .str.match(r"ensemble score=[+-]\d\.\d{3}: ml=[+-]\d\.\d{3} \(w=0\.67\)")
        .all()
    )
    assert signals["weight"].abs().le(1.0).all()
    again, again_fills, again_total = _run(create("ensemble", _params()), frame)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(again, signals)
    assert (again_fills, again_total) == (n_fills, total)


def test_model_regime_member_on_a_coarser_timeframe_trades(registry: ModelRegistry) -> None:
    frame = ar1_frame(N_BARS, 0.4, seed=8)
    params = {
        **_params(),
        "regime": {"source": "model", "timeframe": "4h", "fit_bars": 800},
    }
    agent = create("ensemble", params)
    assert isinstance(agent, EnsembleAgent)
    regime = agent.indicators(MarketData.from_frames({"AR": frame}))["score_regime"][0]
    assert np.isnan(regime[:800]).all() and np.isfinite(regime[800:]).all()
    signals, n_fills, _ = _run(agent, frame)
    assert n_fills > 10
    again, _, _ = _run(create("ensemble", params), frame)  # type: ignore[arg-type]
    pd.testing.assert_frame_equal(again, signals)


def test_session_host_decides_as_the_backtest(registry: ModelRegistry) -> None:
    frame = ar1_frame(N_BARS, 0.4, seed=8)
    data = MarketData.from_frames({"AR": frame})
    stop = N_TRAIN + 60
    signals, _, _ = _run(create("ensemble", _params()), frame.iloc[:stop])  # type: ignore[arg-type]
    host = AgentHost([create("ensemble", _params())], ["AR"])
    host.extend(data.slice(0, N_TRAIN))
    # The backtest's targets up to here carry over, as a restored session's state would.
    host.restore({"agents": [{"targets": _targets_at(signals, N_TRAIN, data)}]})
    account = AccountSnapshot(cash=100_000.0, equity_value=100_000.0, positions={})
    live = []
    for i in range(N_TRAIN, stop):
        host.extend(data.slice(i, i + 1))
        live.extend(sig for _, sig in host.decide(account))
    expected = signals[pd.DatetimeIndex(signals["ts"]) >= data.index[N_TRAIN]]
    assert len(live) == len(expected) > 2
    assert [s.ts for s in live] == list(expected["ts"])
    assert [s.reason for s in live] == list(expected["reason"])
    np.testing.assert_allclose([s.weight for s in live], expected["weight"], rtol=1e-9)


def _targets_at(signals: pd.DataFrame, i: int, data: MarketData) -> dict[str, float]:
    earlier = signals[pd.DatetimeIndex(signals["ts"]) < data.index[i]]
    return {"AR": float(earlier["weight"].iloc[-1])} if len(earlier) else {}
