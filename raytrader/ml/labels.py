"""Supervised labels from future prices: forward-return direction and triple-barrier outcomes.

Labels look ahead by construction; each comes with ``end``, the position of the last bar it
used, so cross-validation can purge training samples whose label overlaps a test fold
(``raytrader.ml.cv``). A bar whose label window runs past the data has no label (NaN).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["direction_labels", "rolling_volatility", "triple_barrier_labels"]

FloatArray = npt.NDArray[np.float64]


def direction_labels(close: pd.Series, horizon: int, dead_band: float = 0.0) -> pd.DataFrame:
    """Sign of the forward ``horizon``-bar simple return, 0 inside ``[-dead_band, dead_band]``.

    Returns columns ``label`` (-1, 0, 1; NaN in the last ``horizon`` bars), ``ret`` (the
    forward return) and ``end`` (position of the bar the label was read at).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    if dead_band < 0:
        raise ValueError(f"dead_band must be >= 0, got {dead_band}")
    c = close.to_numpy(dtype=np.float64)
    n = c.shape[0]
    ret = np.full(n, np.nan)
    if n > horizon:
        ret[:-horizon] = c[horizon:] / c[:-horizon] - 1.0
    label = np.where(ret > dead_band, 1.0, np.where(ret < -dead_band, -1.0, 0.0))
    label[np.isnan(ret)] = np.nan
    end = np.arange(n) + horizon
    return pd.DataFrame({"label": label, "ret": ret, "end": end}, index=close.index)


def rolling_volatility(close: pd.Series, window: int = 20) -> pd.Series:
    """Trailing standard deviation of simple one-bar returns (the barriers' unit)."""
    return close.pct_change().rolling(window).std()


def triple_barrier_labels(
    close: pd.Series,
    *,
    take_profit: float = 2.0,
    stop_loss: float = 2.0,
    max_holding: int = 10,
    vol_window: int = 20,
    volatility: pd.Series | None = None,
    dead_band: float = 0.0,
) -> pd.DataFrame:
    """Triple-barrier labels (López de Prado) on closes.

    From the close at bar ``t``, the upper barrier is ``close * (1 + take_profit * vol)`` and
    the lower one ``close * (1 - stop_loss * vol)``, ``vol`` the rolling volatility at ``t``
    (known at ``t``). The first close at or beyond a barrier within the next ``max_holding``
    bars labels the bar +1 (take-profit) or -1 (stop-loss); if neither is touched, the vertical
    barrier labels it by the sign of the return at bar ``t + max_holding`` (0 within
    ``dead_band``). Columns: ``label``, ``barrier`` ("take_profit", "stop_loss", "vertical" or
    None), ``ret`` (return at the touch) and ``end`` (position of the touching bar). Bars
    without volatility or without ``max_holding`` later bars have no label.
    """
    if max_holding < 1:
        raise ValueError(f"max_holding must be >= 1, got {max_holding}")
    if take_profit <= 0 or stop_loss <= 0:
        raise ValueError("take_profit and stop_loss must be > 0 (multiples of volatility)")
    c = close.to_numpy(dtype=np.float64)
    n = c.shape[0]
    vol = (rolling_volatility(close, vol_window) if volatility is None else volatility).to_numpy(
        dtype=np.float64
    )
    label = np.full(n, np.nan)
    ret_at = np.full(n, np.nan)
    end = np.full(n, -1, dtype=np.int64)
    barrier = np.full(n, None, dtype=object)
    m = n - max_holding  # bars with a full window of later closes
    if m > 0:
        path = sliding_window_view(c[1:], max_holding)[:m] / c[:m, np.newaxis] - 1.0
        upper = (take_profit * vol[:m])[:, np.newaxis]
        lower = (-stop_loss * vol[:m])[:, np.newaxis]
        first_up = _first_true(path >= upper)
        first_down = _first_true(path <= lower)
        ok = ~np.isnan(vol[:m]) & (vol[:m] > 0)
        rows = np.arange(m)
        tp = ok & (first_up < first_down)
        sl = ok & (first_down < first_up)
        vertical = ok & ~tp & ~sl  # neither touched (both "infinite")
        # Views on the first m rows: the masks below are of that length.
        lab, ret_m, end_m, bar_m = label[:m], ret_at[:m], end[:m], barrier[:m]
        lab[tp], lab[sl] = 1.0, -1.0
        final = path[:, -1]
        lab[vertical] = np.where(
            final[vertical] > dead_band, 1.0, np.where(final[vertical] < -dead_band, -1.0, 0.0)
        )
        touch = np.where(tp, first_up, np.where(sl, first_down, max_holding - 1))
        ret_m[ok] = path[rows, touch][ok]
        end_m[ok] = rows[ok] + 1 + touch[ok]
        bar_m[tp], bar_m[sl], bar_m[vertical] = "take_profit", "stop_loss", "vertical"
    return pd.DataFrame(
        {"label": label, "barrier": barrier, "ret": ret_at, "end": end}, index=close.index
    )


def _first_true(hits: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Column of the first True per row; the row length where there is none."""
    first = np.argmax(hits, axis=1)
    out: npt.NDArray[np.int64] = np.where(hits.any(axis=1), first, hits.shape[1]).astype(np.int64)
    return out
