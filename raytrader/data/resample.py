"""Resampling OHLCV bars to a coarser ccxt-style timeframe ("1m", "5m", "1h", "4h", "1d", "1w")."""

from __future__ import annotations

import re

import pandas as pd

from raytrader.data.loaders import utc_index

__all__ = ["infer_timeframe", "resample_ohlcv", "timeframe_to_timedelta"]

_UNITS = {"s": "s", "m": "min", "h": "h", "d": "D", "w": "W"}
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+)\s*([a-zA-Z]+)\s*$")
_ALIASES = {
    "s": "s", "sec": "s",
    "m": "m", "min": "m", "t": "m",
    "h": "h", "hr": "h",
    "d": "d",
    "w": "w",
}  # fmt: skip


def _parse(timeframe: str) -> tuple[int, str]:
    match = _PATTERN.match(timeframe)
    if match is None:
        raise ValueError(f"bad timeframe {timeframe!r}: expected e.g. 1m, 15m, 1h, 4h, 1d, 1w")
    count, unit = int(match.group(1)), match.group(2)
    if unit == "M" or unit.lower() in {"mo", "mon", "month", "y"}:
        raise ValueError(f"timeframe {timeframe!r}: months and years have no fixed length")
    key = _ALIASES.get(unit.lower())
    if key is None or count <= 0:
        raise ValueError(f"bad timeframe {timeframe!r}: expected e.g. 1m, 15m, 1h, 4h, 1d, 1w")
    return count, key


def timeframe_to_timedelta(timeframe: str) -> pd.Timedelta:
    """Length of a ccxt-style timeframe: ``"15m"`` -> 15 minutes. ``"M"`` (month) is refused.

    Pandas-style spellings (``"1D"``, ``"1H"``, ``"5min"``) are accepted too.
    """
    count, unit = _parse(timeframe)
    return pd.Timedelta(seconds=count * _SECONDS[unit])


def infer_timeframe(index: pd.DatetimeIndex) -> pd.Timedelta | None:
    """The bar length of an index: its smallest step (gaps only make steps longer)."""
    if len(index) < 2:
        return None
    steps = index[1:] - index[:-1]
    return pd.Timedelta(steps.min())


def resample_ohlcv(
    df: pd.DataFrame, timeframe: str, source_timeframe: str | None = None
) -> pd.DataFrame:
    """Aggregate OHLCV bars into ``timeframe`` bins (open first, high max, low min, close last,
    volume sum).

    Bins are closed and labelled on the left and aligned like exchange candles: on the Unix
    epoch for seconds to days, on Monday 00:00 UTC for weeks. Bins with no bar are dropped.
    The source bar length is ``source_timeframe`` or the smallest step of the index; a finer
    target, or one that is not a whole multiple of it, is refused.
    """
    if not isinstance(df.index, pd.DatetimeIndex):
        raise TypeError("resample_ohlcv needs a DatetimeIndex")
    missing = [c for c in ("open", "high", "low", "close", "volume") if c not in df.columns]
    if missing:
        raise ValueError(f"resample_ohlcv: missing columns {missing}")
    target = timeframe_to_timedelta(timeframe)
    source = (
        timeframe_to_timedelta(source_timeframe)
        if source_timeframe is not None
        else infer_timeframe(df.index)
    )
    if source is not None:
        if target < source:
            raise ValueError(
                f"cannot resample {_describe(source)} bars to the finer timeframe {timeframe!r}: "
                "resampling only aggregates"
            )
        if target % source != pd.Timedelta(0):
            raise ValueError(
                f"cannot resample {_describe(source)} bars to {timeframe!r}: "
                "not a whole multiple of the bar length"
            )
    count, unit = _parse(timeframe)
    if unit == "w":
        # Exchange weekly candles open on Monday 00:00 UTC.
        resampler = df.resample(f"{count}W-MON", closed="left", label="left")
    else:
        # Days as 24-hour steps: pandas reads "D" as a calendar day, which ignores `origin` on
        # a tz-aware index (with a warning); on UTC bars the two are the same day boundaries.
        freq = f"{count * 24}h" if unit == "d" else f"{count}{_UNITS[unit]}"
        resampler = df.resample(freq, closed="left", label="left", origin="epoch")
    out = resampler.agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    counts = resampler["close"].count()
    out = out[counts.to_numpy() > 0].astype("float64")
    out.index = utc_index(pd.DatetimeIndex(out.index))
    return out


def _describe(step: pd.Timedelta) -> str:
    seconds = int(step.total_seconds())
    for unit in ("w", "d", "h", "m", "s"):
        if seconds % _SECONDS[unit] == 0:
            return f"{seconds // _SECONDS[unit]}{unit}"
    return str(step)
