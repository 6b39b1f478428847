"""Leakage-safe cross-validation for labels that look ahead (purging and embargo).

A label at sample ``i`` is read from the samples up to ``label_end[i]``. A training sample
whose label window overlaps a test fold's would teach the model the test answers, so it is
purged. Two sklearn splitters:

- ``PurgedWalkForwardCV``: test folds walk forward through the data, training only on the
  past (expanding, or the last ``max_train_size`` samples); purged, plus an optional
  ``embargo`` of samples dropped before each test fold.
- ``PurgedKFoldCV``: contiguous folds, training on both sides of the test fold; purged, and
  the ``embargo`` samples right after each test fold dropped (their features overlap the test
  period's: López de Prado, *Advances in Financial ML*, ch. 7).

``label_end`` is either an integer array (positions of samples, as ``raytrader.ml.labels``
returns them when every bar is a sample) or a ``pd.Series`` of end timestamps indexed by the
samples' timestamps (after rows were dropped).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.model_selection import BaseCrossValidator  # type: ignore[import-untyped]

__all__ = ["PurgedKFoldCV", "PurgedWalkForwardCV", "purge"]

IntArray = npt.NDArray[np.int64]
LabelEnd = npt.ArrayLike | pd.Series


def _spans(label_end: LabelEnd | None, n: int) -> tuple[IntArray, IntArray]:
    """Start and end of every sample's label window, on one numeric axis."""
    if label_end is None:
        pos = np.arange(n, dtype=np.int64)
        return pos, pos
    if isinstance(label_end, pd.Series):
        if not isinstance(label_end.index, pd.DatetimeIndex):
            raise TypeError("label_end as a Series must be indexed by the samples' timestamps")
        start = label_end.index.as_unit("ns").asi8.astype(np.int64)
        end = pd.DatetimeIndex(label_end.to_numpy()).as_unit("ns").asi8.astype(np.int64)
    else:
        end = np.asarray(label_end, dtype=np.int64)
        start = np.arange(end.shape[0], dtype=np.int64)
    if end.shape[0] != n:
        raise ValueError(f"label_end has {end.shape[0]} entries for {n} samples")
    if np.any(end < start):
        raise ValueError("label_end must not precede its sample")
    if np.any(np.diff(start) < 0):
        raise ValueError("samples must be in time order")
    return start, end


def purge(
    train: IntArray, test: IntArray, start: IntArray, end: IntArray, embargo: int = 0
) -> IntArray:
    """``train`` without samples whose label window overlaps the test fold's, nor the
    ``embargo`` samples after the (contiguous) test fold."""
    if test.size == 0:
        return train
    lo, hi = int(test[0]), int(test[-1])
    test_start, test_end = start[lo], int(end[test].max())
    overlaps = (start[train] <= test_end) & (end[train] >= test_start)
    embargoed = (train > hi) & (train <= hi + embargo)
    out: IntArray = train[~overlaps & ~embargoed]
    return out


class _PurgedCV(BaseCrossValidator):  # type: ignore[misc]
    n_splits: int
    label_end: LabelEnd | None

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        return self.n_splits

    def _check(self, X: Any) -> int:
        if self.n_splits < 2:
            raise ValueError(f"n_splits must be >= 2, got {self.n_splits}")
        if getattr(self, "embargo", 0) < 0:
            raise ValueError("embargo must be >= 0")
        return len(X)


class PurgedWalkForwardCV(_PurgedCV):
    """Walk-forward folds: train on the past only, purged of labels reaching into the test fold.

    Args:
        n_splits: number of test folds (the last ``n_splits * test_size`` samples).
        label_end: where each sample's label ends (see the module docs); None for labels
            that end at their own sample.
        test_size: samples per test fold; default ``n_samples // (n_splits + 1)``.
        max_train_size: keep only the most recent training samples (a rolling window).
        embargo: samples right before each test fold dropped from training as well.
    """

    def __init__(
        self,
        n_splits: int = 5,
        *,
        label_end: LabelEnd | None = None,
        test_size: int | None = None,
        max_train_size: int | None = None,
        embargo: int = 0,
    ) -> None:
        self.n_splits = n_splits
        self.label_end = label_end
        self.test_size = test_size
        self.max_train_size = max_train_size
        self.embargo = embargo

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[IntArray, IntArray]]:
        n = self._check(X)
        start, end = _spans(self.label_end, n)
        test_size = self.test_size or n // (self.n_splits + 1)
        first_test = n - self.n_splits * test_size
        if test_size < 1 or first_test < 1:
            raise ValueError(
                f"{n} samples are too few for {self.n_splits} test folds of {test_size}"
            )
        for k in range(self.n_splits):
            lo = first_test + k * test_size
            test = np.arange(lo, lo + test_size, dtype=np.int64)
            train = purge(np.arange(max(0, lo - self.embargo), dtype=np.int64), test, start, end)
            if self.max_train_size is not None:
                train = train[-self.max_train_size :]
            if train.size == 0:
                raise ValueError(f"fold {k} has no training sample left after purging")
            yield train, test


class PurgedKFoldCV(_PurgedCV):
    """Contiguous folds (no shuffle), training on both sides: purged, embargo after the test.

    Args:
        n_splits: number of folds.
        label_end: where each sample's label ends (see the module docs).
        embargo: samples right after each test fold dropped from training.
    """

    def __init__(
        self, n_splits: int = 5, *, label_end: LabelEnd | None = None, embargo: int = 0
    ) -> None:
        self.n_splits = n_splits
        self.label_end = label_end
        self.embargo = embargo

    def split(
        self, X: Any, y: Any = None, groups: Any = None
    ) -> Iterator[tuple[IntArray, IntArray]]:
        n = self._check(X)
        if n < self.n_splits:
            raise ValueError(f"{n} samples are too few for {self.n_splits} folds")
        start, end = _spans(self.label_end, n)
        everything = np.arange(n, dtype=np.int64)
        for test in np.array_split(everything, self.n_splits):
            rest = np.setdiff1d(everything, test, assume_unique=True)
            yield purge(rest, test, start, end, self.embargo), test
