"""Desired vs held vs in-flight, on hand-built cases."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from raytrader.domain import Order, OrderState, OrderStatus, Side
from raytrader.portfolio.reconcile import (
    Flag,
    in_flight_quantities,
    reconcile,
    reconcile_weights,
    target_quantities,
)

TS = datetime(2024, 1, 2, tzinfo=UTC)


def state(oid: str, symbol: str, side: Side, qty: float, filled: float = 0.0) -> OrderState:
    s = OrderState(Order(oid, symbol, side, qty, TS)).to(OrderStatus.ACCEPTED, TS)
    return s.with_fill(filled, 10.0, TS) if filled else s


def test_in_flight_sums_the_signed_remaining_of_open_orders() -> None:
    orders = [
        state("a", "A", Side.BUY, 100, filled=30),  # 70 left
        state("b", "A", Side.SELL, 20),
        state("c", "B", Side.SELL, 50, filled=10),  # 40 left
        state("d", "C", Side.BUY, 10, filled=10),  # filled: not open
        state("e", "D", Side.BUY, 10).to(OrderStatus.CANCELLED, TS),
    ]
    assert in_flight_quantities(orders) == {"A": 50.0, "B": -40.0}


def test_gap_is_desired_minus_held_minus_in_flight() -> None:
    rec = reconcile(
        desired={"A": 100, "B": -50, "C": 30},
        held={"A": 40, "B": 0, "C": 30},
        in_flight={"A": 50, "B": -50},
    )
    a, b, c = rec.rows
    assert (a.symbol, a.desired, a.held, a.in_flight, a.gap) == ("A", 100, 40, 50, 10)
    assert a.flags == {Flag.UNDER}
    assert (b.gap, b.flags) == (0, frozenset())  # the short is on its way
    assert (c.gap, c.flags) == (0, frozenset())
    assert rec.gaps() == {"A": 10}


def test_over_against_and_overshoot() -> None:
    rec = reconcile(
        desired={"A": 100, "B": 100, "C": 100, "S": -100},
        held={"A": 150, "B": 50, "C": 100, "S": -150},
        in_flight={"A": 20, "B": 80, "C": -10},
    )
    # A: above the target and buying more.
    assert rec.row("A").gap == -70
    assert rec.row("A").flags == {Flag.OVER, Flag.AGAINST}
    # B: needs +50, 80 on the way.
    assert rec.row("B").gap == -30
    assert rec.row("B").flags == {Flag.OVER, Flag.OVERSHOOT}
    # C: at the target, a sell still working.
    assert rec.row("C").gap == 10
    assert rec.row("C").flags == {Flag.UNDER, Flag.AGAINST}
    # S: a short 50 larger than wanted: buy 50 (signed: under).
    assert rec.row("S").gap == 50
    assert rec.row("S").flags == {Flag.UNDER}


def test_symbols_no_longer_desired_are_closed_and_their_orders_orphaned() -> None:
    rec = reconcile(
        desired={"A": 10},
        held={"A": 10, "OLD": 30, "GONE": 0},
        in_flight={"OLD": -10, "STALE": 5},
    )
    assert [r.symbol for r in rec.rows] == ["A", "OLD", "STALE"]  # GONE: nothing to do
    old = rec.row("OLD")
    assert (old.desired, old.target, old.gap) == (None, 0.0, -20)
    assert old.flags == {Flag.OVER, Flag.ORPHAN}  # the sell helps: not against
    stale = rec.row("STALE")
    assert (stale.target, stale.gap) == (0.0, -5)
    assert stale.flags == {Flag.OVER, Flag.ORPHAN, Flag.AGAINST}
    assert rec.flagged(Flag.ORPHAN) == ["OLD", "STALE"]


def test_missing_keep_leaves_undesired_holdings_alone() -> None:
    rec = reconcile({"A": 10}, {"A": 10, "OLD": 30}, {"OLD": -10}, missing="keep")
    old = rec.row("OLD")
    assert (old.target, old.gap) == (30, 10)
    assert old.flags == {Flag.UNDER, Flag.ORPHAN, Flag.AGAINST}


def test_weights_at_prices_and_equity() -> None:
    assert target_quantities({"A": 0.25, "B": -0.1}, {"A": 40.0, "B": 3.0}, 10_000, 10) == {
        "A": 60.0,  # 62.5 -> 60 in lots of 10
        "B": -330.0,  # -333.3 -> -330
    }
    rec = reconcile_weights({"A": 0.5}, {"A": 100.0}, 10_000, held={"A": 20}, in_flight={"A": 5})
    assert rec.row("A").desired == 50
    assert rec.row("A").gap == 25
    with pytest.raises(ValueError, match="'B'"):
        target_quantities({"B": 0.1}, {"B": math.nan}, 1.0)


def test_to_frame() -> None:
    frame = reconcile({"A": 10}, {"A": 4, "X": 1}, {"A": 2}).to_frame()
    assert list(frame.columns) == ["desired", "target", "held", "in_flight", "gap", "flags"]
    assert frame.loc["A", "gap"] == 4 and frame.loc["A", "flags"] == "under"
    assert frame["desired"].isna()["X"] and frame.loc["X", "flags"] == "over"
