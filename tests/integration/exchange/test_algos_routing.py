"""Smart routing and TWAP/VWAP against two local venues quoting different books, live (one
CcxtBroker per venue) and paper (paper brokers quoting the venues' real books, no order sent).

Venue A asks 100.00 (2) and 101.00 (5) with a 0.1% taker fee; venue B asks 100.08 (1) and
100.50 (5) with no fee. Before fees A's 100.00 is the best price; after fees (100.10) B's
100.08 is, so a buy of 4 takes B 100.08 x 1, A 100.00 x 2 (100.10 after fees), B 100.50 x 1.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from raytrader.domain import Order, OrderStatus, OrderType, Side, TimeInForce
from raytrader.execution import PaperBroker
from raytrader.execution.algos import twap_schedule, vwap_schedule
from raytrader.execution.ccxt_broker import CcxtBroker, make_trading_exchange, public_books
from raytrader.execution.smart_order import PaperVenue, RoutedOrder, route_and_submit, run_schedule
from raytrader.state.stores.sqlite_store import SqliteStore
from tests.integration.exchange.conftest import SANDBOX, MakeBroker
from tests.integration.exchange.fake_exchange import FakeExchange

pytestmark = pytest.mark.asyncio

SYM = "BTC/USDT"
FEES = {"A": 0.001, "B": 0.0}
T0 = datetime(2026, 1, 5, 12, tzinfo=UTC)


@pytest.fixture
def venues(venue: FakeExchange, venue_b: FakeExchange) -> dict[str, FakeExchange]:
    venue.asks, venue.fee = [(100.0, 2.0), (101.0, 5.0)], FEES["A"]
    venue_b.asks, venue_b.fee = [(100.08, 1.0), (100.5, 5.0)], FEES["B"]
    return {"A": venue, "B": venue_b}


async def live_brokers(
    venues: dict[str, FakeExchange], make_broker: MakeBroker
) -> dict[str, CcxtBroker]:
    brokers = {
        n: make_broker(srv, account=f"acct-{n}", taker_fee=FEES[n]) for n, srv in venues.items()
    }
    for b in brokers.values():
        await b.start()
    return brokers


def buy(cid: str, qty: float, ts: datetime = T0) -> Order:
    return Order(cid, SYM, Side.BUY, qty, ts)


class FakeClock:
    """Time that moves only when the algorithm sleeps (no test waits for real)."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)


async def test_live_routing_takes_the_best_prices_after_fees(
    venues: dict[str, FakeExchange], make_broker: MakeBroker
) -> None:
    brokers = await live_brokers(venues, make_broker)
    routed = await route_and_submit(buy("r1", 4.0), brokers)
    legs = {leg.venue: leg for leg in routed.route.legs}
    assert (legs["A"].quantity, legs["A"].limit_price) == (2.0, 100.0)
    assert (legs["B"].quantity, legs["B"].limit_price) == (2.0, 100.5)
    assert routed.route.unrouted == 0.0
    assert {n: s.status for n, s in routed.states.items()} == {
        "A": OrderStatus.FILLED,
        "B": OrderStatus.FILLED,
    }
    assert routed.states["A"].avg_fill_price == 100.0
    assert routed.states["B"].avg_fill_price == pytest.approx(100.29)
    # Each venue got exactly one order: a marketable limit at the worst price routed to it.
    (a,) = venues["A"].orders_by_client_id("r1-A")
    (b,) = venues["B"].orders_by_client_id("r1-B")
    assert (a.type, a.tif, a.price, a.executed) == ("LIMIT", "IOC", 100.0, 2.0)
    assert (b.type, b.tif, b.price, b.executed) == ("LIMIT", "IOC", 100.5, 2.0)
    # One unit goes to B after fees; with fees ignored it would go to A's lower price.
    one = await route_and_submit(buy("r2", 1.0), brokers)
    assert [(leg.venue, leg.quantity) for leg in one.route.legs] == [("B", 1.0)]
    for broker in brokers.values():
        broker.fee = 0.0
    no_fees = await route_and_submit(buy("r3", 1.0), brokers)
    assert [(leg.venue, leg.quantity) for leg in no_fees.route.legs] == [("A", 1.0)]


async def test_routing_respects_available_size(
    venues: dict[str, FakeExchange], make_broker: MakeBroker
) -> None:
    brokers = await live_brokers(venues, make_broker)
    routed = await route_and_submit(buy("big", 15.0), brokers)  # books hold 13
    assert routed.route.routed == pytest.approx(13.0) and routed.route.unrouted == pytest.approx(
        2.0
    )
    assert sum(o.executed for srv in venues.values() for o in srv.orders) == pytest.approx(13.0)
    capped = await route_and_submit(buy("cap", 4.0), brokers, capacity={"B": 0.5})
    assert [(leg.venue, leg.quantity) for leg in capped.route.legs] == [("A", 3.5), ("B", 0.5)]


async def test_live_twap_slices_a_parent_into_routed_children(
    venues: dict[str, FakeExchange], make_broker: MakeBroker, store: SqliteStore
) -> None:
    brokers = await live_brokers(venues, make_broker)
    clock = FakeClock(T0)
    parent = buy("twap", 0.9)
    schedule = twap_schedule(0.9, T0, T0 + timedelta(minutes=3), slices=3, lot_size=0.001)
    assert [s.quantity for s in schedule] == pytest.approx([0.3, 0.3, 0.3])

    async def route(child: Order) -> RoutedOrder:
        return await route_and_submit(child, brokers)

    results = await run_schedule(parent, schedule, route, clock=clock, sleep=clock.sleep)
    assert clock.sleeps == [60.0, 60.0]  # children due a minute apart
    # The venues' books do not deplete: each child of 0.3 takes B's 100.08, best after fees.
    client_ids = [o.client_id for srv in venues.values() for o in srv.orders]
    assert sorted(client_ids) == ["twap-0-B", "twap-1-B", "twap-2-B"]
    assert len(set(client_ids)) == len(client_ids)
    assert all(s.status is OrderStatus.FILLED for r in results for s in r.states.values())
    # Run again (a restart): the same child ids are refused as duplicates, nothing is resent.
    again = await run_schedule(parent, schedule, route, clock=clock, sleep=clock.sleep)
    assert all("duplicate client order id" in s.reason for r in again for s in r.states.values())
    assert len(venues["B"].orders) == 3


async def paper_venues(
    venues: dict[str, FakeExchange],
) -> tuple[dict[str, PaperVenue], Callable[[], Awaitable[None]]]:
    exchanges = {
        n: make_trading_exchange("binance", None, sandbox=True, api_urls={SANDBOX: srv.base})
        for n, srv in venues.items()
    }
    for ex in exchanges.values():
        await ex.load_markets()

    async def close() -> None:
        for ex in exchanges.values():
            await ex.close()

    out = {n: PaperVenue(PaperBroker(), public_books(ex), FEES[n]) for n, ex in exchanges.items()}
    return out, close


async def test_paper_routing_and_vwap_quote_real_books_and_send_nothing(
    venues: dict[str, FakeExchange],
) -> None:
    paper, close = await paper_venues(venues)
    try:
        routed = await route_and_submit(buy("p1", 4.0), paper)
        legs = [(leg.venue, leg.quantity, leg.limit_price) for leg in routed.route.legs]
        assert legs == [("A", 2.0, 100.0), ("B", 2.0, 100.5)]  # as the live route
        order_b = paper["B"].broker.order("p1-B").order
        assert (order_b.type, order_b.time_in_force) == (OrderType.LIMIT, TimeInForce.IOC)
        # The paper brokers fill the legs against the next bar, at their limits or better.
        fills_b = paper["B"].broker.on_bar(SYM, T0, 100.2, 100.6, 100.1, 100.4, 50.0)
        fills_a = paper["A"].broker.on_bar(SYM, T0, 100.2, 100.6, 99.9, 100.4, 50.0)
        assert [(f.quantity, f.price) for f in fills_b] == [(2.0, 100.2)]  # opened below 100.5
        assert [(f.quantity, f.price) for f in fills_a] == [(2.0, 100.0)]  # reached the limit

        # VWAP on bar volume: children sized by each bar's share of the profile's volume.
        profile = [(T0 + timedelta(hours=i), v) for i, v in enumerate([10.0, 30.0, 60.0])]
        schedule = vwap_schedule(1.0, profile, lot_size=0.001)
        assert [s.quantity for s in schedule] == pytest.approx([0.1, 0.3, 0.6])
        broker = paper["A"].broker
        clock = FakeClock(T0)
        states = await run_schedule(
            buy("vwap", 1.0), schedule, paper["A"].submit, clock=clock, sleep=clock.sleep
        )
        assert [s.status for s in states] == [OrderStatus.ACCEPTED] * 3
        fills = broker.on_bar(SYM, clock.now, 100.0, 101.0, 99.0, 100.5, 100.0)
        assert sorted(f.quantity for f in fills) == pytest.approx([0.1, 0.3, 0.6])
    finally:
        await close()
    for srv in venues.values():
        assert srv.order_requests() == []  # paper mode: no order reached a venue
        assert any(e == "depth" for _m, e, _q, _k in srv.requests)  # but the books were read
