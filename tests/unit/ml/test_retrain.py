"""The ML agent refitting its model on a rolling window: the schedule, no look-ahead, a backtest
that trades the refits' predictions, and a session (with a restart) deciding as the backtest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import AgentConfigError, create
from raytrader.agents.host import AccountSnapshot, AgentHost
from raytrader.agents.ml_agent import MLAgent
from raytrader.backtesting.engine import BacktestEngine
from raytrader.backtesting.result import BacktestResult
from raytrader.data.market_data import MarketData
from raytrader.domain import Signal
from raytrader.ml.features import FeatureConfig
from raytrader.ml.registry import ModelRegistry
from raytrader.ml.retrain import refit_points
from raytrader.ml.training import LabelConfig, TrainSpec, train
from tests.unit.ml._synthetic import ar1_frame

FEATURES = FeatureConfig(vol_rank_window=50)
SPEC = TrainSpec(kind="logistic", features=FEATURES, labels=LabelConfig(horizon=1), cv_splits=2)
N_BARS, EVERY, WINDOW = 900, 150, 200
WARMUP = FEATURES.warmup + WINDOW - 1
PARAMS: dict[str, Any] = {
    "model": "recipe",
    "retrain_every": EVERY,
    "train_window": WINDOW,
    "allow_short": True,
}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return ar1_frame(N_BARS, 0.4, seed=11)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, frame: pd.DataFrame) -> Path:
    """A registry whose ``recipe`` v1 was trained on other data: only its recipe is used."""
    root = tmp_path_factory.mktemp("retrain")
    result = train(ar1_frame(400, 0.4, seed=99), SPEC, symbol="AR")
    ModelRegistry(root / "models").save("recipe", result.model, result.info)
    return root


@pytest.fixture(autouse=True)
def _registry(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(data_dir))
    yield


def _backtest(agent: MLAgent, frame: pd.DataFrame) -> BacktestResult:
    return BacktestEngine(initial_cash=100_000.0).run(
        MarketData.from_frames({"AR": frame}), [agent]
    )


@pytest.fixture(scope="module")
def backtest(frame: pd.DataFrame, data_dir: Path) -> tuple[MLAgent, BacktestResult]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAYTRADER_DATA_DIR", str(data_dir))
        agent = MLAgent(**PARAMS)
        return agent, _backtest(agent, frame)


def test_refit_schedule() -> None:
    assert list(refit_points(10, 3, 3)) == [3, 6, 9]
    assert list(refit_points(10, 3, 3, anchor=5)) == [5, 8]  # in phase with an earlier refit
    assert list(refit_points(10, 3, 4, anchor=9)) == [5, 9]


def test_params_go_together_and_the_window_must_hold_labels() -> None:
    with pytest.raises(AgentConfigError, match="retrain_every and train_window go together"):
        create("ml", {"model": "recipe", "retrain_every": 10})
    with pytest.raises(AgentConfigError, match="train_window"):
        create("ml", {"model": "recipe", "retrain_every": 10, "train_window": 10})
    agent = create("ml", PARAMS)
    assert agent.warmup == WARMUP  # a full window of features before the first refit


def test_backtest_trades_the_refits_predictions(
    backtest: tuple[MLAgent, BacktestResult], frame: pd.DataFrame
) -> None:
    agent, result = backtest
    expected = [frame.index[t] for t in range(WARMUP, N_BARS, EVERY)]
    assert agent.refits == expected
    signals = result.signals_frame()
    # The registry model is only a recipe: trading starts at the first refit, and only then.
    assert pd.DatetimeIndex(signals["ts"]).min() >= expected[0]
    assert len(result.fills) > 20
    # Every refit is used: signals come from each model's stretch of bars.
    stretch = np.searchsorted(np.asarray(expected), pd.DatetimeIndex(signals["ts"]), side="right")
    assert set(stretch) == set(range(1, len(expected) + 1))
    # Rolling refits on AR(1) returns predict the next bar: better than holding (no costs).
    oos = frame["close"].loc[expected[0] :]
    assert result.metrics().total_return > oos.iloc[-1] / oos.iloc[0] - 1 + 0.1


def test_refits_ignore_the_future(
    backtest: tuple[MLAgent, BacktestResult], frame: pd.DataFrame
) -> None:
    _, result = backtest
    t = WARMUP + 2 * EVERY + 20  # after the third refit, before the fourth
    changed = frame.copy()
    changed.iloc[t + 1 :, :4] *= np.exp(np.random.default_rng(0).normal(0, 0.05, N_BARS - t - 1))[
        :, None
    ]
    agent = MLAgent(**PARAMS)
    other = _backtest(agent, changed)
    base_ind = MLAgent(**PARAMS).indicators(MarketData.from_frames({"AR": frame}))
    other_ind = MLAgent(**PARAMS).indicators(MarketData.from_frames({"AR": changed}))
    for name in ("p_up", "p_down"):
        np.testing.assert_array_equal(base_ind[name][:, : t + 1], other_ind[name][:, : t + 1])
        assert not np.allclose(base_ind[name][:, t + 1 :], other_ind[name][:, t + 1 :])
    cut = frame.index[t]

    def upto(r: BacktestResult) -> pd.DataFrame:
        s = r.signals_frame()
        return s[pd.DatetimeIndex(s["ts"]) <= cut].reset_index(drop=True)

    assert len(upto(result)) > 5
    pd.testing.assert_frame_equal(upto(result), upto(other))
    assert not upto(result).equals(result.signals_frame())  # the future did change later ones


def test_session_with_a_restart_decides_as_the_backtest(
    backtest: tuple[MLAgent, BacktestResult], frame: pd.DataFrame
) -> None:
    _, result = backtest
    stop, restart = WARMUP + 2 * EVERY + 10, WARMUP + EVERY + 30
    data = MarketData.from_frames({"AR": frame})
    account = AccountSnapshot(cash=100_000.0, equity_value=100_000.0, positions={})
    host = AgentHost([MLAgent(**PARAMS)], ["AR"])
    host.extend(data.slice(0, WARMUP))
    live: list[Signal] = []
    for i in range(WARMUP, stop):
        if i == restart:  # a restarted session: a new agent, its state, the history reloaded
            state = host.state()
            host = AgentHost([MLAgent(**PARAMS)], ["AR"])
            host.extend(data.slice(0, i))
            host.restore(state)
        host.extend(data.slice(i, i + 1))
        live.extend(sig for _, sig in host.decide(account))
    signals = result.signals_frame()
    signals = signals[pd.DatetimeIndex(signals["ts"]) < frame.index[stop]]
    assert len(live) == len(signals) > 5
    assert [s.ts for s in live] == list(signals["ts"])
    np.testing.assert_allclose([s.weight for s in live], signals["weight"], rtol=1e-12)
    assert host.agents[0].get_state()["last_refit"] == frame.index[WARMUP + 2 * EVERY].isoformat()
