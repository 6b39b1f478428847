"""Smart routing across venues by best price after fees (pure)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raytrader.domain import Side
from raytrader.execution.routing import VenueBook, route_order

A = VenueBook("A", [(100.0, 2.0), (101.0, 5.0)], taker_fee=0.001)
B = VenueBook("B", [(100.08, 1.0), (100.5, 5.0)], taker_fee=0.0)


def test_a_buy_takes_the_cheapest_levels_after_fees() -> None:
    route = route_order(Side.BUY, 4.0, [A, B])
    legs = [(leg.venue, leg.quantity, leg.limit_price) for leg in route.legs]
    assert legs == [("A", 2.0, 100.0), ("B", 2.0, 100.5)]
    b = route.legs[1]
    assert b.avg_price == pytest.approx(100.29) and b.avg_price_after_fees == pytest.approx(100.29)
    assert route.legs[0].avg_price_after_fees == pytest.approx(100.1)
    assert route.avg_price_after_fees == pytest.approx((2 * 100.1 + 100.08 + 100.5) / 4)
    assert route.unrouted == 0.0


def test_fees_decide_between_close_prices() -> None:
    assert [leg.venue for leg in route_order(Side.BUY, 1.0, [A, B]).legs] == ["B"]
    no_fee = VenueBook("A", A.levels)
    assert [leg.venue for leg in route_order(Side.BUY, 1.0, [no_fee, B]).legs] == ["A"]


def test_a_sell_takes_the_highest_bids_after_fees() -> None:
    # A's 99 is 98.802 after fees: B's 98.9 goes first, then 0.5 of A's 99.
    bids_a = VenueBook("A", [(99.0, 1.0), (98.0, 5.0)], taker_fee=0.002)
    bids_b = VenueBook("B", [(98.9, 3.0)], taker_fee=0.0)
    route = route_order(Side.SELL, 3.5, [bids_a, bids_b])
    assert [(leg.venue, leg.quantity, leg.limit_price) for leg in route.legs] == [
        ("A", 0.5, 99.0),
        ("B", 3.0, 98.9),
    ]


def test_limit_capacity_and_lot_size() -> None:
    limited = route_order(Side.BUY, 4.0, [A, B], limit_price=100.1)
    assert [(leg.venue, leg.quantity) for leg in limited.legs] == [("A", 2.0), ("B", 1.0)]
    assert limited.unrouted == pytest.approx(1.0)
    capped = route_order(Side.BUY, 4.0, [A, B], capacity={"B": 0.5})
    assert [(leg.venue, leg.quantity) for leg in capped.legs] == [("A", 3.5), ("B", 0.5)]
    lots = route_order(
        Side.BUY, 2.5, [VenueBook("A", [(1.0, 1.25)]), VenueBook("B", [(2.0, 9.0)])], lot_size=0.5
    )
    assert [(leg.venue, leg.quantity) for leg in lots.legs] == [("A", 1.0), ("B", 1.0)]


def test_ties_go_to_the_venue_listed_first() -> None:
    one = [(100.0, 1.0)]
    route = route_order(Side.BUY, 1.0, [VenueBook("X", one), VenueBook("Y", one)])
    assert [leg.venue for leg in route.legs] == ["X"]


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="positive number"):
        route_order(Side.BUY, 0.0, [A])
    with pytest.raises(ValueError, match="duplicate venues"):
        route_order(Side.BUY, 1.0, [A, A])
    with pytest.raises(ValueError, match="taker_fee"):
        VenueBook("Z", [], taker_fee=1.5)
    with pytest.raises(ValueError, match="bad book level"):
        VenueBook("Z", [(-1.0, 1.0)])


levels = st.lists(st.tuples(st.floats(1.0, 200.0), st.floats(0.0, 10.0)), min_size=0, max_size=6)


@given(
    a=levels,
    b=levels,
    fee_a=st.floats(0.0, 0.01),
    fee_b=st.floats(0.0, 0.01),
    qty=st.floats(0.01, 40.0),
)
def test_routing_is_the_cheapest_fill_of_what_the_books_hold(
    a: list[tuple[float, float]],
    b: list[tuple[float, float]],
    fee_a: float,
    fee_b: float,
    qty: float,
) -> None:
    books = [VenueBook("A", a, fee_a), VenueBook("B", b, fee_b)]
    route = route_order(Side.BUY, qty, books)
    available = sum(s for _, s in a) + sum(s for _, s in b)
    assert route.routed == pytest.approx(min(qty, available), abs=1e-9)
    # No cheaper level after fees was left untaken while a dearer one was taken.
    nets = sorted(
        itertools.chain(
            ((p * (1 + fee_a), s) for p, s in a if s > 0),
            ((p * (1 + fee_b), s) for p, s in b if s > 0),
        )
    )
    best_cost, left = 0.0, route.routed
    for net, size in nets:
        take = min(size, left)
        best_cost += take * net
        left -= take
    assert route.avg_price_after_fees * route.routed == pytest.approx(best_cost, rel=1e-9, abs=1e-9)
