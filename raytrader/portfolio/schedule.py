"""Rebalancing schedules: daily, weekly on a weekday, monthly on the n-th (or last) weekday.

A schedule names *scheduled dates*. A bar is *due* when it is the first bar of a new scheduled
period, decided causally from its own date and the previous bar's date:

- ``on_missed="skip"``: due iff the bar's date is a scheduled date and the previous bar is on
  an earlier date. A scheduled date without a bar (a holiday, a gap) is skipped.
- ``on_missed="next_bar"``: due iff the latest scheduled date on or before the bar's date is
  after the previous bar's date, i.e. the first bar whose date is >= a scheduled date that has
  not triggered yet. Several scheduled dates inside one gap trigger once.

The first bar (no previous bar) is due only when its date is a scheduled date: before the data
starts, nothing tells whether a scheduled date was missed. Dates are the timestamps' calendar
dates in their own time zone (convert the index first for an exchange-local calendar).
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

Kind = Literal["daily", "weekly", "monthly", "manual"]
OnMissed = Literal["next_bar", "skip"]
Nth = Annotated[int, Field(ge=1, le=5)] | Literal["last"]

_MONTHS_BACK = 12  # every weekday has a 5th occurrence at least once in any 12 months


class RebalanceSchedule(BaseModel):
    """When to rebalance; ``manual`` is never due (rebalances are triggered by hand)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind = "weekly"
    weekday: int = Field(2, ge=0, le=6, description="weekly and monthly: 0 = Monday")
    nth: Nth = Field(2, description="monthly: the n-th such weekday (1-5) or 'last'")
    on_missed: OnMissed = Field(
        "next_bar", description="a scheduled date without a bar: the next bar, or skip it"
    )

    @classmethod
    def from_stored(cls, stored: Mapping[str, Any]) -> RebalanceSchedule:
        """From what the portfolio API stores (the record, or its ``schedule`` part).

        ``frequency`` -> ``kind``, ``week_of_month`` -> ``nth``, ``enabled: false`` ->
        ``manual``; ``targets`` are not part of the timing and are ignored.
        """
        s = stored.get("schedule", stored)
        kind = s.get("frequency", "weekly") if s.get("enabled", True) else "manual"
        return cls(
            kind=kind,
            weekday=s.get("weekday", 2),
            nth=s.get("week_of_month", 2),
            on_missed=s.get("on_missed", "next_bar"),
        )

    def monthly_date(self, year: int, month: int) -> date | None:
        """The scheduled date of a month (monthly kind); None when it has no n-th weekday."""
        if self.nth == "last":
            last = date(year, month, calendar.monthrange(year, month)[1])
            return last - timedelta(days=(last.weekday() - self.weekday) % 7)
        first = date(year, month, 1)
        day = 1 + (self.weekday - first.weekday()) % 7 + 7 * (self.nth - 1)
        return date(year, month, day) if day <= calendar.monthrange(year, month)[1] else None

    def is_scheduled(self, day: date) -> bool:
        """Whether ``day`` is a scheduled date."""
        if self.kind == "daily":
            return True
        if self.kind == "weekly":
            return day.weekday() == self.weekday
        if self.kind == "monthly":
            return self.monthly_date(day.year, day.month) == day
        return False

    def last_scheduled(self, day: date) -> date | None:
        """The latest scheduled date on or before ``day`` (None for ``manual``)."""
        if self.kind == "daily":
            return day
        if self.kind == "weekly":
            return day - timedelta(days=(day.weekday() - self.weekday) % 7)
        if self.kind == "monthly":
            year, month = day.year, day.month
            for _ in range(_MONTHS_BACK):
                found = self.monthly_date(year, month)
                if found is not None and found <= day:
                    return found
                year, month = (year, month - 1) if month > 1 else (year - 1, 12)
        return None

    def scheduled_dates(self, start: date, end: date) -> list[date]:
        """Every scheduled date in ``[start, end]``."""
        days = (start + timedelta(days=k) for k in range((end - start).days + 1))
        return [d for d in days if self.is_scheduled(d)]

    def due(self, prev_ts: datetime | pd.Timestamp | None, ts: datetime | pd.Timestamp) -> bool:
        """Whether the bar at ``ts`` is due, the previous bar being at ``prev_ts`` (None: none)."""
        day = ts.date()
        if prev_ts is None:
            return self.is_scheduled(day)
        if ts < prev_ts:
            raise ValueError(f"schedule: ts {ts} is before the previous bar's {prev_ts}")
        prev = prev_ts.date()
        if self.on_missed == "skip":
            return day > prev and self.is_scheduled(day)
        last = self.last_scheduled(day)
        return last is not None and last > prev

    def due_bars(self, index: pd.DatetimeIndex) -> npt.NDArray[np.bool_]:
        """``due`` for every bar of a sorted index (the first bar has no previous bar)."""
        if not index.is_monotonic_increasing:
            raise ValueError("schedule: the index must be sorted in time")
        local = index.tz_localize(None) if index.tz is not None else index
        days = local.normalize().to_numpy().astype("datetime64[D]")
        if len(days) == 0:
            return np.zeros(0, dtype=bool)
        unique, inverse = np.unique(days, return_inverse=True)
        as_dates = [d.item() for d in unique]
        scheduled = np.array([self.is_scheduled(d) for d in as_dates], dtype=bool)[inverse]
        prev = np.concatenate([[np.datetime64("NaT", "D")], days[:-1]])
        if self.on_missed == "skip":
            out = scheduled & (days > prev)
        else:
            lasts = [self.last_scheduled(d) for d in as_dates]
            last = np.array([np.datetime64(d, "D") if d else np.datetime64("NaT") for d in lasts])
            out = last.astype("datetime64[D]")[inverse] > prev
        out[0] = scheduled[0]
        return np.asarray(out, dtype=bool)
