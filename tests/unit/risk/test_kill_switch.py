"""The kill switch: high-water mark, the day's start, trips with reasons, resume, state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from raytrader.risk.kill_switch import KillSwitch, KillSwitchConfig

D1 = datetime(2024, 3, 1, 15, 0, tzinfo=UTC)
D2 = D1 + timedelta(days=1)
H = timedelta(hours=1)


def test_config_needs_a_threshold_and_fractions() -> None:
    with pytest.raises(ValidationError, match="needs max_drawdown or daily_loss"):
        KillSwitchConfig()
    with pytest.raises(ValidationError):
        KillSwitchConfig(max_drawdown=1.5)
    assert KillSwitchConfig(daily_loss=0.05, flatten=True).flatten


def test_trips_on_drawdown_from_the_high_water_mark_once() -> None:
    ks = KillSwitch(KillSwitchConfig(max_drawdown=0.1), 100_000.0)
    assert ks.update(D1, 110_000.0) == ""
    assert ks.update(D1 + H, 100_000.0) == ""  # 9.09% below the mark
    assert ks.high_water == 110_000.0 and not ks.halted
    reason = ks.update(D1 + 2 * H, 98_000.0)
    assert reason == (
        "max_drawdown: 0.1091 > 0.1000 (equity 98,000.00, high-water mark 110,000.00)"
    )
    assert ks.halted and ks.reason == reason
    assert ks.update(D1 + 3 * H, 90_000.0) == ""  # trips once; stays halted
    assert ks.reason == reason


def test_trips_on_the_days_loss_against_the_previous_close() -> None:
    ks = KillSwitch(KillSwitchConfig(daily_loss=0.05), 100_000.0)
    ks.update(D1, 104_000.0)  # day 1 starts at the initial equity
    assert ks.day_start == 100_000.0
    ks.update(D1 + H, 120_000.0)
    assert ks.update(D2, 115_000.0) == ""  # day 2 starts at 120,000: -4.2%
    assert ks.day_start == 120_000.0
    assert ks.update(D2 + H, 113_000.0) == (
        "daily_loss: 0.0583 > 0.0500 (equity 113,000.00, day start 120,000.00)"
    )


def test_day_start_for_a_bar_not_booked_yet() -> None:
    ks = KillSwitch(None, 50_000.0)
    assert ks.day_start_for(D1) == 50_000.0
    ks.update(D1, 51_000.0)
    assert ks.day_start_for(D1 + H) == 50_000.0  # same day
    assert ks.day_start_for(D2) == 51_000.0  # a new day starts at the last close
    assert ks.update(D1 + H, 1.0) == "" and not ks.halted  # no config: it only tracks


def test_resume_counts_the_limits_from_the_last_equity() -> None:
    ks = KillSwitch(KillSwitchConfig(max_drawdown=0.1, daily_loss=0.2), 100_000.0)
    ks.update(D1, 85_000.0)
    assert ks.halted
    ks.resume()
    assert not ks.halted and ks.high_water == 85_000.0 and ks.daily_base == 85_000.0
    assert ks.day_start == 100_000.0  # the pre-trade daily loss still sees the real start
    assert ks.update(D1 + H, 80_000.0) == ""  # 5.9% below the new mark
    assert ks.update(D1 + 2 * H, 76_000.0).startswith("max_drawdown: 0.1059 > 0.1000")


def test_state_round_trips_through_json() -> None:
    config = KillSwitchConfig(max_drawdown=0.1)
    ks = KillSwitch(config, 100_000.0)
    ks.update(D1, 120_000.0)
    ks.update(D1 + H, 110_000.0)
    assert not ks.halted
    copy = KillSwitch(config, 1.0)
    copy.restore(json.loads(json.dumps(ks.state())))
    assert copy.state() == ks.state()
    tripped = ks.update(D1 + 2 * H, 107_000.0)
    assert tripped.startswith("max_drawdown: 0.1083")
    assert copy.update(D1 + 2 * H, 107_000.0) == tripped
    assert copy.halted and copy.reason == ks.reason
    fresh = KillSwitch(config, 5.0)
    fresh.restore(KillSwitch(config, 5.0).state())
    assert fresh.day is None and fresh.day_start_for(D1) == 5.0
