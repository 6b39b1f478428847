"""Timestamps are tz-aware UTC everywhere; this is the one place that checks it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd


def ensure_utc(ts: datetime, what: str = "timestamp") -> datetime:
    """Return ``ts`` if it is tz-aware UTC; raise ``ValueError`` naming ``what`` otherwise."""
    offset = ts.utcoffset()
    if offset is None:
        raise ValueError(f"{what} must be tz-aware UTC, got naive {ts.isoformat()}")
    if offset != timedelta(0):
        raise ValueError(f"{what} must be UTC, got offset {offset} in {ts.isoformat()}")
    return ts


def to_utc(value: datetime | pd.Timestamp | str | int) -> datetime:
    """Convert a timestamp-like (ISO string, epoch ms, pandas or datetime) to aware UTC.

    Naive inputs are read as UTC; aware inputs are converted.
    """
    if isinstance(value, int):
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()
