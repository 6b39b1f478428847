"""Issue point 7, "it learns, honestly": out of sample and after costs.

On AR(1) returns the ML agent, trained on the first bars only, beats buy-and-hold and seeded
random agents on the later bars through the event-driven engine with commission and slippage;
on a pure random walk its out-of-sample accuracy is within noise of 50% and it has no
significant edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raytrader.agents.base import Agent
from raytrader.agents.context import BarContext
from raytrader.agents.ml_agent import MLAgent
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.domain import Signal
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.ml.features import FeatureConfig, build_features
from raytrader.ml.registry import ModelRegistry
from raytrader.ml.training import LabelConfig, TrainSpec, make_dataset, train
from tests.unit.ml._synthetic import ar1_frame

N_BARS, N_TRAIN = 2400, 1400
SPEC = TrainSpec(
    kind="logistic",
    features=FeatureConfig(vol_rank_window=50),
    labels=LabelConfig(horizon=1),
    cv_splits=3,
)
# 5 bps commission and 2 bps adverse slippage on every fill: 14 bps per round trip.
COSTS = PaperBrokerConfig(commission=CommissionModel(bps=5.0), slippage=SlippageModel(bps=2.0))
RANDOM_SEEDS = range(5)


class RandomAgent(Agent):
    """Test-only benchmark: at each bar from ``start`` on, with probability ``p_trade``, a new
    target drawn uniformly from {-1, 0, 1} (seeded)."""

    name = "random_test"

    def __init__(self, seed: int, start: pd.Timestamp, p_trade: float = 0.2) -> None:
        super().__init__()
        self._rng = np.random.default_rng(seed)
        self._start, self._p = start, p_trade

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        if pd.Timestamp(ctx.ts) <= self._start or self._rng.random() >= self._p:
            return None
        w = float(self._rng.integers(-1, 2))
        return [Signal(s, ctx.ts, direction=int(w), weight=w) for s in ctx.symbols]


def _backtest(agent: Agent, frame: pd.DataFrame) -> tuple[float, pd.Series, int]:
    """Total return, per-bar equity returns and the number of fills, after costs."""
    data = MarketData.from_frames({"AR": frame})
    result = BacktestEngine(initial_cash=100_000.0, broker=COSTS).run(data, [agent])
    return result.metrics().total_return, result.equity.pct_change().dropna(), len(result.fills)


def _alpha_t(strategy: pd.Series, market: pd.Series) -> float:
    """t-statistic of the intercept of per-bar strategy returns regressed on the market's:
    the edge left once the market exposure is paid for (a lucky drift is not an edge)."""
    m = market.reindex(strategy.index).to_numpy()
    y = strategy.to_numpy()
    X = np.column_stack([np.ones_like(m), m])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    resid = y - X @ coef
    sigma2 = float(resid @ resid) / (len(y) - 2)
    cov = sigma2 * np.linalg.inv(X.T @ X)
    return 0.0 if cov[0, 0] == 0 else float(coef[0] / math.sqrt(cov[0, 0]))


def _oos_accuracy(registry: ModelRegistry, frame: pd.DataFrame) -> tuple[float, int]:
    """Accuracy of the registry model on the labelled samples after its training end."""
    loaded = registry.load("m")
    ds = make_dataset(frame, SPEC.features, SPEC.labels)
    end = pd.Timestamp(loaded.record.training_end)
    oos = ds.X.index > end
    X = build_features(frame, SPEC.features).loc[ds.X.index[oos], list(loaded.record.features)]
    pred = loaded.model.predict(X)
    truth = ds.y[oos].to_numpy()
    return float((pred == truth).mean()), int(oos.sum())


def _bound(n: int) -> float:
    """Half-width of the 3-sigma band of a fair coin's accuracy over ``n`` trials (p=0.5):
    3 * sqrt(0.25 / n); a chance model falls outside it with probability about 0.3%."""
    return 3.0 * math.sqrt(0.25 / n)


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelRegistry]:
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(tmp_path))
    yield ModelRegistry()


def _train(registry: ModelRegistry, frame: pd.DataFrame) -> pd.Timestamp:
    result = train(frame.iloc[:N_TRAIN], SPEC, symbol="AR")
    registry.save("m", result.model, result.info)
    return pd.Timestamp(result.info.training_end)


@pytest.mark.parametrize("seed", [8, 21, 5])
def test_ar1_beats_buy_and_hold_and_random_out_of_sample_after_costs(
    registry: ModelRegistry, seed: int
) -> None:
    frame = ar1_frame(N_BARS, 0.4, seed=seed)
    end = _train(registry, frame)
    acc, n = _oos_accuracy(registry, frame)
    assert acc > 0.5 + _bound(n)  # well outside a coin's noise

    total, rets, n_fills = _backtest(MLAgent(model="m", allow_short=True), frame)
    assert n_fills > 50  # it traded, and paid for it
    oos = frame.loc[frame.index > end, "close"]
    buy_and_hold = float(oos.iloc[-1] / oos.iloc[0] - 1)  # before costs: the stricter bar
    randoms = [_backtest(RandomAgent(s, end), frame)[0] for s in RANDOM_SEEDS]
    assert total > buy_and_hold + 0.2
    assert total > max(randoms) + 0.2
    market = frame["close"].pct_change()
    assert _alpha_t(rets[rets.index > end], market) > 3.0


@pytest.mark.parametrize("seed", [8, 21, 5])
def test_random_walk_is_not_learnt(registry: ModelRegistry, seed: int) -> None:
    frame = ar1_frame(N_BARS, 0.0, seed=seed)
    end = _train(registry, frame)
    acc, n = _oos_accuracy(registry, frame)
    assert n > 900
    assert abs(acc - 0.5) < _bound(n)

    total, rets, _ = _backtest(MLAgent(model="m", allow_short=True), frame)
    # No significant edge: after costs and net of its market exposure, the mean per-bar
    # return is not above zero at 2 sigma (a drifting walk lifts anything held long).
    market = frame["close"].pct_change()
    assert _alpha_t(rets[rets.index > end], market) < 2.0
    oos = frame.loc[frame.index > end, "close"]
    buy_and_hold = float(oos.iloc[-1] / oos.iloc[0] - 1)
    assert total < buy_and_hold + 0.2
