"""Bar-grid arithmetic and checks of an exchange's OHLCV answer: gaps and duplicates.

A timeframe is ``<n><unit>`` as ccxt names them (``1m``, ``4h``, ``1d``, ``1w``, ``1M``, ``1y``).
Fixed-length units step by milliseconds; months and years step on the calendar, so the check
of a monthly series does not drift.
"""

from __future__ import annotations

import calendar
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "BarRow",
    "Duplicate",
    "Gap",
    "Timeframe",
    "find_gaps",
    "iso_ms",
    "parse_rows",
    "same_values",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MS: Final = timedelta(milliseconds=1)
_PATTERN = re.compile(r"^(\d+)([smhdwMy])$")
_UNIT_MS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}

BarRow = tuple[int, float, float, float, float, float]


def iso_ms(ts_ms: int) -> str:
    """Milliseconds since the epoch as an ISO-8601 UTC string."""
    return (_EPOCH + ts_ms * _MS).isoformat()


@dataclass(frozen=True)
class Timeframe:
    """A bar length: ``amount`` of ``unit`` (s, m, h, d, w fixed; M, y on the calendar)."""

    amount: int
    unit: str

    @classmethod
    def parse(cls, text: str) -> Timeframe:
        match = _PATTERN.match(text)
        if match is None or int(match.group(1)) <= 0:
            raise ValueError(f"timeframe {text!r} is not like '1m', '4h', '1d', '1w', '1M'")
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"

    @property
    def months(self) -> int:
        """Calendar months per bar (0 for fixed-length units)."""
        return self.amount * (12 if self.unit == "y" else 1) if self.unit in "My" else 0

    @property
    def max_ms(self) -> int:
        """The longest a bar can last (a 31-day month, a 366-day year)."""
        if self.months:
            return self.months * 31 * 86_400_000
        return self.amount * _UNIT_MS[self.unit]

    def step(self, ts_ms: int, n: int = 1) -> int:
        """Open time ``n`` bars after (n < 0: before) the bar opening at ``ts_ms``."""
        if not self.months:
            return ts_ms + n * self.max_ms
        dt = _EPOCH + ts_ms * _MS
        m0 = dt.month - 1 + n * self.months
        year, month = dt.year + m0 // 12, m0 % 12 + 1
        day = min(dt.day, calendar.monthrange(year, month)[1])
        return (dt.replace(year=year, month=month, day=day) - _EPOCH) // _MS

    def bars_between(self, start_ms: int, end_ms: int) -> int:
        """How many bars of the grid through ``start_ms`` open in ``[start_ms, end_ms)``."""
        if end_ms <= start_ms:
            return 0
        if not self.months:
            return -(-(end_ms - start_ms) // self.max_ms)
        n, ts = 0, start_ms
        while ts < end_ms:
            n, ts = n + 1, self.step(ts)
        return n


@dataclass(frozen=True)
class Gap:
    """Bars missing from ``start_ms`` (the first missing open time) to ``end_ms`` (the next bar
    present, or the end of the range). ``where``: ``start`` (before the first bar: often the
    market's listing), ``inside`` (between two bars), ``end`` (after the last bar), or ``all``
    (no bar in the range at all)."""

    start_ms: int
    end_ms: int
    bars: int
    where: Literal["start", "inside", "end", "all"]

    def describe(self) -> str:
        return f"{iso_ms(self.start_ms)} .. {iso_ms(self.end_ms)}: {self.bars} bars ({self.where})"


@dataclass(frozen=True)
class Duplicate:
    """A timestamp the exchange sent ``copies`` times; ``conflicting`` when the copies'
    values differ. The first copy in the exchange's answer is kept."""

    ts_ms: int
    copies: int
    conflicting: bool

    def describe(self) -> str:
        kind = "different values" if self.conflicting else "equal values"
        return f"{iso_ms(self.ts_ms)}: {self.copies} copies ({kind}), first kept"


def _number(value: Any) -> float | None:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def parse_rows(rows: Sequence[Any]) -> tuple[list[BarRow], list[Duplicate], int]:
    """ccxt's ``[ts, o, h, l, c, v]`` rows as bars sorted by time, one per timestamp (the first
    copy in answer order), the duplicates found, and how many rows were unusable (no integer
    timestamp, a price that is not a finite number). A missing volume becomes NaN."""
    bars: list[BarRow] = []
    invalid = 0
    for row in rows:
        if not isinstance(row, list | tuple) or len(row) < 6:
            invalid += 1
            continue
        ts = row[0]
        values = [_number(v) for v in row[1:6]]
        if not isinstance(ts, int) or isinstance(ts, bool) or ts < 0 or None in values:
            invalid += 1
            continue
        o, h, low, c, v = (x for x in values if x is not None)
        if not all(math.isfinite(x) for x in (o, h, low, c)):
            invalid += 1
            continue
        bars.append((ts, o, h, low, c, v))
    bars.sort(key=lambda bar: bar[0])  # stable: the first copy of a timestamp stays first
    kept: list[BarRow] = []
    duplicates: list[Duplicate] = []
    for bar in bars:
        if kept and kept[-1][0] == bar[0]:
            if duplicates and duplicates[-1].ts_ms == bar[0]:
                last = duplicates[-1]
                duplicates[-1] = Duplicate(
                    bar[0], last.copies + 1, last.conflicting or not same_values(bar, kept[-1])
                )
            else:
                duplicates.append(Duplicate(bar[0], 2, not same_values(bar, kept[-1])))
            continue
        kept.append(bar)
    return kept, duplicates, invalid


def same_values(a: BarRow, b: BarRow) -> bool:
    """Whether two bars are equal (NaN volumes equal too)."""
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b, strict=True))


def find_gaps(
    ts_ms: npt.NDArray[np.int64] | Sequence[int], start_ms: int, end_ms: int, timeframe: Timeframe
) -> list[Gap]:
    """The gaps of sorted bar open times ``ts_ms`` in the range ``[start_ms, end_ms)``.

    The grid is the bars' own (Binance's weekly bars open on Mondays, not on epoch multiples):
    missing bars are counted from the bars present, backwards to ``start_ms`` and forwards to
    ``end_ms``.
    """
    times = [int(t) for t in ts_ms]
    if not times:
        if end_ms <= start_ms:
            return []
        return [Gap(start_ms, end_ms, timeframe.bars_between(start_ms, end_ms), "all")]
    gaps: list[Gap] = []
    first = times[0]
    before, ts = 0, timeframe.step(first, -1)
    while ts >= start_ms:
        before, ts = before + 1, timeframe.step(ts, -1)
    if before:
        gaps.append(Gap(timeframe.step(first, -before), first, before, "start"))
    for prev, cur in itertools.pairwise(times):
        expected = timeframe.step(prev)
        if cur > expected:
            gaps.append(Gap(expected, cur, timeframe.bars_between(expected, cur), "inside"))
    after = timeframe.step(times[-1])
    if after < end_ms:
        gaps.append(Gap(after, end_ms, timeframe.bars_between(after, end_ms), "end"))
    return gaps
