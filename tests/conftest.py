"""Shared test settings."""

from __future__ import annotations

import os

# Plots are written to files in tests, never shown.
os.environ.setdefault("MPLBACKEND", "Agg")

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest


def make_gbm_frame(n: int, seed: int = 0, freq: str = "1D", vol: float = 0.02) -> pd.DataFrame:
    """A seeded random-walk OHLCV frame (tests build their own data, not the bundled set)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, vol / 4, n))
    spread = np.abs(rng.normal(0, vol / 2, n))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    index = pd.date_range("2020-01-01", periods=n, freq=freq, tz="UTC", name="ts")
    volume = rng.integers(1_000, 10_000, n).astype(float)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


@pytest.fixture
def gbm_frame() -> Callable[..., pd.DataFrame]:
    return make_gbm_frame
