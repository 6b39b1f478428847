"""Ray actors: thin async shells around the pure components, each serving many sessions.

A session costs no process: every component actor keeps a dict keyed by session id. An actor
that restarts (``max_restarts``) comes back empty; the first call for a session it no longer
knows raises ``SessionNotLoaded``, and the session's driver then reloads every component from
the last checkpoint in the store (``load``) and replays from there.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from raytrader.agents import registry
from raytrader.agents.host import AccountSnapshot, AgentHost
from raytrader.data.ccxt_feed import CcxtPollingFeed, make_exchange
from raytrader.data.ccxt_ws_feed import CcxtWatchFeed, make_pro_exchange
from raytrader.data.feeds import BarSlice, ReplayFeed
from raytrader.data.resample import timeframe_to_timedelta
from raytrader.domain import Fill, Order, OrderState, Signal
from raytrader.domain.bar import BarTuple
from raytrader.execution.book import SessionBook
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.live_session import LiveSession
from raytrader.orchestrator.session_broker import PaperSession, SessionBroker, StepResult
from raytrader.portfolio.config import AgentCapital
from raytrader.portfolio.planner import OrderPlan, OrderPlanner
from raytrader.portfolio.rebalancer import AccountView, Rebalancer
from raytrader.risk.checks import PreTradeRisk, RiskContext
from raytrader.state.stores import StateStore, open_store
from raytrader.state.stores.base import JournalEntry, SessionRecord

T = TypeVar("T")
Feed = ReplayFeed | CcxtPollingFeed


class SessionNotLoaded(KeyError):
    """The actor holds nothing for this session (new, or the actor restarted)."""

    def __str__(self) -> str:
        return f"session {self.args[0]!r} is not loaded here"


def _config(record: SessionRecord) -> SessionConfig:
    return SessionConfig.stored(record.config)


def _each(method: Callable[..., T], *args: Any) -> T | SessionNotLoaded:
    """One request of a batch: a session this actor lost is reported, not raised, so the
    other sessions of the batch go on."""
    try:
        return method(*args)
    except SessionNotLoaded as exc:
        return exc


class _Component:
    """Shared plumbing: the store for reloads and the per-session dict."""

    def __init__(
        self, store_url: str | None, data_dir: str, store_prefix: str | None = None
    ) -> None:
        self._store_url = store_url
        self._data_dir = data_dir
        self._store_options = {"prefix": store_prefix} if store_prefix else {}
        self._store: StateStore | None = None
        self._lock = asyncio.Lock()

    async def store(self) -> StateStore:
        async with self._lock:
            if self._store is None:
                self._store = open_store(
                    self._store_url, Path(self._data_dir), **self._store_options
                )
            return self._store

    async def checkpoint(self, sid: str) -> tuple[SessionConfig, dict[str, Any] | None]:
        store = await self.store()
        record = await store.get_session(sid)
        if record is None:
            raise KeyError(f"unknown session {sid!r}")
        return _config(record), await store.load_snapshot(sid, "checkpoint")

    def ping(self) -> str:
        return "ok"


class DataActor(_Component):
    """Feeds of every session: replayed data sets and exchanges polled through ccxt."""

    def __init__(
        self, store_url: str | None, data_dir: str, store_prefix: str | None = None
    ) -> None:
        super().__init__(store_url, data_dir, store_prefix)
        self.feeds: dict[str, Feed] = {}

    async def load(self, sid: str) -> None:
        """(Re)open the session's feed right after its checkpoint."""
        config, cp = await self.checkpoint(sid)
        await self.drop(sid)
        if config.feed.kind == "replay":
            data = await asyncio.to_thread(config.data_spec().load)
            start = (cp["bar"] + 1) if cp else 0
            self.feeds[sid] = ReplayFeed(data, start=start, speed=config.feed.speed)
        else:
            self.feeds[sid] = await _open_ccxt_feed(config, cp)

    async def due(
        self, sids: Sequence[str], max_wait: float
    ) -> list[tuple[str, BarSlice | BaseException | None]]:
        """The due bar of every listed session (None: its feed ended; an exception: it
        failed), waiting up to ``max_wait`` seconds for the first one to fall due."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        waits = [self.feeds[s].wait_time(now) for s in sids if s in self.feeds]
        if len(waits) == len(sids) and waits and min(waits) > 0:
            await asyncio.sleep(min(min(waits), max_wait))
            now = loop.time()
        out: list[tuple[str, BarSlice | BaseException | None]] = []
        for sid in sids:
            feed = self.feeds.get(sid)
            if feed is None:
                out.append((sid, SessionNotLoaded(sid)))
            elif feed.wait_time(now) <= 0:
                try:
                    out.append((sid, feed.take(now)))
                except Exception as exc:  # a live feed that gave up: the session fails
                    out.append((sid, exc))
        return out

    async def drop(self, sid: str) -> None:
        feed = self.feeds.pop(sid, None)
        if isinstance(feed, CcxtPollingFeed):
            await feed.close()


async def _open_ccxt_feed(config: SessionConfig, cp: dict[str, Any] | None) -> CcxtPollingFeed:
    """A polling feed that starts after the checkpoint, or ``warmup`` bars back on a new
    session so the agents can decide from the first live bar."""
    assert config.symbols is not None and config.timeframe is not None
    feed_spec = config.feed
    tf_ms = int(timeframe_to_timedelta(config.timeframe).total_seconds() * 1000)
    if cp:
        since = int(pd.Timestamp(cp["ts"]).value // 1_000_000) + tf_ms
        start = cp["bar"] + 1
    else:
        warmup = max(registry.create(a.name, a.params).warmup for a in config.agents)
        now_ms = int(time.time() * 1000)
        since = (now_ms // tf_ms - warmup - 2) * tf_ms
        start = 0
    urls = {"*": str(feed_spec.api_url).rstrip("/")} if feed_spec.api_url else {}
    feed_class = CcxtPollingFeed
    if feed_spec.stream:
        if feed_spec.ws_url:
            urls["ws"] = str(feed_spec.ws_url).rstrip("/")
        exchange = make_pro_exchange(str(feed_spec.exchange), api_urls=urls or None)
        feed_class = CcxtWatchFeed
    else:
        exchange = make_exchange(str(feed_spec.exchange), api_urls=urls or None)
    feed = feed_class(
        exchange,
        config.symbols,
        config.timeframe,
        poll_interval=feed_spec.poll_interval,
        start_index=start,
        since_ms=since,
    )
    try:
        await feed.start()
    except BaseException:
        await feed.close()
        raise
    return feed


class StrategyActor(_Component):
    """The agents of many sessions, each with its bar history."""

    def __init__(
        self, store_url: str | None, data_dir: str, store_prefix: str | None = None
    ) -> None:
        super().__init__(store_url, data_dir, store_prefix)
        self.hosts: dict[str, AgentHost] = {}
        self.live: set[str] = set()  # sessions on live feeds

    async def load(self, sid: str) -> None:
        config, cp = await self.checkpoint(sid)
        agents = [registry.create(a.name, a.params) for a in config.agents]
        if config.feed.kind == "replay":
            data = await asyncio.to_thread(config.data_spec().load)
            host = AgentHost(agents, data.symbols)
            host.extend(data.slice(0, (cp["bar"] + 1) if cp else 0))
        else:
            # A live feed cannot be replayed: the checkpoint carries the recent bars.
            assert config.symbols is not None
            host = AgentHost(agents, config.symbols)
            self.live.add(sid)
            for ts, bars in ((cp or {}).get("agents") or {}).get("history") or []:
                host.append(
                    pd.Timestamp(ts).to_pydatetime(), {s: tuple(b) for s, b in bars.items()}
                )
        if cp and cp.get("agents"):
            host.restore(cp["agents"])
        self.hosts[sid] = host

    def decide(
        self, sid: str, ts: datetime, bars: Mapping[str, BarTuple], account: AccountSnapshot
    ) -> tuple[list[tuple[int, Signal]], dict[str, Any]]:
        host = self.hosts.get(sid)
        if host is None:
            raise SessionNotLoaded(sid)
        host.append(ts, bars)
        state = host.state()
        if sid in self.live:
            state["history"] = host.tail(2 * host.warmup + 2)
        return host.decide(account), state

    def decide_many(
        self, requests: Sequence[tuple[str, datetime, Mapping[str, BarTuple], AccountSnapshot]]
    ) -> list[tuple[list[tuple[int, Signal]], dict[str, Any]] | SessionNotLoaded]:
        return [_each(self.decide, *req) for req in requests]

    def state(self, sid: str) -> dict[str, Any]:
        """The agents' state now: what ``decide`` returned for the last bar (checkpoints
        written between two bars, by API actions on the session, carry it)."""
        host = self.hosts.get(sid)
        if host is None:
            raise SessionNotLoaded(sid)
        state = host.state()
        if sid in self.live:
            state["history"] = host.tail(2 * host.warmup + 2)
        return state

    def drop(self, sid: str) -> None:
        self.hosts.pop(sid, None)
        self.live.discard(sid)


class PortfolioActor(_Component):
    """Turns each session's pending signals into orders at the next open.

    With capital weights the planner nets the agents' latest targets, which the driver keeps
    (and checkpoints) and sends along: a reloaded actor has nothing to lose.
    """

    def __init__(
        self, store_url: str | None, data_dir: str, store_prefix: str | None = None
    ) -> None:
        super().__init__(store_url, data_dir, store_prefix)
        self.planners: dict[str, OrderPlanner] = {}

    async def load(self, sid: str) -> None:
        config, _ = await self.checkpoint(sid)
        rb = Rebalancer(config.portfolio, config.broker.commission, config.broker.slippage)
        capital = config.portfolio.capital
        shares = AgentCapital.resolve(capital, [a.name for a in config.agents]) if capital else None
        self.planners[sid] = OrderPlanner(rb, sid, shares)

    def plan(
        self,
        sid: str,
        bar: int,
        ts: datetime,
        prices: Mapping[str, float],
        account: AccountView,
        pending: Sequence[tuple[int, Signal]],
        targets: Mapping[tuple[int, str], Signal] | None = None,
    ) -> OrderPlan:
        planner = self.planners.get(sid)
        if planner is None:
            raise SessionNotLoaded(sid)
        planner.pending = list(pending)
        if targets is not None:
            planner.targets = dict(targets)
        plan = planner.plan(bar, ts, prices, account)
        planner.allocation_log.clear()  # a backtest's attribution input; a session keeps none
        return plan

    def plan_many(
        self,
        requests: Sequence[
            tuple[
                str,
                int,
                datetime,
                Mapping[str, float],
                AccountView,
                Sequence[tuple[int, Signal]],
                Mapping[tuple[int, str], Signal] | None,
            ]
        ],
    ) -> list[OrderPlan | SessionNotLoaded]:
        return [_each(self.plan, *req) for req in requests]

    def drop(self, sid: str) -> None:
        self.planners.pop(sid, None)


class RiskActor(_Component):
    """Pre-trade checks of every session's orders."""

    def __init__(
        self, store_url: str | None, data_dir: str, store_prefix: str | None = None
    ) -> None:
        super().__init__(store_url, data_dir, store_prefix)
        self.checkers: dict[str, PreTradeRisk] = {}

    async def load(self, sid: str) -> None:
        config, _ = await self.checkpoint(sid)
        self.checkers[sid] = PreTradeRisk(config.portfolio.limits)

    def check(
        self,
        sid: str,
        orders: Sequence[Order],
        account: AccountView,
        prices: Mapping[str, float],
        context: RiskContext | None = None,
    ) -> tuple[list[Order], list[tuple[Order, str]]]:
        checker = self.checkers.get(sid)
        if checker is None:
            raise SessionNotLoaded(sid)
        return checker.check(orders, account, prices, context)

    def check_many(
        self,
        requests: Sequence[
            tuple[str, Sequence[Order], AccountView, Mapping[str, float], RiskContext | None]
        ],
    ) -> list[tuple[list[Order], list[tuple[Order, str]]] | SessionNotLoaded]:
        return [_each(self.check, *req) for req in requests]

    def drop(self, sid: str) -> None:
        self.checkers.pop(sid, None)


class ExecutionActor(_Component):
    """The brokers and ledgers of every session: the paper broker, or an exchange's (live)."""

    def __init__(
        self, store_url: str | None, data_dir: str, store_prefix: str | None = None
    ) -> None:
        super().__init__(store_url, data_dir, store_prefix)
        self.books: dict[str, SessionBroker] = {}

    async def load(self, sid: str) -> None:
        config, cp = await self.checkpoint(sid)
        await self.drop(sid)
        if config.mode == "live":
            # Reconciles with the exchange before the session's first bar.
            self.books[sid] = await LiveSession.open(sid, config, cp, await self.store())
            return
        symbols: Sequence[str] | None = config.symbols
        if symbols is None:
            symbols = (await asyncio.to_thread(config.data_spec().load)).symbols
        book = SessionBook(config.initial_cash, config.broker, symbols)
        if cp and cp.get("book"):
            book.restore(cp["book"])
        self.books[sid] = PaperSession(book)

    def _book(self, sid: str) -> SessionBroker:
        book = self.books.get(sid)
        if book is None:
            raise SessionNotLoaded(sid)
        return book

    def symbols(self, sid: str) -> tuple[str, ...]:
        return self._book(sid).symbols

    async def step(
        self,
        sid: str,
        ts: datetime,
        bars: Mapping[str, BarTuple],
        cancel_symbols: Sequence[str] = (),
        orders: Sequence[Order] = (),
    ) -> StepResult:
        """Submit this open's orders, learn the bar's fills, book them (``StepResult``)."""
        return await self._book(sid).step(ts, bars, cancel_symbols, orders)

    async def step_many(
        self,
        requests: Sequence[
            tuple[str, datetime, Mapping[str, BarTuple], Sequence[str], Sequence[Order]]
        ],
    ) -> list[Any]:
        # One after the other: a paper step never suspends (no task per session needed), and
        # the batch waits for its slowest live step either way.
        out: list[Any] = []
        for req in requests:
            try:
                out.append(await self.step(*req))
            except SessionNotLoaded as exc:  # reported, so the batch's other sessions go on
                out.append(exc)
        return out

    async def stop(self, sid: str, ts: datetime) -> tuple[list[OrderState], list[Fill]]:
        return await self._book(sid).stop(ts)

    async def halt(
        self, sid: str, ts: datetime, reason: str, orders: Sequence[Order] = ()
    ) -> tuple[list[OrderState], dict[str, Any]]:
        """The kill switch tripped: cancel every open order with ``reason``, then submit
        ``orders`` (the flattening); the order changes and the book's snapshot."""
        return await self._book(sid).halt(ts, reason, orders)

    def resume(self, sid: str) -> None:
        """Let a paused broker send orders again (the session is resumed)."""
        self._book(sid).resume()

    def snapshot(self, sid: str) -> dict[str, Any]:
        return self._book(sid).snapshot()

    def orders(self, sid: str) -> list[OrderState]:
        return self._book(sid).orders()

    def positions(self, sid: str) -> dict[str, Any]:
        return self._book(sid).positions()

    def order(self, sid: str, client_order_id: str) -> OrderState | None:
        """The latest state of one order, or None if the broker does not know the id."""
        return self._book(sid).order(client_order_id)

    async def place(
        self, sid: str, orders: Sequence[Order], ts: datetime
    ) -> tuple[list[OrderState], dict[str, Any]]:
        """Submit orders between two bars (manual orders): their states and the book's
        snapshot; the changes stay for the driver's next step."""
        return await self._book(sid).place(orders, ts)

    async def cancel(
        self, sid: str, client_order_id: str, ts: datetime, reason: str
    ) -> tuple[str, OrderState | None]:
        """Cancel one order: ``("cancelled", state)``, ``("terminal", state)`` or
        ``("unknown", None)``; the change stays for the driver's next step."""
        return await self._book(sid).cancel(client_order_id, ts, reason)

    def portfolio(self, sid: str) -> dict[str, Any]:
        """Cash, positions (with cost and realized PnL) and the last closes of the book."""
        return self._book(sid).portfolio()

    async def drop(self, sid: str) -> None:
        book = self.books.pop(sid, None)
        if book is not None:
            await book.close()


class StateActor(_Component):
    """The one writer of the store: journal, events, checkpoints, session records."""

    async def put_session(self, record: SessionRecord) -> None:
        await (await self.store()).put_session(record)

    async def get_session(self, sid: str) -> SessionRecord | None:
        return await (await self.store()).get_session(sid)

    async def list_sessions(self, statuses: set[str] | None = None) -> list[SessionRecord]:
        return await (await self.store()).list_sessions(statuses)

    async def set_status(self, sid: str, status: str, reason: str = "") -> SessionRecord:
        return await (await self.store()).set_status(sid, status, reason)

    async def commit(
        self,
        sid: str,
        journal: Sequence[JournalEntry],
        events: Sequence[dict[str, Any]],
        checkpoint: dict[str, Any] | None,
    ) -> None:
        """Persist one bar: journal first, then events, then the checkpoint."""
        store = await self.store()
        if journal:
            await store.append_journal(sid, journal)
        if events:
            await store.append_events(sid, events)
        if checkpoint is not None:
            await store.save_snapshot(sid, "checkpoint", checkpoint)

    async def commit_many(
        self,
        commits: Sequence[
            tuple[str, Sequence[JournalEntry], Sequence[dict[str, Any]], dict[str, Any] | None]
        ],
    ) -> None:
        for sid, journal, events, checkpoint in commits:
            await self.commit(sid, journal, events, checkpoint)

    async def has_order(self, sid: str, client_order_id: str) -> bool:
        return await (await self.store()).has_journal_key(sid, "order", client_order_id)

    async def load_snapshot(self, sid: str, kind: str) -> dict[str, Any] | None:
        return await (await self.store()).load_snapshot(sid, kind)

    async def read_journal(self, sid: str, kind: str | None = None) -> list[Any]:
        return await (await self.store()).read_journal(sid, kind)  # type: ignore[arg-type]

    async def read_events(
        self, sid: str, after: str | None, limit: int, block_ms: int | None
    ) -> list[tuple[str, dict[str, Any]]]:
        return await (await self.store()).read_events(sid, after, limit, block_ms)

    async def order_state(self, sid: str, client_order_id: str) -> dict[str, Any] | None:
        """The latest journaled state of one order, or None."""
        latest: dict[str, Any] | None = None
        for entry in await (await self.store()).read_journal(sid, "order"):
            if entry.key == client_order_id:
                latest = entry.payload
        return latest

    async def put_record(self, namespace: str, key: str, data: dict[str, Any]) -> None:
        await (await self.store()).put_record(namespace, key, data)

    async def get_record(self, namespace: str, key: str) -> dict[str, Any] | None:
        return await (await self.store()).get_record(namespace, key)

    async def list_records(self, namespace: str) -> dict[str, dict[str, Any]]:
        return await (await self.store()).list_records(namespace)

    async def store_ping(self) -> bool:
        return await (await self.store()).ping()


COMPONENTS: dict[str, type[_Component]] = {
    "data": DataActor,
    "strategy": StrategyActor,
    "portfolio": PortfolioActor,
    "risk": RiskActor,
    "execution": ExecutionActor,
    "state": StateActor,
}
