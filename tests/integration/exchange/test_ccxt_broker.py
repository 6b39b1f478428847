"""CcxtBroker against a local Binance-format venue with real ccxt: orders, precision and limits,
idempotent client ids, journal before send, sandbox URLs, reconciliation after a restart."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from raytrader.domain import Order, OrderStatus, OrderType, Side, TimeInForce
from raytrader.execution.ccxt_broker import CcxtBrokerConfig, make_trading_exchange
from raytrader.state.stores.base import JournalEntry, StoredEntry
from raytrader.state.stores.sqlite_store import SqliteStore
from tests.integration.exchange.conftest import SANDBOX, MakeBroker, credentials
from tests.integration.exchange.fake_exchange import FakeExchange

pytestmark = pytest.mark.asyncio

SYM = "BTC/USDT"


def order(cid: str, qty: float, side: Side = Side.BUY, limit: float | None = None) -> Order:
    kind = OrderType.MARKET if limit is None else OrderType.LIMIT
    return Order(cid, SYM, side, qty, datetime.now(UTC), kind, limit_price=limit)


def posts(srv: FakeExchange) -> list[dict[str, str]]:
    return [q for m, e, q, _ in srv.order_requests() if (m, e) == ("POST", "order")]


async def fills_in_journal(store: SqliteStore, account: str = "acct") -> list[StoredEntry]:
    return await store.read_journal(account, "fill")


async def test_orders_balances_and_positions_through_the_unified_api(
    venue: FakeExchange, make_broker: MakeBroker, store: SqliteStore
) -> None:
    broker = make_broker(venue)
    await broker.start()
    filled = await broker.submit(order("m1", 0.5))
    assert filled.status is OrderStatus.FILLED and filled.avg_fill_price == 100.0
    (fill,) = broker.drain_fills()
    assert (fill.quantity, fill.price) == (0.5, 100.0)
    assert fill.commission == pytest.approx(0.05)  # the venue's 0.1% fee on 50 USDT

    resting = await broker.submit(order("l1", 0.25, limit=90.0))
    assert resting.status is OrderStatus.ACCEPTED
    assert [o.order.client_order_id for o in broker.open_orders()] == ["l1"]
    assert [o["clientOrderId"] for o in await broker.fetch_open_orders(SYM)] == ["l1"]
    cancelled = await broker.cancel("l1")
    assert cancelled.status is OrderStatus.CANCELLED
    assert venue.orders_by_client_id("l1")[0].status == "CANCELED"
    assert await broker.fetch_open_orders(SYM) == []

    balances = await broker.balances()
    assert balances["BTC"] == (10.5, 10.5)
    assert balances["USDT"][1] == pytest.approx(100_000 - 50 - 0.05)
    assert await broker.positions([SYM]) == {SYM: 10.5}
    bids, asks = await broker.order_book(SYM)
    assert asks[0] == (100.0, 5.0) and bids[0] == (99.0, 5.0)


async def test_precision_and_limits_are_applied_before_sending(
    venue: FakeExchange, make_broker: MakeBroker
) -> None:
    broker = make_broker(venue)
    await broker.start()
    # The amount is cut to the step (0.001), the price rounded to the tick (0.01), as ccxt does.
    state = await broker.submit(order("p1", 0.12345, limit=90.129))
    assert (state.order.quantity, state.order.limit_price) == (0.123, 90.13)
    (sent,) = posts(venue)
    assert (sent["quantity"], sent["price"]) == ("0.123", "90.13")

    below_step = await broker.submit(order("p2", 0.0004))
    below_cost = await broker.submit(order("p3", 0.05, limit=50.0))  # 2.5 USDT < 10
    above_max = await broker.submit(order("p4", 9_500.0, limit=1.0))
    assert below_step.status is OrderStatus.REJECTED and "rounds to nothing" in below_step.reason
    assert below_cost.status is OrderStatus.REJECTED
    assert "below the market's minimum cost 10" in below_cost.reason
    assert "above the market's maximum amount 9000" in above_max.reason
    # A market order's cost is checked at the top of the book (100): 0.05 * 100 < 10.
    market_small = await broker.submit(order("p5", 0.05))
    assert "minimum cost" in market_small.reason
    assert len(posts(venue)) == 1  # none of the refused orders reached the venue


async def test_client_ids_are_idempotent(venue: FakeExchange, make_broker: MakeBroker) -> None:
    broker = make_broker(venue)
    await broker.start()
    first = await broker.submit(order("same", 0.2))
    again = await broker.submit(order("same", 0.3))
    assert first.status is OrderStatus.FILLED
    assert again.status is OrderStatus.REJECTED and "duplicate client order id" in again.reason
    assert broker.order("same").order.quantity == 0.2  # the original is untouched
    assert len(venue.orders_by_client_id("same")) == 1
    # An id the exchange would refuse (too long) is sent as a stable digest of it.
    long_id = "session-with-a-long-name:agent-7:2026-12-04T03:00:00Z:42"
    state = await broker.submit(order(long_id, 0.2))
    assert state.status is OrderStatus.FILLED
    (sent,) = [q for q in posts(venue) if q["newClientOrderId"].startswith("rt-")]
    assert len(sent["newClientOrderId"]) == 36


class TracingStore:
    """The store, with every journal append put on the venue's request trace."""

    def __init__(self, store: SqliteStore, trace: list[tuple[str, ...]]) -> None:
        self._store = store
        self._trace = trace

    async def append_journal(self, sid: str, entries: Sequence[JournalEntry]) -> list[Any]:
        for e in entries:
            self._trace.append(("journal", e.kind, e.key, str(e.payload.get("status"))))
        return await self._store.append_journal(sid, entries)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


async def test_every_order_is_journaled_before_it_is_sent(
    venue: FakeExchange, make_broker: MakeBroker, store: SqliteStore
) -> None:
    trace: list[tuple[str, ...]] = []
    venue.trace = trace
    broker = make_broker(venue, store=TracingStore(store, trace))
    await broker.start()
    for cid in ("j1", "j2"):
        await broker.submit(order(cid, 0.2))
    for cid in ("j1", "j2"):
        journaled = trace.index(("journal", "order", cid, "new"))
        sent = trace.index(("request", "POST", "order", cid))
        assert journaled < sent
    statuses = [e.payload["status"] for e in await store.read_journal("acct", "order")]
    assert statuses == ["new", "filled", "new", "filled"]


async def test_sandbox_mode_uses_the_sandbox_urls(venue: FakeExchange) -> None:
    ex = make_trading_exchange(
        "binance", credentials(), sandbox=True, api_urls={SANDBOX: venue.base}
    )
    try:
        assert ex.urls["api"]["private"] == venue.base + "/api/v3"
        await ex.load_markets()
        assert (await ex.fetch_balance())["total"]["BTC"] == 10.0
    finally:
        await ex.close()
    # Outside sandbox mode the sandbox origin is nowhere among the URLs.
    with pytest.raises(ValueError, match="match none"):
        make_trading_exchange("binance", None, api_urls={SANDBOX: venue.base})


async def test_reconciliation_books_what_the_exchange_did_while_down_exactly_once(
    venue: FakeExchange, make_broker: MakeBroker, store: SqliteStore
) -> None:
    first = make_broker(venue)
    await first.start()
    await first.submit(order("rest", 0.4, limit=95.0))
    await first.submit(order("keep", 0.1, side=Side.SELL, limit=150.0))
    await first.close()  # the orchestrator goes down

    venue.fill_resting("rest")  # the exchange fills it meanwhile
    venue.orders.append(  # and someone places an order the journal does not know
        type(venue.orders[0])(99, "manual-1", "BTCUSDT", "BUY", "LIMIT", 1.0, 50.0, "GTC", 0)
    )

    second = make_broker(venue)
    report = await second.start()
    assert [f.client_order_id for f in report.fills] == ["rest"]
    assert (report.fills[0].quantity, report.fills[0].price) == (0.4, 95.0)
    assert second.order("rest").status is OrderStatus.FILLED
    assert second.order("keep").status is OrderStatus.ACCEPTED  # still resting
    assert report.unknown == ["manual-1"]
    before, after = report.balance_changes["BTC"]
    assert after - before == pytest.approx(0.4)
    await second.close()

    third = make_broker(venue)
    again = await third.start()
    assert again.fills == [] and again.updated == [] and "BTC" not in again.balance_changes
    assert [e.key for e in await fills_in_journal(store)] == ["1:0.4"]


async def test_an_order_lost_in_a_crash_is_settled_on_restart(
    venue: FakeExchange, make_broker: MakeBroker, store: SqliteStore
) -> None:
    """Journaled, then the orchestrator died: one order never reached the venue, the answer to
    the other was lost. The restart rejects the first and books the second's fill once."""
    no_retry = CcxtBrokerConfig(max_retries=0)
    broker = make_broker(venue, config=no_retry, timeout_ms=300)
    await broker.start()
    venue.fault("POST order", "drop")
    await broker.submit(order("never-sent", 0.2))
    assert broker.paused and broker.order("never-sent").status is OrderStatus.NEW
    broker.resume()
    venue.slow_seconds = 0.6
    venue.fault("POST order", "slow")
    await broker.submit(order("answer-lost", 0.3))
    assert broker.order("answer-lost").status is OrderStatus.NEW
    assert venue.orders_by_client_id("never-sent") == []
    await broker.close()

    restarted = make_broker(venue)
    report = await restarted.start()
    assert restarted.order("never-sent").status is OrderStatus.REJECTED
    assert restarted.order("never-sent").reason == "not received by the exchange"
    assert restarted.order("answer-lost").status is OrderStatus.FILLED
    assert [(f.client_order_id, f.quantity) for f in report.fills] == [("answer-lost", 0.3)]
    assert len(venue.orders_by_client_id("answer-lost")) == 1
    assert len(await fills_in_journal(store)) == 1


async def test_unsupported_orders_are_rejected_with_the_reason(
    venue: FakeExchange, make_broker: MakeBroker
) -> None:
    broker = make_broker(venue)
    await broker.start()
    now = datetime.now(UTC)
    stop = await broker.submit(Order("s1", SYM, Side.SELL, 0.2, now, OrderType.STOP, stop_price=90))
    day = await broker.submit(
        Order("d1", SYM, Side.BUY, 0.2, now, OrderType.LIMIT, 90.0, time_in_force=TimeInForce.DAY)
    )
    nosym = await broker.submit(Order("x1", "DOGE/USDT", Side.BUY, 1.0, now))
    assert "not supported" in stop.reason and "'day' is not supported" in day.reason
    assert "no such market" in nosym.reason
    assert posts(venue) == []


async def test_partial_fills_are_booked_once_each_across_a_restart(
    venue: FakeExchange, make_broker: MakeBroker, store: SqliteStore
) -> None:
    first = make_broker(venue)
    await first.start()
    # A limit buy of 7 at 100.5 takes the 5 offered at 100 and rests for the other 2.
    state = await first.submit(order("part", 7.0, limit=100.5))
    assert state.status is OrderStatus.PARTIALLY_FILLED and state.filled_quantity == 5.0
    assert [(f.quantity, f.price) for f in first.drain_fills()] == [(5.0, 100.0)]
    await first.close()

    venue.fill_resting("part")
    second = make_broker(venue)
    report = await second.start()
    assert [(f.quantity, f.price) for f in report.fills] == [(2.0, 100.5)]
    final = second.order("part")
    assert final.status is OrderStatus.FILLED
    assert final.avg_fill_price == pytest.approx((5 * 100.0 + 2 * 100.5) / 7)
    assert [e.key for e in await fills_in_journal(store)] == ["1:5", "1:7"]
