"""Datasets line features up with labels; CV scores say whether there is anything to learn."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from raytrader.ml.features import FeatureConfig
from raytrader.ml.training import LabelConfig, TrainSpec, make_dataset, train
from tests.unit.ml._synthetic import ar1_frame

FEATURES = FeatureConfig(vol_rank_window=50)


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


def test_train_xgboost_three_classes_metrics_without_warnings() -> None:
    spec = TrainSpec(
        kind="xgboost",
        params={"n_estimators": 20},
        features=FEATURES,
        labels=LabelConfig(horizon=5, dead_band=0.002),
        cv_splits=3,
    )
    with warnings.catch_warnings():
        # XGBoost's float32 probabilities once made log_loss warn that rows do not sum to 1.
        warnings.simplefilter("error")
        result = train(ar1_frame(800, 0.0, seed=5), spec)
    assert set(result.model.classes_) == {-1, 0, 1}
    assert 0 < result.info.cv_metrics["log_loss"] < 5
