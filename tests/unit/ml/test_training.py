"""Datasets line features up with labels; CV scores say whether there is anything to learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raytrader.ml.features import FeatureConfig
from raytrader.ml.training import LabelConfig, TrainSpec, make_dataset, train

FEATURES = FeatureConfig(vol_rank_window=50)


def ar1_frame(n: int, phi: float, seed: int) -> pd.DataFrame:
    """Closes whose one-bar log returns follow an AR(1) with coefficient ``phi``."""
    rng = np.random.default_rng(seed)
    eps = rng.normal(0.0, 0.01, n)
    ret = np.empty(n)
    ret[0] = eps[0]
    for t in range(1, n):
        ret[t] = phi * ret[t - 1] + eps[t]
    close = 100 * np.exp(np.cumsum(ret))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    index = pd.date_range("2021-01-01", periods=n, freq="1h", tz="UTC")
    volume = rng.integers(1_000, 5_000, n).astype(float)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def test_make_dataset_aligns_features_labels_and_ends() -> None:
    frame = ar1_frame(400, 0.0, seed=1)
    ds = make_dataset(frame, FEATURES, LabelConfig(horizon=3, dead_band=0.002, drop_flat=True))
    assert not ds.X.isna().any().any()
    assert ds.X.index[0] >= frame.index[FEATURES.warmup]
    assert make_dataset(frame, FEATURES).X.index[0] == frame.index[FEATURES.warmup]
    assert ds.X.index.equals(ds.y.index) and ds.X.index.equals(ds.label_end.index)
    assert set(ds.y.unique()) == {-1, 1}
    # Each label ends 3 bars later and agrees with the forward return there.
    assert ((ds.label_end - ds.label_end.index) == pd.Timedelta(hours=3)).all()
    t = ds.X.index[10]
    fwd = frame["close"].shift(-3)[t] / frame["close"][t] - 1
    assert ds.y[t] == np.sign(fwd) and abs(fwd) > 0.002
    assert ds.X.index[-1] <= frame.index[-4]


def test_make_dataset_triple_barrier_ends_at_the_touch() -> None:
    frame = ar1_frame(300, 0.0, seed=2)
    labels = LabelConfig(method="triple_barrier", horizon=10, take_profit=1.0, stop_loss=1.0)
    ds = make_dataset(frame, FEATURES, labels)
    lead = (ds.label_end - ds.label_end.index) / pd.Timedelta(hours=1)
    assert lead.between(1, 10).all()
    assert lead.min() < 10  # some barriers are touched before the vertical one


@pytest.mark.parametrize(("phi", "low", "high"), [(0.4, 0.58, 1.0), (0.0, 0.44, 0.56)])
def test_train_cv_accuracy_finds_signal_only_where_there_is_one(
    phi: float, low: float, high: float
) -> None:
    # Next-bar direction: predictable from the last return under AR(1), not in a random walk.
    spec = TrainSpec(
        kind="logistic",
        features=FEATURES,
        labels=LabelConfig(horizon=1),
        cv_splits=4,
    )
    result = train(ar1_frame(3000, phi, seed=3), spec)
    assert low < result.info.cv_metrics["accuracy"] < high
    assert len(result.folds) == 4
    assert result.info.training_end == pd.Timestamp("2021-01-01", tz="UTC") + pd.Timedelta(
        hours=2999
    )


def test_train_rejects_too_little_data() -> None:
    with pytest.raises(ValueError, match="too few"):
        train(ar1_frame(FEATURES.warmup + 8, 0.0, seed=4), TrainSpec(features=FEATURES))
