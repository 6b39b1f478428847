"""Seeded series with a known predictable component, shared by the ML tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


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
