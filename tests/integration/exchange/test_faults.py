"""Faults of the venue: 429, 5xx, timeouts, malformed JSON, dropped connections, insufficient
balance. Each is handled (retried with backoff, rejected with the reason, or the broker
paused) and none loses or duplicates an order: the venue ends with exactly one order per
client id and the journal with exactly one fill per order that filled."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from raytrader.domain import Order, OrderStatus, OrderType, Side
from raytrader.execution.ccxt_broker import BrokerError, CcxtBrokerConfig
from raytrader.state.stores.sqlite_store import SqliteStore
from tests.integration.exchange.conftest import MakeBroker
from tests.integration.exchange.fake_exchange import INSUFFICIENT, FakeExchange, Fault

pytestmark = pytest.mark.asyncio

SYM = "BTC/USDT"
BUSY = {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."}
FAULTS: dict[str, list[Fault]] = {
    "429 rate limit": [(429, {"code": -1003, "msg": "Too many requests."})],
    "503 unavailable": [(503, BUSY)],
    "502 bad gateway, twice": [(502, "<html>bad gateway</html>")] * 2,
    "timeout after the order was placed": ["slow"],
    "malformed JSON after the order was placed": ["malformed"],
    "connection dropped before the order": ["drop"],
}


def buy(cid: str, qty: float = 0.2) -> Order:
    return Order(cid, SYM, Side.BUY, qty, datetime.now(UTC))


def creates(srv: FakeExchange) -> int:
    return sum((m, e) == ("POST", "order") for m, e, _q, _k in srv.requests)


@pytest.mark.parametrize("name", list(FAULTS))
async def test_a_fault_on_create_neither_loses_nor_duplicates_the_order(
    name: str, venue: FakeExchange, make_broker: MakeBroker, store: SqliteStore
) -> None:
    venue.slow_seconds = 0.6
    broker = make_broker(venue, timeout_ms=300)
    await broker.start()
    venue.fault("POST order", *FAULTS[name])
    with capture_logs() as logs:
        state = await broker.submit(buy("c1"))
    assert state.status is OrderStatus.FILLED, state
    assert len(venue.orders_by_client_id("c1")) == 1
    assert [f.client_order_id for f in broker.drain_fills()] == ["c1"]
    assert len(await store.read_journal("acct", "fill")) == 1
    assert not broker.paused
    assert any(e["event"] == "order send failed, retrying" for e in logs)
    # The order placed before a lost answer is found by its client id, never sent twice.
    placed_anyway = FAULTS[name][0] in ("slow", "malformed")
    assert creates(venue) == (1 if placed_anyway else 1 + len(FAULTS[name]))


async def test_insufficient_balance_rejects_the_order_with_the_reason(
    venue: FakeExchange, make_broker: MakeBroker
) -> None:
    broker = make_broker(venue)
    await broker.start()
    venue.balances["USDT"] = 5.0
    state = await broker.submit(buy("poor", 0.2))
    assert state.status is OrderStatus.REJECTED
    assert "InsufficientFunds" in state.reason
    assert INSUFFICIENT["msg"] in state.reason
    assert creates(venue) == 1  # not retried
    assert venue.orders_by_client_id("poor") == []
    assert not broker.paused  # the next order (with funds) goes through
    venue.balances["USDT"] = 1_000.0
    assert (await broker.submit(buy("funded"))).status is OrderStatus.FILLED


async def test_a_venue_that_keeps_failing_pauses_the_broker_and_loses_nothing(
    venue: FakeExchange, make_broker: MakeBroker, store: SqliteStore
) -> None:
    broker = make_broker(venue, config=CcxtBrokerConfig(max_retries=2, retry_base=0.01))
    await broker.start()
    venue.fault("POST order", (503, BUSY))
    venue.fault("GET order", *[(503, BUSY)] * 5)
    state = await broker.submit(buy("stuck"))
    assert state.status is OrderStatus.NEW  # journaled, outcome unknown: not rejected
    assert "did not answer" in broker.paused
    with pytest.raises(RuntimeError, match="broker paused"):
        await broker.submit(buy("next"))
    assert "next" not in [o.order.client_order_id for o in broker.orders()]
    # Once the venue answers again, reconciling settles the order from the venue's view.
    venue.faults.clear()
    broker.resume()
    report = await broker.reconcile()
    assert broker.order("stuck").status is OrderStatus.REJECTED  # it never reached the venue
    assert report.updated[0].order.client_order_id == "stuck"
    assert venue.orders_by_client_id("stuck") == []


async def test_reads_are_retried_through_429_and_5xx_and_fail_clearly_after(
    venue: FakeExchange, make_broker: MakeBroker
) -> None:
    broker = make_broker(venue)
    await broker.start()
    venue.fault("GET account", (429, {"code": -1003, "msg": "Too many requests."}), (503, BUSY))
    assert (await broker.balances())["BTC"] == (10.0, 10.0)
    assert sum(e == "account" for _m, e, _q, _k in venue.requests) == 1 + 3  # start + 3 tries
    venue.fault("GET account", *[(503, BUSY)] * 10)
    with pytest.raises(BrokerError, match="fetch balance: OperationFailed"):
        await broker.balances()
    venue.faults.clear()
    # ccxt reads malformed JSON as an empty book or balance: the broker retries instead.
    venue.fault("GET depth", "malformed")
    venue.fault("GET account", "malformed")
    _bids, asks = await broker.order_book(SYM)
    assert asks[0] == (100.0, 5.0)
    assert (await broker.balances())["BTC"] == (10.0, 10.0)
    assert sum(e == "depth" for _m, e, _q, _k in venue.requests) == 2


async def test_a_cancel_whose_answer_is_lost_is_not_lost(
    venue: FakeExchange, make_broker: MakeBroker
) -> None:
    venue.slow_seconds = 0.6
    broker = make_broker(venue, timeout_ms=300)
    await broker.start()
    await broker.submit(Order("rest", SYM, Side.BUY, 0.2, datetime.now(UTC), OrderType.LIMIT, 90.0))
    venue.fault("DELETE order", "slow")  # cancelled at the venue, the answer times out
    state = await broker.cancel("rest")
    # The retry finds nothing left to cancel (-2011) and reads the order: cancelled.
    assert state.status is OrderStatus.CANCELLED
    assert [o.status for o in venue.orders_by_client_id("rest")] == ["CANCELED"]
    assert sum((m, e) == ("DELETE", "order") for m, e, _q, _k in venue.requests) == 2
