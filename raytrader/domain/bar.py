"""OHLCV bar."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from raytrader.domain.time import ensure_utc

#: One symbol's bar as plain floats (open, high, low, close, volume): the hot-path form.
BarTuple = tuple[float, float, float, float, float]


@dataclass(frozen=True, slots=True)
class Bar:
    symbol: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float

    def __post_init__(self) -> None:
        ensure_utc(self.ts, f"bar {self.symbol} ts")
        if self.high < self.low:
            raise ValueError(f"bar {self.symbol} at {self.ts}: high {self.high} < low {self.low}")
