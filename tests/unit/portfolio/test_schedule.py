"""Rebalancing schedules on real calendars, and momentum's own schedule reproduced."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from raytrader.agents.context import BarContext
from raytrader.agents.rules.momentum import Momentum, is_second_weekday_of_month
from raytrader.data.bundled import load_bundled_universe
from raytrader.data.market_data import MarketData
from raytrader.portfolio.schedule import RebalanceSchedule

# The 2024 NYSE full-day holidays (June 19 and December 25 are Wednesdays).
NYSE_2024 = [
    "2024-01-01",
    "2024-01-15",
    "2024-02-19",
    "2024-03-29",
    "2024-05-27",
    "2024-06-19",
    "2024-07-04",
    "2024-09-02",
    "2024-11-28",
    "2024-12-25",
]
BDAYS = pd.bdate_range("2024-01-01", "2024-12-31", tz="UTC")
TRADING = BDAYS.difference(pd.DatetimeIndex(NYSE_2024, tz="UTC"))
SECOND_WEDNESDAYS = [
    "2024-01-10",
    "2024-02-14",
    "2024-03-13",
    "2024-04-10",
    "2024-05-08",
    "2024-06-12",
    "2024-07-10",
    "2024-08-14",
    "2024-09-11",
    "2024-10-09",
    "2024-11-13",
    "2024-12-11",
]
MONTHLY_2ND_WED = RebalanceSchedule(kind="monthly", weekday=2, nth=2)


def utc(day: str) -> pd.Timestamp:
    return pd.Timestamp(day, tz="UTC")


def due_days(schedule: RebalanceSchedule, index: pd.DatetimeIndex) -> list[str]:
    return [str(ts.date()) for ts in index[schedule.due_bars(index)]]


def test_second_wednesdays_of_2024() -> None:
    assert due_days(MONTHLY_2ND_WED, BDAYS) == SECOND_WEDNESDAYS
    dates = MONTHLY_2ND_WED.scheduled_dates(date(2024, 1, 1), date(2024, 12, 31))
    assert [d.isoformat() for d in dates] == SECOND_WEDNESDAYS


def test_last_friday_and_fifth_monday() -> None:
    last_friday = RebalanceSchedule(kind="monthly", weekday=4, nth="last", on_missed="skip")
    assert due_days(last_friday, BDAYS)[:4] == [
        "2024-01-26",
        "2024-02-23",
        "2024-03-29",
        "2024-04-26",
    ]
    fifth_monday = RebalanceSchedule(kind="monthly", weekday=0, nth=5)
    # Only five months of 2024 have a fifth Monday; the others have no scheduled date.
    assert due_days(fifth_monday, BDAYS) == [
        "2024-01-29",
        "2024-04-29",
        "2024-07-29",
        "2024-09-30",
        "2024-12-30",
    ]


def test_a_holiday_moves_the_rebalance_to_the_next_bar_or_skips_it() -> None:
    # Good Friday 2024-03-29 is the last Friday of March: the next bar is Monday April 1.
    nxt = RebalanceSchedule(kind="monthly", weekday=4, nth="last")
    skip = nxt.model_copy(update={"on_missed": "skip"})
    assert due_days(nxt, TRADING)[2:4] == ["2024-04-01", "2024-04-26"]
    assert due_days(skip, TRADING)[2:3] == ["2024-04-26"]
    # New Year's Day is the first Monday of January: January 2 instead, when a bar of 2023
    # tells that the scheduled date was missed (a first bar is due only on a scheduled date).
    first_monday = RebalanceSchedule(kind="monthly", weekday=0, nth=1)
    with_2023 = TRADING.insert(0, pd.Timestamp("2023-12-29", tz="UTC"))
    assert due_days(first_monday, with_2023)[:2] == ["2024-01-02", "2024-02-05"]
    assert due_days(first_monday, TRADING)[0] == "2024-02-05"
    # Juneteenth and Christmas are Wednesdays.
    weekly = RebalanceSchedule(kind="weekly", weekday=2)
    days = due_days(weekly, TRADING)
    assert len(days) == 52
    assert "2024-06-20" in days and "2024-06-19" not in days
    assert days[-2:] == ["2024-12-18", "2024-12-26"]
    skip_days = due_days(weekly.model_copy(update={"on_missed": "skip"}), TRADING)
    assert len(skip_days) == 50
    assert "2024-06-20" not in skip_days and "2024-12-26" not in skip_days


def test_a_holiday_on_the_second_wednesday() -> None:
    index = TRADING.drop([pd.Timestamp("2024-03-13", tz="UTC")])
    assert due_days(MONTHLY_2ND_WED, index)[2] == "2024-03-14"
    skip = MONTHLY_2ND_WED.model_copy(update={"on_missed": "skip"})
    assert "2024-03-14" not in due_days(skip, index)
    assert len(due_days(skip, index)) == 11


def test_a_gap_over_several_scheduled_dates_triggers_once() -> None:
    weekly = RebalanceSchedule(kind="weekly", weekday=2)
    index = TRADING.drop(pd.date_range("2024-03-01", "2024-03-24", tz="UTC"), errors="ignore")
    days = due_days(weekly, index)
    assert "2024-03-25" in days  # three Wednesdays missed, one rebalance
    assert days[days.index("2024-03-25") - 1] == "2024-02-28"
    assert days[days.index("2024-03-25") + 1] == "2024-03-27"


def test_daily_and_manual() -> None:
    assert RebalanceSchedule(kind="daily").due_bars(TRADING).all()
    assert not RebalanceSchedule(kind="manual").due_bars(TRADING).any()
    assert not RebalanceSchedule(kind="manual").due(None, TRADING[0])


def test_intraday_bars_trigger_once_at_the_first_bar_of_the_day() -> None:
    hours = pd.date_range("2024-01-08 14:00", "2024-01-12 20:00", freq="h", tz="UTC")
    hours = hours[(hours.hour >= 14) & (hours.hour <= 20)]
    due = hours[RebalanceSchedule(kind="weekly", weekday=2).due_bars(hours)]
    assert list(due) == [pd.Timestamp("2024-01-10 14:00", tz="UTC")]
    daily = hours[RebalanceSchedule(kind="daily").due_bars(hours)]
    assert list(daily.hour) == [14] * 5


def test_the_first_bar_is_due_only_on_a_scheduled_date() -> None:
    weekly = RebalanceSchedule(kind="weekly", weekday=2)
    thursday = TRADING[TRADING.searchsorted(utc("2024-01-11")) :]
    assert not weekly.due_bars(thursday)[0]
    assert weekly.due_bars(TRADING[TRADING.searchsorted(utc("2024-01-10")) :])[0]


def test_due_matches_due_bars_on_random_gaps() -> None:
    rng = np.random.default_rng(5)
    index = TRADING[rng.random(len(TRADING)) < 0.6]
    for schedule in (
        RebalanceSchedule(kind="weekly", weekday=1),
        RebalanceSchedule(kind="monthly", weekday=3, nth="last"),
        RebalanceSchedule(kind="monthly", weekday=4, nth=5, on_missed="skip"),
        RebalanceSchedule(kind="daily", on_missed="skip"),
    ):
        prevs = [None, *index[:-1]]
        scalar = [schedule.due(p, ts) for p, ts in zip(prevs, index, strict=True)]
        assert scalar == schedule.due_bars(index).tolist()


def test_due_on_datetimes_and_order() -> None:
    weekly = RebalanceSchedule(kind="weekly", weekday=2)
    tue = datetime(2024, 1, 9, 21, tzinfo=UTC)
    thu = datetime(2024, 1, 11, 21, tzinfo=UTC)
    assert weekly.due(tue, thu)  # Wednesday the 10th had no bar
    assert not weekly.due(
        datetime(2024, 1, 10, 9, tzinfo=UTC), datetime(2024, 1, 10, 15, tzinfo=UTC)
    )
    with pytest.raises(ValueError, match="before"):
        weekly.due(thu, tue)
    with pytest.raises(ValueError, match="sorted"):
        weekly.due_bars(TRADING[::-1])
    assert weekly.due_bars(TRADING[:0]).shape == (0,)


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"kind": "hourly"}, "kind"),
        ({"weekday": 7}, "weekday"),
        ({"nth": 0}, "nth"),
        ({"nth": "first"}, "nth"),
        ({"on_missed": "previous"}, "on_missed"),
        ({"day": 3}, "day"),
    ],
)
def test_validation_errors_name_the_field(fields: dict[str, object], loc: str) -> None:
    with pytest.raises(ValidationError) as err:
        RebalanceSchedule.model_validate(fields)
    assert all(e["loc"][0] == loc for e in err.value.errors())


def test_from_what_the_api_stores() -> None:
    schedule: dict[str, Any] = {
        "frequency": "monthly",
        "weekday": 2,
        "week_of_month": 2,
        "targets": {"SYN": 0.5},
        "enabled": True,
    }
    record = {"session_id": "s-0", "schedule": schedule, "updated": "2024-01-01T00:00:00Z"}
    assert RebalanceSchedule.from_stored(record) == MONTHLY_2ND_WED
    assert RebalanceSchedule.from_stored(schedule) == MONTHLY_2ND_WED
    off = {**schedule, "enabled": False}
    assert RebalanceSchedule.from_stored(off).kind == "manual"
    assert RebalanceSchedule.from_stored({}) == RebalanceSchedule()


class _Account:
    cash = 1e6

    def position(self, symbol: str) -> float:
        return 0.0

    def equity(self) -> float:
        return 1e6


def _momentum_decisions(data: MarketData) -> tuple[list[bool], list[bool]]:
    """The bars where momentum decides, and where it does its full monthly rebalance."""
    agent = Momentum(lookback_period=10, exit_ma_period=5, index_ma_period=10, atr_period=3)
    ctx = BarContext(data, agent.indicators(data), _Account())
    weekly, monthly = [], []
    for i in range(data.n_bars):
        ctx.i = i
        before = agent.get_state()["last_update"]
        agent.on_bar(ctx)
        decided = agent.get_state()["last_update"] != before
        weekly.append(decided)
        monthly.append(decided and is_second_weekday_of_month(data.ts(i).date()))
    return weekly, monthly


@pytest.mark.parametrize("holidays", [False, True])
def test_reproduces_momentums_schedule_on_the_bundled_universe(holidays: bool) -> None:
    frames = load_bundled_universe()
    if holidays:  # drop some Wednesdays, second Wednesdays among them
        index = pd.DatetimeIndex(frames["INDEX"].index)
        wednesdays = index[index.day_of_week == 2]
        dropped = wednesdays[::7]
        assert any(8 <= d.day <= 14 for d in dropped)
        frames = {s: f.drop(dropped) for s, f in frames.items()}
    data = MarketData.from_frames(frames)
    weekly, monthly = _momentum_decisions(data)
    weekly_schedule = RebalanceSchedule(kind="weekly", weekday=2, on_missed="skip")
    monthly_schedule = RebalanceSchedule(kind="monthly", weekday=2, nth=2, on_missed="skip")
    assert weekly_schedule.due_bars(data.index).tolist() == weekly
    assert monthly_schedule.due_bars(data.index).tolist() == monthly
    agent = Momentum()
    assert (agent.active_bars(data, {}) == weekly_schedule.due_bars(data.index)).all()
    assert sum(monthly) > 80


@pytest.mark.parametrize("on_missed", ["next_bar", "skip"])
def test_a_monthly_rebalance_bar_is_also_a_weekly_one(on_missed: str) -> None:
    rng = np.random.default_rng(11)
    index = TRADING[rng.random(len(TRADING)) < 0.7]
    weekly = RebalanceSchedule.model_validate({"kind": "weekly", "on_missed": on_missed})
    monthly = RebalanceSchedule.model_validate({"kind": "monthly", "on_missed": on_missed})
    assert not (monthly.due_bars(index) & ~weekly.due_bars(index)).any()
