"""Feeds that play bars as a live session receives them."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from raytrader.data.market_data import MarketData
from raytrader.domain.bar import BarTuple


@dataclass(frozen=True, slots=True)
class BarSlice:
    """Every symbol's bar at one timestamp; ``index`` counts bars from the feed's start."""

    index: int
    ts: datetime
    bars: Mapping[str, BarTuple]


class ReplayFeed:
    """Plays historical bars as live, ``speed`` bars per second (None: as fast as asked).

    Symbols without a bar at a timestamp are left out of that slice, as a live feed would.
    """

    def __init__(self, data: MarketData, start: int = 0, speed: float | None = None) -> None:
        if speed is not None and not speed > 0:
            raise ValueError(f"replay speed must be positive bars/second, got {speed}")
        if not 0 <= start <= data.n_bars:
            raise ValueError(f"replay start {start} outside 0..{data.n_bars}")
        self.data = data
        self.position = start
        self.speed = speed
        self._due: float | None = None  # monotonic time the next bar is due

    @property
    def done(self) -> bool:
        return self.position >= self.data.n_bars

    def peek(self) -> BarSlice | None:
        """The next slice without waiting or advancing."""
        i = self.position
        if i >= self.data.n_bars:
            return None
        d = self.data
        bars: dict[str, BarTuple] = {}
        for j, symbol in enumerate(d.symbols):
            o = float(d.open[j, i])
            if math.isnan(o):
                continue
            bars[symbol] = (
                o,
                float(d.high[j, i]),
                float(d.low[j, i]),
                float(d.close[j, i]),
                float(d.volume[j, i]),
            )
        ts = d.ts(i)
        return BarSlice(i, ts, bars)

    def wait_time(self, now: float) -> float:
        """Seconds from ``now`` (a monotonic clock) until the next bar is due; 0 when done."""
        if self.speed is None or self._due is None or self.done:
            return 0.0
        return max(0.0, self._due - now)

    def take(self, now: float) -> BarSlice | None:
        """The next bar, advancing the feed; None once the data is done.

        The next one falls due ``1/speed`` seconds after this one was due (or after ``now``
        if the consumer fell behind: a stalled session does not burst to catch up).
        """
        item = self.peek()
        if item is None:
            return None
        if self.speed is not None:
            due = self._due if self._due is not None else now
            self._due = max(due, now) + 1.0 / self.speed
        self.position += 1
        return item

    async def next(self) -> BarSlice | None:
        """Wait for the next bar (per ``speed``) and return it; None once the data is done."""
        loop = asyncio.get_running_loop()
        delay = self.wait_time(loop.time())
        if delay > 0:
            await asyncio.sleep(delay)
        return self.take(loop.time())
