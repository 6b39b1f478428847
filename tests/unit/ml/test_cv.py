"""Purged splitters: folds by hand, and no label overlap on random horizons."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import cross_val_score

from raytrader.ml.cv import PurgedKFoldCV, PurgedWalkForwardCV
from raytrader.ml.models import make_model


def _folds(cv: PurgedWalkForwardCV | PurgedKFoldCV, n: int) -> list[tuple[list[int], list[int]]]:
    return [(tr.tolist(), te.tolist()) for tr, te in cv.split(np.zeros((n, 1)))]


def test_walk_forward_folds_by_hand() -> None:
    # 12 samples, 3 test folds of 2 at the end; labels read 2 bars ahead (end = i + 2).
    end = np.arange(12) + 2
    folds = _folds(PurgedWalkForwardCV(3, label_end=end, test_size=2), 12)
    assert folds == [
        ([0, 1, 2, 3], [6, 7]),  # 4 and 5 read bars 6 and 7: purged
        ([0, 1, 2, 3, 4, 5], [8, 9]),
        ([0, 1, 2, 3, 4, 5, 6, 7], [10, 11]),
    ]
    # Embargo: one more sample dropped before each test fold, on top of the purge.
    end1 = np.arange(12) + 1
    assert _folds(PurgedWalkForwardCV(3, label_end=end1, test_size=2), 12)[0][0] == [0, 1, 2, 3, 4]
    embargoed = _folds(PurgedWalkForwardCV(3, label_end=end1, test_size=2, embargo=2), 12)
    assert [tr for tr, _ in embargoed] == [
        [0, 1, 2, 3],
        [0, 1, 2, 3, 4, 5],
        [0, 1, 2, 3, 4, 5, 6, 7],
    ]
    # A rolling window keeps the most recent training samples.
    rolling = _folds(PurgedWalkForwardCV(3, label_end=end, test_size=2, max_train_size=3), 12)
    assert [tr for tr, _ in rolling] == [[1, 2, 3], [3, 4, 5], [5, 6, 7]]


def test_walk_forward_default_test_size_like_time_series_split() -> None:
    folds = _folds(PurgedWalkForwardCV(4), 10)  # 10 // 5 = 2 per fold, no look-ahead labels
    assert folds == [
        ([0, 1], [2, 3]),
        ([0, 1, 2, 3], [4, 5]),
        ([0, 1, 2, 3, 4, 5], [6, 7]),
        ([0, 1, 2, 3, 4, 5, 6, 7], [8, 9]),
    ]


def test_kfold_purge_and_embargo_by_hand() -> None:
    end = np.arange(10) + 1  # each label reads the next bar
    folds = _folds(PurgedKFoldCV(5, label_end=end, embargo=1), 10)
    # Test labels span bars 0..2: sample 2 starts inside it (purged, and embargoed anyway).
    assert folds[0] == ([3, 4, 5, 6, 7, 8, 9], [0, 1])
    assert folds[2] == ([0, 1, 2, 7, 8, 9], [4, 5])  # 3 reads bar 4; 6 overlaps and embargoed
    assert folds[4] == ([0, 1, 2, 3, 4, 5, 6], [8, 9])  # 7 reads bar 8
    wider = _folds(PurgedKFoldCV(5, label_end=end, embargo=2), 10)
    assert wider[2] == ([0, 1, 2, 8, 9], [4, 5])  # 7 now embargoed too
    assert wider[0] == ([4, 5, 6, 7, 8, 9], [0, 1])


def test_timestamp_label_end_matches_positions_with_rows_dropped() -> None:
    index = pd.date_range("2024-01-01", periods=14, freq="1h", tz="UTC")
    keep = np.array([0, 1, 2, 3, 4, 5, 8, 9, 10, 11, 12, 13])  # two bars dropped (no label)
    end_pos = np.minimum(keep + 2, 13)
    series = pd.Series(index[end_pos], index=index[keep])
    folds = _folds(PurgedWalkForwardCV(3, label_end=series, test_size=2), 12)
    # Sample 4 (bar 4) reads bar 6, before test fold [bars 8, 9]: kept; sample 5 (bar 5)
    # reads bar 7: kept as well, as the dropped bars are not in the test fold.
    assert folds[0] == ([0, 1, 2, 3, 4, 5], [6, 7])
    assert folds[1] == ([0, 1, 2, 3, 4, 5], [8, 9])  # bars 8, 9 read bars 10, 11: purged


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    horizons=st.lists(st.integers(0, 15), min_size=30, max_size=120),
    n_splits=st.integers(2, 5),
    embargo=st.integers(0, 6),
)
def test_no_training_label_overlaps_test_labels(
    horizons: list[int], n_splits: int, embargo: int
) -> None:
    n = len(horizons)
    end = np.arange(n) + np.asarray(horizons)
    for cv in (
        PurgedWalkForwardCV(n_splits, label_end=end, embargo=embargo),
        PurgedKFoldCV(n_splits, label_end=end, embargo=embargo),
    ):
        try:
            folds = list(cv.split(np.zeros((n, 1))))
        except ValueError as exc:  # purging can leave a walk-forward fold with no training
            assert "no training sample" in str(exc)
            continue
        for train, test in folds:
            assert np.array_equal(test, np.arange(test[0], test[-1] + 1))
            assert not np.isin(train, test).any()
            lo, hi = test[0], end[test].max()
            assert not np.any((train <= hi) & (end[train] >= lo))
            assert not np.any((train > test[-1]) & (train <= test[-1] + embargo))
            if isinstance(cv, PurgedWalkForwardCV):
                assert np.all(train < test[0] - embargo)


def test_splitters_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="label_end has 3 entries for 10"):
        next(PurgedKFoldCV(2, label_end=[1, 2, 3]).split(np.zeros((10, 1))))
    with pytest.raises(ValueError, match="must not precede"):
        next(PurgedKFoldCV(2, label_end=[0, 0, 5, 5]).split(np.zeros((4, 1))))
    with pytest.raises(ValueError, match="too few"):
        next(PurgedWalkForwardCV(5, test_size=3).split(np.zeros((10, 1))))
    with pytest.raises(ValueError, match="n_splits"):
        next(PurgedWalkForwardCV(1).split(np.zeros((10, 1))))


def test_splitter_works_in_sklearn_cross_val_score() -> None:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = (X["a"] + 0.1 * rng.normal(size=200) > 0).astype(int)
    cv = PurgedWalkForwardCV(4, label_end=np.arange(200) + 3)
    scores = cross_val_score(make_model("logistic"), X, y, cv=cv)
    assert scores.shape == (4,)
    assert scores.min() > 0.8  # a learnable target stays learnable after purging
    assert "PurgedWalkForwardCV(" in repr(cv)
