"""TWAP and VWAP slicing of a parent order into children (pure)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raytrader.domain import Order, OrderType, Side
from raytrader.execution.algos import child_orders, twap_schedule, vwap_schedule

T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)


def test_twap_is_equal_slices_at_equal_intervals() -> None:
    schedule = twap_schedule(1.0, T0, T0 + timedelta(hours=1), slices=4)
    assert [s.quantity for s in schedule] == [0.25] * 4
    assert [s.due for s in schedule] == [T0 + timedelta(minutes=15 * i) for i in range(4)]
    assert [s.index for s in schedule] == [0, 1, 2, 3]


def test_twap_rounds_to_lots_without_drift() -> None:
    # 1.0 in 3 slices of 0.001 lots: 0.333, 0.333, 0.334 (cumulative targets, not per slice).
    schedule = twap_schedule(1.0, T0, T0 + timedelta(minutes=3), slices=3, lot_size=0.001)
    assert [s.quantity for s in schedule] == pytest.approx([0.333, 0.333, 0.334])
    assert math.fsum(s.quantity for s in schedule) == pytest.approx(1.0, abs=1e-12)


def test_slices_below_a_lot_are_dropped_and_renumbered() -> None:
    schedule = twap_schedule(0.002, T0, T0 + timedelta(minutes=5), slices=5, lot_size=0.001)
    assert [s.quantity for s in schedule] == pytest.approx([0.001, 0.001])
    assert [s.index for s in schedule] == [0, 1]
    assert [s.due for s in schedule] == [T0 + timedelta(minutes=2), T0 + timedelta(minutes=4)]


def test_vwap_follows_the_volume_profile() -> None:
    profile = [(T0 + timedelta(hours=i), v) for i, v in enumerate([5.0, 0.0, 15.0, 30.0])]
    schedule = vwap_schedule(2.0, profile)
    assert [s.quantity for s in schedule] == pytest.approx([0.2, 0.6, 1.2])  # no zero slice
    assert [s.due for s in schedule] == [profile[i][0] for i in (0, 2, 3)]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: twap_schedule(0.0, T0, T0 + timedelta(1), 2), "positive number"),
        (lambda: twap_schedule(1.0, T0, T0, 2), "must be after start"),
        (lambda: twap_schedule(1.0, T0, T0 + timedelta(1), 0), "slices must be >= 1"),
        (lambda: twap_schedule(1.0, T0, T0 + timedelta(1), 2, lot_size=-1), "lot_size"),
        (lambda: vwap_schedule(1.0, []), "at least one bar"),
        (lambda: vwap_schedule(1.0, [(T0, 0.0)]), "no volume"),
        (lambda: vwap_schedule(1.0, [(T0, 1.0), (T0, 2.0)]), "strictly increasing"),
        (lambda: vwap_schedule(1.0, [(T0, -1.0)]), ">= 0"),
    ],
)
def test_bad_input_is_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_children_inherit_the_parent_with_stable_ids() -> None:
    parent = Order("p", "BTC/USDT", Side.SELL, 0.5, T0, OrderType.LIMIT, limit_price=99.0)
    kids = child_orders(parent, twap_schedule(0.5, T0, T0 + timedelta(minutes=2), 2))
    assert [(k.client_order_id, k.quantity, k.ts) for k in kids] == [
        ("p-0", 0.25, T0),
        ("p-1", 0.25, T0 + timedelta(minutes=1)),
    ]
    assert all(k.side is Side.SELL and k.limit_price == 99.0 and k.tag == "algo" for k in kids)
    stop = Order("s", "BTC/USDT", Side.SELL, 1.0, T0, OrderType.STOP, stop_price=90.0)
    with pytest.raises(ValueError, match="algos slice market or limit"):
        child_orders(stop, [])


@given(
    lots=st.integers(1, 10_000),
    weights=st.lists(st.floats(0.0, 1e6), min_size=1, max_size=30).filter(lambda w: sum(w) > 0),
)
def test_vwap_children_add_up_to_the_parent_in_whole_lots(lots: int, weights: list[float]) -> None:
    lot = 0.001
    profile = [(T0 + timedelta(minutes=i), w) for i, w in enumerate(weights)]
    schedule = vwap_schedule(lots * lot, profile, lot_size=lot)
    assert math.fsum(s.quantity for s in schedule) == pytest.approx(lots * lot, rel=1e-9)
    for s in schedule:
        assert s.quantity > 0
        assert abs(s.quantity / lot - round(s.quantity / lot)) < 1e-6
