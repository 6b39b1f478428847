"""Periodic refits on a rolling window, using only the data up to the refit's bar.

A refit at bar ``t`` trains on the samples of bars ``t - window + 1 .. t`` whose label was
read by ``t`` (``end <= t``): the features are causal and a label ending later would look past
``t``, so nothing after ``t`` reaches the model. Its predictions serve bars ``t`` up to the next
refit. The schedule is every ``every`` bars from the first bar with a full window of features,
or in phase with a given earlier refit (a session keeps the phase when its history is trimmed).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from raytrader.ml.labels import direction_labels, triple_barrier_labels
from raytrader.ml.models import make_model

__all__ = ["MIN_SAMPLES", "fit_window", "labels_of", "refit_points"]

#: A window with fewer usable samples (or a single class) is not refitted.
MIN_SAMPLES = 10


def refit_points(
    n_bars: int, first: int, every: int, anchor: int | None = None
) -> npt.NDArray[np.int64]:
    """Bars at which to refit: ``first`` and every ``every`` bars after it, or the bars from
    ``first`` on that are a multiple of ``every`` away from ``anchor``."""
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    start = first if anchor is None else first + (anchor - first) % every
    return np.arange(start, n_bars, every, dtype=np.int64)


def labels_of(close: pd.Series, config: dict[str, Any]) -> pd.DataFrame:
    """Labels and their end positions, as a registry record's ``label_config`` makes them."""
    method = config.get("method", "direction")
    horizon = int(config.get("horizon", 5))
    dead_band = float(config.get("dead_band", 0.0))
    if method == "direction":
        return direction_labels(close, horizon, dead_band)
    return triple_barrier_labels(
        close,
        take_profit=float(config.get("take_profit", 2.0)),
        stop_loss=float(config.get("stop_loss", 2.0)),
        max_holding=horizon,
        vol_window=int(config.get("vol_window", 20)),
        dead_band=dead_band,
    )


def fit_window(
    X: pd.DataFrame,
    labels: pd.DataFrame,
    t: int,
    window: int,
    *,
    kind: str,
    params: dict[str, Any],
    seed: int,
    drop_flat: bool = False,
) -> Any | None:
    """The model refitted at bar ``t`` on the last ``window`` bars, or None when they hold
    too few usable samples or a single class."""
    lo = max(0, t - window + 1)
    rows = slice(lo, t + 1)
    y = labels["label"].to_numpy(dtype=np.float64)[rows]
    end = labels["end"].to_numpy()[rows]
    feats = X.iloc[rows]
    keep = feats.notna().all(axis=1).to_numpy() & np.isfinite(y) & (end <= t) & (end >= 0)
    if drop_flat:
        keep &= y != 0
    if keep.sum() < MIN_SAMPLES or np.unique(y[keep]).shape[0] < 2:
        return None
    model = make_model(kind, params, seed)
    return model.fit(feats[keep], y[keep].astype(np.int64))
