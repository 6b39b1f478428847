"""Live sessions: the orchestrator trades on a Binance-format venue through ``CcxtBroker``.

Real Ray, real ccxt, the local ``FakeExchange`` serving both the candles (the feed) and the
trading API (the sandbox URLs pointed at it). The component actors get the exchange keys in
their environment, as the workers of a server started with them would.
"""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
import ray

from raytrader.domain import OrderType, Side
from raytrader.execution.market_rules import exchange_client_id
from raytrader.orchestrator import control
from raytrader.orchestrator.actors import COMPONENTS
from raytrader.orchestrator.live_session import LiveSession
from raytrader.orchestrator.runtime import NAMESPACE, Components
from raytrader.orchestrator.sessions import SessionManager
from raytrader.secrets import CredentialsError
from raytrader.state.stores.sqlite_store import SqliteStore
from tests.integration.exchange.conftest import KEY, SECRET, live_config
from tests.integration.exchange.fake_exchange import FakeExchange

pytestmark = pytest.mark.asyncio

ENV = {
    "RAYTRADER_EXCHANGE_BINANCE_API_KEY": KEY,
    "RAYTRADER_EXCHANGE_BINANCE_SECRET": SECRET,
}


@pytest.fixture(scope="module")
def components(ray_runtime: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Components]:
    """Component actors over a SQLite store, with the exchange keys in their environment
    (module-wide: starting actors costs seconds; each test runs its own sessions)."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path_factory.mktemp("live")
    handles = {
        name: ray.remote(cls)
        .options(
            name=f"{prefix}-{name}",
            namespace=NAMESPACE,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=2000,
            num_cpus=0,
            runtime_env={"env_vars": ENV},
        )
        .remote(None, str(data_dir))
        for name, cls in COMPONENTS.items()
    }
    yield Components(**handles)
    for handle in handles.values():
        ray.kill(handle, no_restart=True)


@pytest.fixture(autouse=True)
def allow_live(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAYTRADER_ALLOW_LIVE", "1")


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def posts(venue: FakeExchange) -> list[str]:
    """The client ids of every order the venue was sent."""
    return [q["newClientOrderId"] for m, e, q, _ in venue.order_requests() if m == "POST"]


async def test_agent_orders_reach_the_exchange_once_and_fills_are_booked_once(
    components: Components, venue: FakeExchange
) -> None:
    # A 6-second zig-zag: the 2/4 averages cross every few bars.
    venue.kline_price = lambda ts: 100.0 + abs((ts // 1000) % 6 - 3)
    mgr = SessionManager(components)
    try:
        sid = await mgr.start(live_config(venue))

        async def traded_both_ways() -> bool:
            sides = {f["side"] for f in await mgr.fills(sid)} if sid in mgr.runs else set()
            return sides == {"buy", "sell"}

        await until(traded_both_ways, 60, "a buy and a sell filled on the exchange")
        assert await mgr.stop(sid) == "stopping"
        assert await mgr.wait(sid, 10) == "stopped"
    finally:
        await mgr.shutdown()

    sent = posts(venue)
    assert sent and len(sent) == len(set(sent)), sent  # every order reached the venue once
    orders = await mgr.orders(sid)
    # Each order the session journaled went to the venue, under its exchange client id.
    assert sorted(exchange_client_id(o["order"]["client_order_id"]) for o in orders) == sorted(sent)
    for o in orders:  # the session's journal ends each order filled, as the venue did
        assert o["status"] == "filled", o
    fills = await mgr.fills(sid)
    assert len({f["fill_id"] for f in fills}) == len(fills)
    # The fills booked are the venue's executions, once each.
    executed = {"buy": 0.0, "sell": 0.0}
    cost = fee = 0.0
    for o in venue.orders:
        executed[o.side.lower()] += o.executed
        cost += o.quote * (1 if o.side == "BUY" else -1)
        fee += sum(float(f["commission"]) for f in o.fills)
    booked = {side: sum(f["quantity"] for f in fills if f["side"] == side) for side in executed}
    assert booked == pytest.approx(executed)
    ledger = await mgr.ledger(sid)
    assert ledger is not None
    held = ledger.position("BTC/USDT").quantity
    assert held == pytest.approx(executed["buy"] - executed["sell"], abs=1e-9)
    assert ledger.cash == pytest.approx(1_000 - cost - fee)
    events = [e for _, e in await mgr.read_events(sid, None, 100_000, None)]
    assert sum(1 for e in events if e["type"] == "fill") == len(fills)
    stored = json.dumps([events, orders, fills, (await mgr.record(sid)).config], default=str)
    assert KEY not in stored and SECRET not in stored


async def test_a_live_session_without_keys_is_refused_naming_the_variables(
    venue: FakeExchange, store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    need = "set RAYTRADER_EXCHANGE_BINANCE_API_KEY and RAYTRADER_EXCHANGE_BINANCE_SECRET"
    with pytest.raises(CredentialsError, match=need):
        await LiveSession.open("s-nokeys", live_config(venue), None, store)
    assert venue.requests == []  # nothing was sent without keys


async def test_an_order_filled_while_the_orchestrator_was_down_is_booked_once(
    components: Components, venue: FakeExchange
) -> None:
    venue.kline_price = lambda ts: 100.0  # flat: the agent never trades, the client does
    mgr = SessionManager(components)
    sid = await mgr.start(live_config(venue))
    await until(lambda: _has_bars(mgr, sid), 60, "the session's first bar")
    order = control.ManualOrder(
        "resting-1", "BTC/USDT", Side.BUY, 1.0, type=OrderType.LIMIT, limit_price=95.0
    )
    state, new = await control.submit_order(mgr, sid, order)
    assert new and state.status.value == "accepted"
    (resting,) = venue.orders
    assert resting.status == "NEW"
    await asyncio.sleep(0.5)  # a few bars: the session polls the resting order

    # The orchestrator goes down (its driver stops, the execution actor dies) ...
    await mgr.shutdown()
    ray.kill(components.execution, no_restart=False)
    # ... and the order fills on the exchange meanwhile.
    venue.fill_resting(resting.client_id)

    mgr2 = SessionManager(components)
    try:
        assert await mgr2.resume_all() == [sid]

        async def booked() -> bool:
            return bool(await mgr2.fills(sid))

        await until(booked, 20, "the fill to be booked")
        bars = mgr2.runs[sid].last_bar
        await until(
            lambda: _true(mgr2.runs[sid].last_bar >= bars + 3), 10, "three more bars after it"
        )
        assert await mgr2.stop(sid) == "stopping"
        assert await mgr2.wait(sid, 10) == "stopped"
    finally:
        await mgr2.shutdown()

    assert posts(venue) == [resting.client_id]  # sent once, never again after the restart
    (fill,) = await mgr2.fills(sid)
    assert (fill["quantity"], fill["price"]) == (1.0, 95.0)
    (final,) = await mgr2.orders(sid)
    assert final["status"] == "filled" and final["filled_quantity"] == 1.0
    ledger = await mgr2.ledger(sid)
    assert ledger is not None
    assert ledger.position("BTC/USDT").quantity == 1.0
    assert ledger.cash == pytest.approx(1_000 - 95.0 - 95.0 * venue.fee)
    assert not math.isclose(ledger.cash, 1_000 - 2 * 95.0, abs_tol=1.0)


async def test_a_broker_that_pauses_halts_the_session_with_the_reason(
    components: Components, venue: FakeExchange
) -> None:
    venue.kline_price = lambda ts: 100.0
    busy = (503, {"code": -1001, "msg": "Internal error; unable to process your request."})
    mgr = SessionManager(components)
    try:
        sid = await mgr.start(live_config(venue))
        await until(lambda: _has_bars(mgr, sid), 60, "the session's first bar")
        # The venue fails the order and every look-up of it: the broker's retries run out.
        venue.fault("POST order", busy)
        venue.fault("GET order", *[busy] * 5)
        stuck = control.ManualOrder("stuck-1", "BTC/USDT", Side.BUY, 0.5)
        state, _ = await control.submit_order(mgr, sid, stuck)
        assert state.status.value == "new"  # outcome unknown: not booked either way
        await until(lambda: _status(mgr, sid, "halted"), 10, "the session to halt")
        record = await mgr.record(sid)
        assert record.reason == "broker paused: exchange did not answer after 2 retries"
        events = [e for _, e in await mgr.read_events(sid, None, 100_000, None)]
        assert {"type": "status", "status": "halted", "reason": record.reason} in events
        # Halted: orders are refused with the reason, nothing reaches the venue.
        refused, _ = await control.submit_order(
            mgr, sid, control.ManualOrder("after-1", "BTC/USDT", Side.BUY, 0.5)
        )
        assert refused.status.value == "rejected" and "broker paused" in refused.reason
        # The venue answers again: the stuck order is found never to have reached it.
        venue.faults.clear()

        async def settled() -> bool:
            states = {o["order"]["client_order_id"]: o for o in await mgr.orders(sid)}
            return states["stuck-1"]["status"] == "rejected"

        await until(settled, 10, "the stuck order to be settled")
        # A person resumes the session: the broker sends orders again.
        assert await mgr.resume(sid) == "running"
        again, _ = await control.submit_order(
            mgr, sid, control.ManualOrder("again-1", "BTC/USDT", Side.BUY, 0.5)
        )
        assert again.status.value == "filled"
        assert await mgr.stop(sid) == "stopping"
        assert await mgr.wait(sid, 10) == "stopped"
    finally:
        await mgr.shutdown()
    assert [o.client_id for o in venue.orders] == ["again-1"]  # none lost, none doubled
    (fill,) = await mgr.fills(sid)
    assert fill["client_order_id"] == "again-1" and fill["quantity"] == 0.5


async def _has_bars(mgr: SessionManager, sid: str) -> bool:
    """Running with a bar seen: manual orders are stamped with the session's clock."""
    run = mgr.runs[sid]
    return run.status == "running" and run.last_bar >= 0


async def _status(mgr: SessionManager, sid: str, status: str) -> bool:
    return (await mgr.record(sid)).status == status


async def _true(value: bool) -> bool:
    return value
