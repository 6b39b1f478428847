"""The CV's ``sharpe``: trading each test fold's predictions (long on P(up) > 0.5, short on
P(down) > 0.5 when allowed, else flat; the next bar's return, net of costs), annualized, the
same number empyrical gives on the same returns; a search may rank by it (higher is better)."""

from __future__ import annotations

from typing import Any

import empyrical
import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from sklearn.base import clone  # type: ignore[import-untyped]

from raytrader.ml.cv import PurgedWalkForwardCV
from raytrader.ml.features import FeatureConfig
from raytrader.ml.models import make_model
from raytrader.ml.search import search_local
from raytrader.ml.training import (
    LabelConfig,
    TradingSpec,
    TrainSpec,
    cross_validate,
    make_dataset,
    mean_metrics,
    strategy_returns,
)
from tests.unit.ml._synthetic import ar1_frame

BASE: dict[str, Any] = {
    "kind": "logistic",
    "features": FeatureConfig(vol_rank_window=50, return_lags=(1, 2, 5)),
    "labels": LabelConfig(horizon=1),
    "cv_splits": 3,
}
HOURS_PER_YEAR = 365 * 24  # the AR(1) bars are hourly, weekends included


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return ar1_frame(900, 0.3, seed=5)


def test_positions_returns_and_costs_by_hand() -> None:
    labels = np.array([-1, 1])
    # P(down), P(up) per sample: up, up, down, undecided (0.5 is not > 0.5), up.
    proba = np.array([[0.4, 0.6], [0.2, 0.8], [0.7, 0.3], [0.5, 0.5], [0.45, 0.55]])
    nxt = np.array([0.01, -0.02, 0.03, 0.04, -0.01])

    long_only = strategy_returns(proba, labels, nxt, TradingSpec())
    np.testing.assert_allclose(long_only, [0.01, -0.02, 0.0, 0.0, -0.01])
    # 10 bps per unit of position change: in at 0, out at 2, in at 4.
    costly = strategy_returns(proba, labels, nxt, TradingSpec(cost_bps=10))
    np.testing.assert_allclose(costly, [0.01 - 0.001, -0.02, -0.001, 0.0, -0.01 - 0.001])
    # Shorts: long -> short at 2 turns over 2 units, short -> flat at 3 one, flat -> long one.
    both = strategy_returns(proba, labels, nxt, TradingSpec(cost_bps=10, allow_short=True))
    np.testing.assert_allclose(both, [0.01 - 0.001, -0.02, -0.03 - 0.002, -0.001, -0.011])


def test_three_classes_read_up_and_down_not_the_flat_class() -> None:
    labels = np.array([-1, 0, 1])
    proba = np.array([[0.3, 0.2, 0.5], [0.1, 0.3, 0.6], [0.6, 0.3, 0.1], [0.2, 0.6, 0.2]])
    nxt = np.array([0.01, 0.02, 0.03, 0.04])
    out = strategy_returns(proba, labels, nxt, TradingSpec(allow_short=True))
    np.testing.assert_allclose(out, [0.0, 0.02, -0.03, 0.0])


def test_fold_sharpe_equals_empyrical_on_the_same_returns(frame: pd.DataFrame) -> None:
    spec = TrainSpec(**BASE, params={"C": 1.0}, trading=TradingSpec(cost_bps=2))
    ds = make_dataset(frame, spec.features, spec.labels)
    folds = cross_validate(ds, spec)

    # The folds redone here, the next bar's return read from the closes themselves.
    close = frame["close"]
    next_ret = (close.shift(-1) / close - 1.0).loc[ds.X.index].to_numpy()
    model = make_model(spec.kind, spec.params, spec.seed)
    cv = PurgedWalkForwardCV(spec.cv_splits, label_end=ds.label_end)
    labels = np.unique(ds.y)
    for k, (tr, te) in enumerate(cv.split(ds.X)):
        fitted = clone(model).fit(ds.X.iloc[tr], ds.y.iloc[tr])
        p_up = fitted.predict_proba(ds.X.iloc[te])[:, list(fitted.classes_).index(1)]
        position = (p_up > 0.5).astype(float)
        turnover = np.abs(np.diff(position, prepend=0.0))
        rets = pd.Series(position * next_ret[te] - turnover * 2e-4, index=ds.X.index[te])
        assert 0 < turnover.sum() < len(te)  # it trades, and not on every bar
        expected = empyrical.sharpe_ratio(rets, annualization=HOURS_PER_YEAR)
        assert folds["sharpe"][k] == pytest.approx(expected, rel=1e-9)
        np.testing.assert_allclose(
            strategy_returns(np.c_[1 - p_up, p_up], labels, next_ret[te], spec.trading), rets
        )
    assert mean_metrics(folds)["sharpe"] == pytest.approx(folds["sharpe"].mean(), rel=1e-12)
    # AR(1) returns are predictable: the out-of-sample strategy earns, net of 2 bps.
    assert mean_metrics(folds)["sharpe"] > 5.0


def test_costs_lower_the_sharpe_and_periods_per_year_scales_it(frame: pd.DataFrame) -> None:
    def sharpe(**trading: Any) -> float:
        spec = TrainSpec(**BASE, trading=TradingSpec(**trading))
        ds = make_dataset(frame, spec.features, spec.labels)
        return mean_metrics(cross_validate(ds, spec))["sharpe"]

    free = sharpe()
    assert sharpe(cost_bps=20) < free
    assert sharpe(periods_per_year=HOURS_PER_YEAR / 4) == pytest.approx(free / 2, rel=1e-12)
    assert sharpe(allow_short=True) != free


def test_a_search_ranks_by_sharpe_highest_first(frame: pd.DataFrame) -> None:
    search = {"space": {"C": {"values": [0.0001, 0.01, 1.0]}}, "objective": "sharpe"}
    spec = TrainSpec(**BASE, search=search, trading=TradingSpec(cost_bps=2))
    assert spec.search is not None and spec.search.direction == "maximize"
    result = search_local(frame, spec)
    table = result.table
    assert list(table["sharpe"]) == sorted(table["sharpe"], reverse=True)
    assert table["sharpe"].nunique() == 3
    assert result.best is not None and result.best["objective"] == "sharpe"
    assert result.best["value"] == table["sharpe"].max()
    assert result.best["params"] == {"C": table["C"][0]}
    assert "sharpe" in result.metadata(3)["top"][0]


@pytest.mark.parametrize(
    ("trading", "field"),
    [({"cost_bps": -1}, "cost_bps"), ({"periods_per_year": 0}, "periods_per_year")],
)
def test_bad_trading_sections_name_the_field(trading: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        TrainSpec(**BASE, trading=trading)
    assert f"trading.{field}" in str(err.value)
