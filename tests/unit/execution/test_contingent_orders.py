"""Contingent orders in the paper broker: trailing stops, OCO groups and brackets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raytrader.domain import (
    Fill,
    IllegalTransition,
    Order,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    bracket,
)
from raytrader.domain.codec import from_dict, state_from_dict, state_to_dict, to_dict
from raytrader.execution import INSUFFICIENT_CASH, PaperBroker, PaperBrokerConfig

T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
BUY, SELL = Side.BUY, Side.SELL
MARKET, LIMIT, STOP, TRAIL = (
    OrderType.MARKET,
    OrderType.LIMIT,
    OrderType.STOP,
    OrderType.TRAILING_STOP,
)
NEW, ACCEPTED, PARTIAL, FILLED, CANCELLED, REJECTED = (
    OrderStatus.NEW,
    OrderStatus.ACCEPTED,
    OrderStatus.PARTIALLY_FILLED,
    OrderStatus.FILLED,
    OrderStatus.CANCELLED,
    OrderStatus.REJECTED,
)


def order(
    cid: str = "o1",
    side: Side = BUY,
    quantity: float = 10.0,
    type: OrderType = MARKET,
    limit: float | None = None,
    stop: float | None = None,
    *,
    trail_amount: float | None = None,
    trail_percent: float | None = None,
    oco: str = "",
    parent: str = "",
    tif: TimeInForce = TimeInForce.GTC,
    ts: datetime = T0,
) -> Order:
    return Order(
        cid,
        "AAA",
        side,
        quantity,
        ts,
        type,
        limit,
        stop,
        tif,
        trail_amount=trail_amount,
        trail_percent=trail_percent,
        oco_group=oco,
        parent_id=parent,
    )


def bar(broker: PaperBroker, i: int, o: float, h: float, low: float, v: float = 1e6) -> list[Fill]:
    """Bar ``i`` (hours after T0) of AAA; the close is unused by the broker."""
    return broker.on_bar("AAA", T0 + i * HOUR, o, h, low, o, v)


def broker_with(**config: object) -> PaperBroker:
    return PaperBroker(PaperBrokerConfig.model_validate(config))


def status(broker: PaperBroker, cid: str) -> tuple[OrderStatus, float, str]:
    s = broker.order(cid)
    return s.status, s.filled_quantity, s.reason


def ids(states: list[OrderState]) -> list[str]:
    return [s.order.client_order_id for s in states]


# --------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"type": TRAIL}, "give exactly one of trail_amount and trail_percent"),
        (
            {"type": TRAIL, "trail_amount": 1.0, "trail_percent": 0.1},
            "give exactly one of trail_amount and trail_percent",
        ),
        ({"type": TRAIL, "trail_percent": 1.5}, r"trail_percent must be in \(0, 1\), got 1.5"),
        ({"type": TRAIL, "trail_percent": 0.0}, r"trail_percent must be in \(0, 1\)"),
        ({"type": TRAIL, "trail_percent": float("nan")}, r"trail_percent must be in \(0, 1\)"),
        ({"type": TRAIL, "trail_amount": -2.0}, "trail_amount must be a positive number"),
        ({"type": TRAIL, "trail_amount": float("inf")}, "trail_amount must be a positive"),
        ({"type": TRAIL, "trail_amount": 1.0, "stop": 95.0}, "stop_price is not allowed"),
        ({"type": TRAIL, "trail_amount": 1.0, "limit": 95.0}, "limit_price is not allowed"),
        ({"type": LIMIT, "limit": 95.0, "trail_amount": 1.0}, "trail_amount is not allowed"),
        ({"trail_percent": 0.1}, "trail_percent is not allowed for a market order"),
        ({"parent": "o1"}, "parent_id must differ from client_order_id"),
    ],
)
def test_order_validation_names_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        order(**kwargs)


def test_new_order_fields_round_trip_through_the_codec() -> None:
    o = order("t", SELL, type=TRAIL, trail_percent=0.05, oco="g", parent="e")
    assert from_dict(Order, to_dict(o)) == o
    state = OrderState(o).to(ACCEPTED, T0).with_quantity(4.0, T0, "resized")
    assert state_from_dict(json.loads(json.dumps(state_to_dict(state)))) == state
    # Payloads written before these fields existed still load.
    old = {k: v for k, v in to_dict(order()).items() if k not in ("oco_group", "parent_id")}
    old.pop("trail_amount")
    old.pop("trail_percent")
    assert from_dict(Order, old) == order()


def test_with_quantity_keeps_status_and_refuses_shrinking_below_fills() -> None:
    state = OrderState(order()).to(ACCEPTED, T0).with_fill(4.0, 100.0, T0)
    bigger = state.with_quantity(12.0, T0 + HOUR, "why")
    assert (bigger.status, bigger.order.quantity, bigger.remaining) == (PARTIAL, 12.0, 8.0)
    assert (bigger.updated, bigger.reason) == (T0 + HOUR, "why")
    with pytest.raises(ValueError, match="must exceed the filled quantity"):
        state.with_quantity(4.0, T0)
    with pytest.raises(IllegalTransition):
        state.to(CANCELLED, T0).with_quantity(12.0, T0)


# ----------------------------------------------------------------- trailing stops


def test_trailing_sell_ratchets_on_highs_and_fills_exactly_at_the_stop() -> None:
    broker = broker_with()
    broker.submit(order("t", SELL, type=TRAIL, trail_amount=5.0))
    assert broker.trailing_stop("t") is None  # no price seen yet
    assert bar(broker, 0, 100.0, 104.0, 97.0) == []  # best 100 -> stop 95; then high 104
    assert broker.trailing_stop("t") == 99.0
    assert bar(broker, 1, 103.0, 110.0, 100.0) == []  # low 100 > 99; then high 110
    assert broker.trailing_stop("t") == 105.0
    assert bar(broker, 2, 107.0, 108.0, 106.0) == []
    assert broker.trailing_stop("t") == 105.0  # lower highs never lower the stop
    (f,) = bar(broker, 3, 108.0, 109.0, 104.0)
    assert (f.side, f.quantity, f.price) == (SELL, 10.0, 105.0)
    assert status(broker, "t")[:2] == (FILLED, 10.0)


def test_trailing_stop_fill_gets_slippage_like_a_stop() -> None:
    broker = broker_with(slippage={"bps": 10.0})
    broker.submit(order("t", SELL, type=TRAIL, trail_amount=5.0))
    (f,) = bar(broker, 0, 100.0, 101.0, 94.0)
    assert f.price == pytest.approx(95.0 * 0.999)


def test_a_bars_high_does_not_both_raise_the_stop_and_trigger_it() -> None:
    broker = broker_with()
    broker.submit(order("t", SELL, type=TRAIL, trail_amount=5.0))
    assert bar(broker, 0, 100.0, 100.0, 99.0) == []  # stop 95
    # High 120 would put the stop at 115 and the low 96 would trigger it, but the bar may
    # have made its low first: the stop for this bar is 95, so no trigger.
    assert bar(broker, 1, 100.0, 120.0, 96.0) == []
    assert broker.trailing_stop("t") == 115.0  # the high counts from the next bar on
    # Next bar opens below 115: a gap through the stop, filled at the open.
    (f,) = bar(broker, 2, 112.0, 113.0, 100.0)
    assert f.price == 112.0


def test_when_the_trigger_bar_has_a_new_high_the_old_stop_fills() -> None:
    broker = broker_with()
    broker.submit(order("t", SELL, type=TRAIL, trail_amount=5.0))
    assert bar(broker, 0, 100.0, 100.0, 99.0) == []  # stop 95
    (f,) = bar(broker, 1, 100.0, 120.0, 94.0)
    assert f.price == 95.0  # not 115: the conservative reading of the bar


def test_the_open_ratchets_the_stop_before_the_trigger_test() -> None:
    broker = broker_with()
    broker.submit(order("t", SELL, type=TRAIL, trail_amount=5.0))
    assert bar(broker, 0, 100.0, 100.0, 99.0) == []  # stop 95
    # Opens at 110 (the bar's first trade): stop 105, then the low 104 triggers it.
    (f,) = bar(broker, 1, 110.0, 111.0, 104.0)
    assert f.price == 105.0


def test_gap_through_a_trailing_stop_fills_at_the_open() -> None:
    broker = broker_with()
    broker.submit(order("t", SELL, type=TRAIL, trail_amount=5.0))
    assert bar(broker, 0, 100.0, 110.0, 99.0) == []  # stop 105 from the next bar
    (f,) = bar(broker, 1, 100.0, 102.0, 98.0)
    assert f.price == 100.0


def test_trailing_buy_by_percent_follows_the_lows() -> None:
    broker = broker_with()
    broker.submit(order("t", BUY, type=TRAIL, trail_percent=0.25))
    assert bar(broker, 0, 96.0, 100.0, 80.0) == []  # best 96 -> stop 120; then low 80
    assert broker.trailing_stop("t") == 100.0  # 80 * 1.25
    (f,) = bar(broker, 1, 90.0, 101.0, 85.0)
    assert (f.side, f.price) == (BUY, 100.0)


def test_trailing_buy_gaps_up_through_the_stop() -> None:
    broker = broker_with()
    broker.submit(order("t", BUY, type=TRAIL, trail_amount=4.0))
    assert bar(broker, 0, 100.0, 101.0, 96.0) == []  # stop 100 after the low
    (f,) = bar(broker, 1, 103.0, 104.0, 102.0)
    assert f.price == 103.0


def test_triggered_trailing_stop_without_volume_fills_at_the_next_open() -> None:
    broker = broker_with(participation_rate=0.1)
    broker.submit(order("t", SELL, type=TRAIL, trail_amount=5.0))
    assert bar(broker, 0, 100.0, 100.0, 94.0, v=0.0) == []  # triggered, nothing tradable
    (f,) = bar(broker, 1, 120.0, 121.0, 119.0, v=1000.0)  # a market order now
    assert (f.quantity, f.price) == (10.0, 120.0)


def test_trailing_stop_is_not_moved_by_bars_before_it_exists() -> None:
    broker = broker_with()
    broker.submit(order("t", SELL, type=TRAIL, trail_amount=5.0, ts=T0 + HOUR))
    assert bar(broker, 0, 200.0, 210.0, 190.0) == []
    assert broker.trailing_stop("t") is None
    assert bar(broker, 1, 100.0, 101.0, 99.0) == []
    assert broker.trailing_stop("t") == 96.0


# -------------------------------------------------------------------- OCO groups


def test_oco_fill_cancels_the_sibling() -> None:
    broker = broker_with()
    broker.submit(order("tp", SELL, type=LIMIT, limit=110.0, oco="g"))
    broker.submit(order("sl", SELL, type=STOP, stop=95.0, oco="g"))
    assert bar(broker, 0, 100.0, 105.0, 96.0) == []
    (f,) = bar(broker, 1, 104.0, 111.0, 103.0)
    assert (f.client_order_id, f.price) == ("tp", 110.0)
    assert status(broker, "sl") == (CANCELLED, 0.0, "oco: g filled")
    assert broker.open_orders() == []
    got = [(s.order.client_order_id, s.status) for s in broker.journal]
    assert got == [("tp", ACCEPTED), ("sl", ACCEPTED), ("tp", FILLED), ("sl", CANCELLED)]


def test_oco_partial_fill_cancels_the_siblings_and_the_filler_keeps_working() -> None:
    broker = broker_with(participation_rate=0.5)
    broker.submit(order("tp", SELL, type=LIMIT, limit=110.0, oco="g"))
    broker.submit(order("sl", SELL, type=STOP, stop=95.0, oco="g"))
    (f,) = bar(broker, 0, 108.0, 111.0, 107.0, v=8.0)  # cap 4 of 10
    assert (f.client_order_id, f.quantity) == ("tp", 4.0)
    assert status(broker, "sl") == (CANCELLED, 0.0, "oco: g filled")
    assert bar(broker, 1, 100.0, 101.0, 90.0, v=100.0) == []  # the stop is gone
    (f,) = bar(broker, 2, 110.0, 112.0, 109.0, v=100.0)
    assert (f.client_order_id, f.quantity) == ("tp", 6.0)
    assert status(broker, "tp")[:2] == (FILLED, 10.0)


def test_oco_members_in_one_bar_stop_before_limit() -> None:
    # The take-profit is submitted first, the bar crosses both levels: the stop-loss wins.
    broker = broker_with()
    broker.submit(order("tp", SELL, type=LIMIT, limit=110.0, oco="g"))
    broker.submit(order("sl", SELL, type=STOP, stop=95.0, oco="g"))
    (f,) = bar(broker, 0, 100.0, 111.0, 94.0)
    assert (f.client_order_id, f.price) == ("sl", 95.0)
    assert status(broker, "tp") == (CANCELLED, 0.0, "oco: g filled")


def test_oco_member_filled_at_the_open_goes_first() -> None:
    # Gap above the take-profit: the open is the bar's first trade, so the limit fills
    # there before the later trade down to the stop.
    broker = broker_with()
    broker.submit(order("sl", SELL, type=STOP, stop=95.0, oco="g"))
    broker.submit(order("tp", SELL, type=LIMIT, limit=110.0, oco="g"))
    (f,) = bar(broker, 0, 112.0, 113.0, 90.0)
    assert (f.client_order_id, f.price) == ("tp", 112.0)
    assert broker.order("sl").status is CANCELLED


def test_oco_priority_does_not_reorder_orders_outside_the_group() -> None:
    broker = PaperBroker(PaperBrokerConfig(), buying_power=lambda: 1_000.0)
    broker.submit(order("b1", BUY, quantity=6.0))
    broker.submit(order("tp", SELL, type=LIMIT, limit=110.0, oco="g"))
    broker.submit(order("b2", BUY, quantity=6.0))
    broker.submit(order("sl", SELL, type=STOP, stop=95.0, oco="g"))
    fills = bar(broker, 0, 100.0, 111.0, 94.0)
    # Sells first (the stop before the limit), then the buys in submission order; the
    # stop's proceeds (950) fund the second buy.
    assert [(f.client_order_id, f.quantity) for f in fills] == [
        ("sl", 10.0),
        ("b1", 6.0),
        ("b2", 6.0),
    ]


def test_cancelling_one_oco_member_leaves_the_others() -> None:
    broker = broker_with()
    broker.submit(order("tp", SELL, type=LIMIT, limit=110.0, oco="g"))
    broker.submit(order("sl", SELL, type=STOP, stop=95.0, oco="g"))
    broker.cancel("tp", T0)
    (f,) = bar(broker, 0, 100.0, 111.0, 94.0)
    assert f.client_order_id == "sl"


def test_joining_an_oco_group_after_a_fill_is_rejected() -> None:
    broker = broker_with()
    broker.submit(order("a", SELL, oco="g"))
    bar(broker, 0, 100.0, 101.0, 99.0)
    late = broker.submit(order("b", SELL, type=STOP, stop=90.0, oco="g"))
    assert (late.status, late.reason) == (REJECTED, "oco: g already filled")


def test_oco_entries_with_brackets_cancel_the_others_held_children() -> None:
    # A breakout: buy above or sell below, whichever trades first, each with its exits.
    broker = broker_with()
    up = order("up", BUY, type=STOP, stop=105.0, oco="entry")
    down = order("down", SELL, type=STOP, stop=95.0, oco="entry")
    for o in bracket(up, take_profit=115.0, stop_loss=100.0) + bracket(
        down, take_profit=85.0, stop_loss=100.0
    ):
        broker.submit(o)
    (f,) = bar(broker, 0, 100.0, 106.0, 99.0)
    assert (f.client_order_id, f.price) == ("up", 105.0)
    assert status(broker, "down") == (CANCELLED, 0.0, "oco: entry filled")
    for cid in ("down-tp", "down-sl"):
        assert status(broker, cid) == (CANCELLED, 0.0, "bracket: entry down cancelled")
    assert ids(broker.open_orders()) == ["up-tp", "up-sl"]
    assert broker.held_orders() == []


# ----------------------------------------------------------------------- brackets


def test_bracket_builds_the_entry_and_its_oco_children() -> None:
    entry = order("e1", BUY, type=LIMIT, limit=100.0)
    orders = bracket(entry, take_profit=110.0, stop_loss=95.0, trail_percent=0.05)
    assert orders[0] is entry
    got = [(o.client_order_id, o.side, o.type, o.quantity, o.oco_group) for o in orders[1:]]
    assert got == [
        ("e1-tp", SELL, LIMIT, 10.0, "e1-oco"),
        ("e1-sl", SELL, STOP, 10.0, "e1-oco"),
        ("e1-ts", SELL, TRAIL, 10.0, "e1-oco"),
    ]
    assert [o.parent_id for o in orders] == ["", "e1", "e1", "e1"]
    assert (orders[1].limit_price, orders[2].stop_price, orders[3].trail_percent) == (
        110.0,
        95.0,
        0.05,
    )
    short = bracket(order("s1", SELL), take_profit=90.0, trail_amount=2.0)
    assert [(o.client_order_id, o.side, o.trail_amount) for o in short[1:]] == [
        ("s1-tp", BUY, None),
        ("s1-ts", BUY, 2.0),
    ]


@pytest.mark.parametrize(
    ("entry", "kwargs", "message"),
    [
        (order("e"), {}, "give at least one of take_profit, stop_loss"),
        (order("e"), {"take_profit": 95.0, "stop_loss": 100.0}, "take_profit 95.0 must be above"),
        (
            order("e", SELL),
            {"take_profit": 105.0, "stop_loss": 100.0},
            "take_profit 105.0 must be below stop_loss",
        ),
        (
            order("e", type=LIMIT, limit=100.0),
            {"take_profit": 99.0},
            "take_profit 99.0 must be above the entry's limit_price 100.0",
        ),
        (
            order("e", type=STOP, stop=100.0),
            {"stop_loss": 101.0},
            "stop_loss 101.0 must be below the entry's stop_price 100.0",
        ),
        (order("e"), {"take_profit": -1.0}, "take_profit must be a positive number"),
        (order("e"), {"trail_percent": 2.0}, r"trail_percent must be in \(0, 1\)"),
        (order("e", parent="x"), {"stop_loss": 90.0}, "must not itself be a child"),
    ],
)
def test_bracket_validation_names_the_field(
    entry: Order, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        bracket(entry, **kwargs)


def test_children_are_held_until_the_entry_fills_then_sized_to_it() -> None:
    updates: list[OrderState] = []
    broker = PaperBroker(PaperBrokerConfig(), on_update=updates.append)
    for o in bracket(order("e1", BUY, type=LIMIT, limit=100.0), 110.0, 95.0):
        broker.submit(o)
    assert [(s.order.client_order_id, s.status) for s in broker.journal] == [
        ("e1", ACCEPTED),
        ("e1-tp", NEW),
        ("e1-sl", NEW),
    ]
    assert broker.journal[1].reason == "bracket: held until e1 fills"
    assert ids(broker.open_orders()) == ["e1"]
    assert ids(broker.held_orders()) == ["e1-tp", "e1-sl"]
    # The bar crosses the take-profit, but the entry has not filled: nothing happens.
    assert bar(broker, 0, 102.0, 112.0, 101.0) == []
    assert broker.order("e1-tp").status is NEW
    (f,) = bar(broker, 1, 101.0, 101.0, 99.0)
    assert (f.client_order_id, f.price) == ("e1", 100.0)
    for cid in ("e1-tp", "e1-sl"):
        s = broker.order(cid)
        assert (s.status, s.order.quantity, s.reason, s.updated) == (
            ACCEPTED,
            10.0,
            "bracket: entry e1 filled 10.0",
            T0 + HOUR,
        )
    assert ids(broker.open_orders()) == ["e1-tp", "e1-sl"]
    assert broker.held_orders() == []
    (f,) = bar(broker, 2, 105.0, 111.0, 104.0)
    assert (f.client_order_id, f.side, f.quantity, f.price) == ("e1-tp", SELL, 10.0, 110.0)
    assert status(broker, "e1-sl") == (CANCELLED, 0.0, "oco: e1-oco filled")
    assert broker.open_orders() == []
    assert updates == broker.journal


def test_children_activated_in_a_bar_match_from_the_next_bar() -> None:
    broker = broker_with()
    for o in bracket(order("e1"), take_profit=110.0, stop_loss=95.0):
        broker.submit(o)
    # The market entry fills at the open 100; the bar then crosses both exit levels, but
    # the children only start working at the next bar.
    fills = bar(broker, 0, 100.0, 112.0, 90.0)
    assert [f.client_order_id for f in fills] == ["e1"]
    assert broker.order("e1-tp").status is ACCEPTED
    assert broker.order("e1-sl").status is ACCEPTED
    # A bar at the same timestamp again (a replay) does not match them either.
    assert bar(broker, 0, 100.0, 112.0, 90.0) == []
    # The next bar opens below the stop-loss the entry bar crossed: filled at the open.
    (f,) = bar(broker, 1, 93.0, 94.0, 92.0)
    assert (f.client_order_id, f.price) == ("e1-sl", 93.0)
    assert status(broker, "e1-tp") == (CANCELLED, 0.0, "oco: e1-oco filled")


def test_trailing_child_trails_from_the_entry_fill_price() -> None:
    broker = broker_with()
    for o in bracket(order("e1"), trail_amount=5.0):
        broker.submit(o)
    bar(broker, 0, 100.0, 130.0, 99.0)  # entry at 100; the entry bar's high is not used
    assert broker.trailing_stop("e1-ts") == 95.0
    assert bar(broker, 1, 101.0, 104.0, 97.0) == []  # open 101 -> stop 96; then high 104
    assert broker.trailing_stop("e1-ts") == 99.0
    (f,) = bar(broker, 2, 102.0, 102.0, 98.0)
    assert (f.client_order_id, f.price) == ("e1-ts", 99.0)


def test_partial_entry_fills_resize_the_children() -> None:
    broker = broker_with(participation_rate=0.5)
    for o in bracket(order("e1"), take_profit=110.0, stop_loss=95.0):
        broker.submit(o)
    (f,) = bar(broker, 0, 100.0, 101.0, 99.0, v=8.0)  # 4 of 10
    assert f.quantity == 4.0
    assert [broker.order(c).order.quantity for c in ("e1-tp", "e1-sl")] == [4.0, 4.0]
    (f,) = bar(broker, 1, 100.0, 101.0, 99.0, v=8.0)  # 4 more
    assert [broker.order(c).order.quantity for c in ("e1-tp", "e1-sl")] == [8.0, 8.0]
    resized = broker.journal[-2:]
    assert [(s.order.client_order_id, s.status, s.order.quantity, s.reason) for s in resized] == [
        ("e1-tp", ACCEPTED, 8.0, "bracket: entry e1 filled 8.0"),
        ("e1-sl", ACCEPTED, 8.0, "bracket: entry e1 filled 8.0"),
    ]
    (f,) = bar(broker, 2, 100.0, 101.0, 99.0, v=100.0)  # the last 2
    assert broker.order("e1").status is FILLED
    assert broker.order("e1-tp").order.quantity == 10.0
    (f,) = bar(broker, 3, 100.0, 101.0, 94.0, v=100.0)
    assert (f.client_order_id, f.quantity, f.price) == ("e1-sl", 10.0, 95.0)


def test_a_child_fill_cancels_the_rest_of_the_entry() -> None:
    broker = broker_with(participation_rate=0.5)
    for o in bracket(order("e1"), take_profit=110.0, stop_loss=95.0):
        broker.submit(o)
    bar(broker, 0, 100.0, 101.0, 99.0, v=8.0)  # entry 4 of 10
    # The take-profit (a sell, matched before the buy) exits the 4; the entry stops there.
    fills = bar(broker, 1, 109.0, 111.0, 108.0, v=8.0)
    assert [(f.client_order_id, f.quantity) for f in fills] == [("e1-tp", 4.0)]
    assert status(broker, "e1") == (CANCELLED, 4.0, "bracket: exit e1-tp filled")
    assert status(broker, "e1-sl") == (CANCELLED, 0.0, "oco: e1-oco filled")
    assert broker.open_orders() == []


def test_short_bracket_entry_fill_in_the_same_bar_resizes_a_working_child() -> None:
    # Sell entry (matched before the buy children): its second fill resizes the children
    # before they match in the same bar, so the stop covers the whole short.
    broker = broker_with(participation_rate=0.5)
    for o in bracket(order("s1", SELL), take_profit=90.0, stop_loss=105.0):
        broker.submit(o)
    bar(broker, 0, 100.0, 101.0, 99.0, v=8.0)  # short 4
    fills = bar(broker, 1, 100.0, 106.0, 99.0, v=100.0)
    assert [(f.client_order_id, f.side, f.quantity, f.price) for f in fills] == [
        ("s1", SELL, 6.0, 100.0),
        ("s1-sl", BUY, 10.0, 105.0),
    ]
    assert status(broker, "s1-tp") == (CANCELLED, 0.0, "oco: s1-oco filled")


def test_cancelling_the_entry_cancels_its_pending_children() -> None:
    broker = broker_with()
    for o in bracket(order("e1", type=LIMIT, limit=90.0), 110.0, 85.0):
        broker.submit(o)
    broker.cancel("e1", T0 + HOUR, "changed my mind")
    assert [(s.order.client_order_id, s.status, s.reason) for s in broker.journal[-3:]] == [
        ("e1", CANCELLED, "changed my mind"),
        ("e1-tp", CANCELLED, "bracket: entry e1 cancelled"),
        ("e1-sl", CANCELLED, "bracket: entry e1 cancelled"),
    ]
    assert broker.held_orders() == []
    assert broker.open_symbols == set()


def test_cancel_all_returns_the_cascaded_children_too() -> None:
    broker = broker_with()
    for o in bracket(order("e1", type=LIMIT, limit=90.0), 110.0, 85.0):
        broker.submit(o)
    broker.submit(order("x", type=LIMIT, limit=80.0))
    done = broker.cancel_all(T0 + HOUR)
    assert [(s.order.client_order_id, s.status) for s in done] == [
        ("e1", CANCELLED),
        ("e1-tp", CANCELLED),
        ("e1-sl", CANCELLED),
        ("x", CANCELLED),
    ]


def test_a_caller_cancelling_each_open_order_meets_no_held_child() -> None:
    # As the engine's kill switch and the session book do it.
    broker = broker_with()
    for o in bracket(order("e1", type=LIMIT, limit=90.0), 110.0, 85.0):
        broker.submit(o)
    for s in broker.open_orders():
        broker.cancel(s.order.client_order_id, T0 + HOUR, "halted")
    assert all(not s.is_open for s in broker.orders())


def test_cancelling_a_partly_filled_entry_leaves_its_children_for_the_filled_part() -> None:
    broker = broker_with(participation_rate=0.5)
    for o in bracket(order("e1"), 110.0, 95.0):
        broker.submit(o)
    bar(broker, 0, 100.0, 101.0, 99.0, v=8.0)  # 4 of 10
    broker.cancel("e1", T0 + HOUR)
    assert [broker.order(c).status for c in ("e1-tp", "e1-sl")] == [ACCEPTED, ACCEPTED]
    (f,) = bar(broker, 1, 100.0, 101.0, 94.0, v=100.0)
    assert (f.client_order_id, f.quantity) == ("e1-sl", 4.0)


def test_entry_rejected_for_cash_cancels_the_children() -> None:
    broker = PaperBroker(PaperBrokerConfig(), buying_power=lambda: 0.0)
    for o in bracket(order("e1"), 110.0, 95.0):
        broker.submit(o)
    assert bar(broker, 0, 100.0, 101.0, 99.0) == []
    assert status(broker, "e1") == (REJECTED, 0.0, INSUFFICIENT_CASH)
    assert status(broker, "e1-tp") == (CANCELLED, 0.0, "bracket: entry e1 rejected")


def test_day_entry_expiring_unfilled_cancels_the_children() -> None:
    broker = broker_with()
    entry = order("e1", type=LIMIT, limit=90.0, tif=TimeInForce.DAY)
    for o in bracket(entry, 110.0, 85.0):
        broker.submit(o)
    broker.expire_day(T0 + timedelta(days=1))
    assert status(broker, "e1-sl") == (CANCELLED, 0.0, "bracket: entry e1 expired")


def test_ioc_entry_partly_filled_keeps_its_children() -> None:
    broker = broker_with(participation_rate=0.5)
    for o in bracket(order("e1", tif=TimeInForce.IOC), 110.0, 95.0):
        broker.submit(o)
    bar(broker, 0, 100.0, 101.0, 99.0, v=8.0)
    assert broker.order("e1").status is CANCELLED
    assert [(s.order.client_order_id, s.order.quantity) for s in broker.open_orders()] == [
        ("e1-tp", 4.0),
        ("e1-sl", 4.0),
    ]


def test_cancelling_a_held_child_cancels_only_it() -> None:
    broker = broker_with()
    for o in bracket(order("e1"), 110.0, 95.0):
        broker.submit(o)
    broker.cancel("e1-tp", T0)
    assert ids(broker.held_orders()) == ["e1-sl"]
    bar(broker, 0, 100.0, 101.0, 99.0)
    assert ids(broker.open_orders()) == ["e1-sl"]


@pytest.mark.parametrize(
    ("child", "reason"),
    [
        (order("c", SELL, parent="nope"), "bracket: parent order 'nope' is unknown"),
        (order("c", BUY, parent="e1"), "bracket: side must be opposite to the parent's buy"),
        (order("c", SELL, 5.0, parent="e1"), "bracket: quantity must equal the parent's 10.0"),
        (order("c", SELL, parent="e1-tp"), "bracket: parent order 'e1-tp' is itself a child"),
    ],
)
def test_child_submissions_that_are_refused(child: Order, reason: str) -> None:
    broker = broker_with()
    for o in bracket(order("e1", type=LIMIT, limit=90.0), 110.0):
        broker.submit(o)
    state = broker.submit(child)
    assert (state.status, state.reason) == (REJECTED, reason)


def test_child_of_a_finished_parent_is_refused_and_of_a_part_filled_one_works_at_once() -> None:
    broker = broker_with(participation_rate=0.5)
    broker.submit(order("done"))
    broker.submit(order("part"))
    bar(broker, 0, 100.0, 101.0, 99.0, v=8.0)  # 4 of 10 each (the cap is per order)
    bar(broker, 1, 100.0, 101.0, 99.0, v=1000.0)  # both filled
    late = broker.submit(order("c1", SELL, parent="done", type=STOP, stop=90.0, ts=T0 + HOUR))
    assert (late.status, late.reason) == (REJECTED, "bracket: parent order 'done' is filled")
    broker.submit(order("p2", ts=T0 + 2 * HOUR))
    bar(broker, 2, 100.0, 101.0, 99.0, v=8.0)  # p2: 4 of 10
    child = broker.submit(
        order("c2", SELL, type=TRAIL, trail_amount=5.0, parent="p2", ts=T0 + 2 * HOUR)
    )
    assert (child.status, child.order.quantity) == (ACCEPTED, 4.0)
    assert broker.trailing_stop("c2") == 95.0  # from p2's average fill price


# -------------------------------------------------------------- snapshot / restore


def _scenario_bars() -> list[tuple[float, float, float, float]]:
    # (open, high, low, volume): the entry fills over two bars, the trailing child ratchets,
    # the take-profit is never reached and the trailing stop exits.
    return [
        (100.0, 101.0, 99.0, 8.0),
        (101.0, 104.0, 100.0, 40.0),
        (104.0, 108.0, 103.0, 40.0),
        (107.0, 109.0, 105.0, 40.0),
        (106.0, 107.0, 100.0, 40.0),
        (101.0, 102.0, 99.0, 40.0),
        (99.0, 100.0, 98.0, 40.0),
    ]


FillRow = tuple[str, float, float, datetime]


def _run(
    broker: PaperBroker, bars: list[tuple[float, float, float, float]], start: int
) -> list[FillRow]:
    out: list[FillRow] = []
    for i, (o, h, low, v) in enumerate(bars[start:], start):
        out += [
            (f.client_order_id, f.quantity, f.price, f.ts) for f in bar(broker, i, o, h, low, v)
        ]
    return out


@pytest.mark.parametrize("cut", range(7))
def test_snapshot_restore_mid_bracket_gives_the_same_fills(cut: int) -> None:
    config = PaperBrokerConfig(participation_rate=0.5)
    bars = _scenario_bars()
    straight = PaperBroker(config)
    first = PaperBroker(config)
    for o in bracket(order("e1"), take_profit=120.0, trail_amount=3.0):
        straight.submit(o)
        first.submit(o)
    expected = _run(straight, bars, 0)
    before = _run(first, bars[:cut], 0)
    snap = json.loads(json.dumps(first.snapshot()))  # as a store keeps it
    restored = PaperBroker(config)
    restored.restore(snap)
    assert restored.snapshot() == first.snapshot()
    assert restored.orders() == first.orders()
    assert restored.open_orders() == first.open_orders()
    assert restored.held_orders() == first.held_orders()
    assert restored.open_symbols == first.open_symbols
    assert before + _run(restored, bars, cut) == expected
    assert restored.orders() == straight.orders()
    assert restored.snapshot() == straight.snapshot()
    assert expected[-1][:3] == ("e1-ts", 10.0, 105.0)  # 108 - 3: the high of bar 2


def test_snapshot_holds_the_trailing_peak_and_the_activation_bar() -> None:
    broker = broker_with()
    for o in bracket(order("e1"), take_profit=120.0, trail_percent=0.1):
        broker.submit(o)
    bar(broker, 0, 100.0, 101.0, 99.0)
    bar(broker, 1, 102.0, 104.0, 101.0)
    snap = broker.snapshot()
    assert snap["peaks"] == {"e1-ts": 104.0}
    assert snap["activated"] == {"e1-tp": T0.isoformat(), "e1-ts": T0.isoformat()}
    # A snapshot of a broker without contingent orders restores as before.
    legacy: dict[str, Any] = {"orders": [], "triggered": [], "fills": {}}
    PaperBroker().restore(legacy)


# ---------------------------------------------------------------------- property


bar_paths = st.lists(
    st.tuples(
        st.floats(50.0, 150.0),  # open
        st.floats(50.0, 150.0),  # close
        st.floats(0.0, 20.0),  # up
        st.floats(0.0, 20.0),  # down
        st.floats(0.0, 400.0),  # volume
    ),
    min_size=1,
    max_size=14,
)


@st.composite
def brackets(draw: st.DrawFn) -> tuple[PaperBrokerConfig, list[Order]]:
    whole = draw(st.booleans())
    config = PaperBrokerConfig(
        participation_rate=draw(st.one_of(st.none(), st.floats(0.05, 1.0))),
        lot_size=1.0 if whole else 0.0,
    )
    side = draw(st.sampled_from([BUY, SELL]))
    sign = 1.0 if side is BUY else -1.0
    quantity = float(draw(st.integers(1, 200))) if whole else draw(st.floats(0.01, 200.0))
    kind = draw(st.sampled_from([MARKET, LIMIT]))
    reference = draw(st.floats(70.0, 130.0))
    entry = Order(
        "e",
        "AAA",
        side,
        quantity,
        T0,
        kind,
        limit_price=reference if kind is LIMIT else None,
        time_in_force=draw(st.sampled_from([TimeInForce.GTC, TimeInForce.IOC])),
    )
    take = draw(st.one_of(st.none(), st.floats(0.5, 30.0)))
    loss = draw(st.one_of(st.none(), st.floats(0.5, 30.0)))
    trail = draw(st.one_of(st.none(), st.floats(0.005, 0.2)))
    if take is None and loss is None and trail is None:
        loss = 5.0
    orders = bracket(
        entry,
        take_profit=None if take is None else reference + sign * take,
        stop_loss=None if loss is None else reference - sign * loss,
        trail_percent=trail,
    )
    return config, orders


@settings(max_examples=300, deadline=None)
@given(scenario=brackets(), path=bar_paths, cut=st.integers(0, 14))
def test_bracket_invariants_on_any_bar_path(
    scenario: tuple[PaperBrokerConfig, list[Order]],
    path: list[tuple[float, float, float, float, float]],
    cut: int,
) -> None:
    config, orders = scenario
    entry, children = orders[0], orders[1:]
    sign = entry.side.sign
    eps = 1e-9 * entry.quantity
    broker = PaperBroker(config)
    for each in orders:
        broker.submit(each)
    position = 0.0
    exited = False
    child_ids = {c.client_order_id for c in children}
    for i, (o, c, up, down, volume) in enumerate(path):
        if i == cut:  # a restart: the rest of the run must not notice
            restored = PaperBroker(config)
            restored.restore(json.loads(json.dumps(broker.snapshot())))
            broker = restored
        high, low = max(o, c) + up, max(min(o, c) - down, 1.0)
        for f in broker.on_bar("AAA", T0 + i * HOUR, o, high, low, c, volume):
            position += f.signed_quantity
            assert (f.client_order_id in child_ids) == (f.side is not entry.side)
            # Never more than the entry, never through flat to the other side.
            assert -eps <= position * sign <= entry.quantity + eps
            exited = exited or f.client_order_id in child_ids
        filled_children = [cid for cid in child_ids if broker.order(cid).filled_quantity > 0.0]
        assert len(filled_children) <= 1  # at most one exit fills
        for cid in child_ids:
            st_ = broker.order(cid)
            if st_.status is not NEW and st_.is_open:
                # A working child is sized to what the entry filled.
                assert st_.order.quantity == pytest.approx(broker.order("e").filled_quantity)
        # Flat relative to what the entry filled (a capped fill can be a tiny quantity).
        if exited and abs(position) <= 1e-9 * broker.order("e").filled_quantity:
            # After the exit nothing of the bracket is left working.
            assert all(not broker.order(cid).is_open for cid in [*child_ids, "e"])
            assert broker.open_orders() == [] and broker.held_orders() == []
    exits = sum(broker.order(cid).filled_quantity for cid in child_ids)
    assert position * sign == pytest.approx(broker.order("e").filled_quantity - exits, abs=eps)
