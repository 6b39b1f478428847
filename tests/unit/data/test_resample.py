"""Resampling OHLCV to coarser ccxt-style timeframes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raytrader.data import resample_ohlcv, timeframe_to_timedelta, validate_ohlcv
from raytrader.data.resample import infer_timeframe


def minute_bars(n: int, seed: int = 0, start: str = "2024-05-06 09:00") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 + np.cumsum(rng.normal(0, 0.1, n))
    open_ = np.r_[100.0, close[:-1]]
    high = np.maximum(open_, close) + rng.uniform(0, 0.2, n)
    low = np.minimum(open_, close) - rng.uniform(0, 0.2, n)
    volume = rng.integers(1, 100, n).astype(float)
    index = pd.date_range(start, periods=n, freq="1min", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def reference(df: pd.DataFrame, step: str) -> pd.DataFrame:
    """Direct computation: group by the left edge of each bin (floor of the timestamp)."""
    keys = df.index.floor(step)
    out = df.groupby(keys).agg(
        open=("open", "first"),
        high=("high", "max"),
        low=("low", "min"),
        close=("close", "last"),
        volume=("volume", "sum"),
    )
    out.index = out.index.as_unit("ns").rename("ts")  # outputs are canonical: ns, UTC
    return out


@pytest.mark.parametrize(("timeframe", "step"), [("5m", "5min"), ("15m", "15min"), ("1h", "1h")])
def test_matches_direct_groupby(timeframe: str, step: str) -> None:
    df = minute_bars(600)
    pd.testing.assert_frame_equal(resample_ohlcv(df, timeframe), reference(df, step))


def test_known_values() -> None:
    index = pd.date_range("2024-01-01 00:00", periods=6, freq="30min", tz="UTC", name="ts")
    df = pd.DataFrame(
        {
            "open": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            "high": [1.5, 9.0, 3.5, 4.5, 5.5, 6.5],
            "low": [0.5, 1.5, 2.5, 0.1, 4.5, 5.5],
            "close": [1.2, 2.2, 3.2, 4.2, 5.2, 6.2],
            "volume": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0],
        },
        index=index,
    )
    out = resample_ohlcv(df, "1h")
    assert list(out.index.strftime("%H:%M")) == ["00:00", "01:00", "02:00"]
    np.testing.assert_array_equal(out["open"], [1.0, 3.0, 5.0])
    np.testing.assert_array_equal(out["high"], [9.0, 4.5, 6.5])
    np.testing.assert_array_equal(out["low"], [0.5, 0.1, 4.5])
    np.testing.assert_array_equal(out["close"], [2.2, 4.2, 6.2])
    np.testing.assert_array_equal(out["volume"], [30.0, 70.0, 110.0])


def test_irregular_minutes_with_gaps_to_hours() -> None:
    df = minute_bars(8 * 60, seed=3, start="2024-05-06 08:00")
    rng = np.random.default_rng(7)
    keep = rng.random(len(df)) > 0.3  # random missing minutes
    keep[(df.index.hour == 11)] = False  # a whole empty hour
    keep[(df.index.hour == 13) & (df.index.minute < 59)] = False  # one lonely bar at 13:59
    sparse = df[keep]
    out = resample_ohlcv(sparse, "1h", source_timeframe="1m")
    expected = reference(sparse, "1h")
    pd.testing.assert_frame_equal(out, expected)
    assert pd.Timestamp("2024-05-06 11:00", tz="UTC") not in out.index  # empty bin dropped
    lonely = out.loc[pd.Timestamp("2024-05-06 13:00", tz="UTC")]
    assert lonely["open"] == sparse["open"].iloc[sparse.index.get_loc("2024-05-06 13:59+00:00")]
    assert len(out) == 7
    validate_ohlcv(out)  # still valid OHLCV


def test_unaligned_start_bins_on_the_epoch_grid() -> None:
    df = minute_bars(200, start="2024-05-06 09:07")
    out = resample_ohlcv(df, "4h")
    assert out.index[0] == pd.Timestamp("2024-05-06 08:00", tz="UTC")
    assert (out.index.hour % 4 == 0).all()


def test_days_to_weeks_start_on_monday() -> None:
    index = pd.bdate_range("2024-01-03", periods=12, tz="UTC", name="ts")  # a Wednesday
    df = pd.DataFrame(
        {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 1.0}, index=index
    )
    out = resample_ohlcv(df, "1w")
    assert list(out.index.day_name()) == ["Monday"] * 3
    assert out.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    np.testing.assert_array_equal(out["volume"], [3.0, 5.0, 4.0])


def test_output_is_canonical() -> None:
    out = resample_ohlcv(minute_bars(120), "15m")
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dt == np.float64 for dt in out.dtypes)
    assert out.index.name == "ts"
    assert str(out.index.tz) == "UTC"
    assert out.index.freq is None
    assert out.index.unit == "ns"


def test_refuses_finer_timeframe() -> None:
    hourly = resample_ohlcv(minute_bars(600), "1h")
    with pytest.raises(ValueError, match="cannot resample 1h bars to the finer timeframe '5m'"):
        resample_ohlcv(hourly, "5m")
    with pytest.raises(ValueError, match="finer"):
        resample_ohlcv(minute_bars(30), "1h", source_timeframe="1d")


def test_refuses_non_multiple() -> None:
    hourly = resample_ohlcv(minute_bars(600), "1h")
    with pytest.raises(ValueError, match="not a whole multiple"):
        resample_ohlcv(hourly, "90m")


def test_same_timeframe_is_identity() -> None:
    df = minute_bars(50)
    pd.testing.assert_frame_equal(resample_ohlcv(df, "1m"), validate_ohlcv(df))


def test_timeframe_to_timedelta() -> None:
    cases = {
        "1m": pd.Timedelta(minutes=1),
        "5m": pd.Timedelta(minutes=5),
        "15m": pd.Timedelta(minutes=15),
        "1h": pd.Timedelta(hours=1),
        "4h": pd.Timedelta(hours=4),
        "1d": pd.Timedelta(days=1),
        "1D": pd.Timedelta(days=1),
        "1w": pd.Timedelta(weeks=1),
        "30s": pd.Timedelta(seconds=30),
        "5min": pd.Timedelta(minutes=5),
    }
    for text, expected in cases.items():
        assert timeframe_to_timedelta(text) == expected, text
    for bad in ("1M", "h", "0m", "1x", ""):
        with pytest.raises(ValueError):
            timeframe_to_timedelta(bad)


def test_infer_timeframe_uses_smallest_step() -> None:
    df = minute_bars(100)
    assert infer_timeframe(pd.DatetimeIndex(df.index[[0, 3, 6, 8, 20]])) == pd.Timedelta(minutes=2)
    assert infer_timeframe(pd.DatetimeIndex(df.index[:1])) is None


@pytest.mark.parametrize(("timeframe", "step"), [("1d", "1D"), ("3d", "72h")])
def test_days_bin_on_the_epoch_grid_without_warnings(timeframe: str, step: str) -> None:
    # Hourly bars over three weeks, starting mid-day: days are UTC days, several days are
    # counted from the epoch (as exchanges' candles are), and pandas warns about nothing.
    hourly = resample_ohlcv(minute_bars(60 * 24 * 21, start="2024-03-05 13:00"), "1h")
    out = resample_ohlcv(hourly, timeframe)
    pd.testing.assert_frame_equal(out, reference(hourly, step))
    assert (out.index.hour == 0).all()
