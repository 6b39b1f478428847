"""Session life cycle and the per-bar pipeline across the component actors.

One asyncio task per session drives its bars: data -> (at the open) portfolio -> risk ->
journal -> execution -> (the bar) execution -> strategy -> store. A bar's outcome depends only
on the last checkpoint and the bar, so after any component failure the driver reloads every
component from the checkpoint and replays: client order ids repeat, and the journal skips what
it already holds, so no order is sent or booked twice.

The session's kill switch (``portfolio.kill_switch``) books the equity at every close. When it
trips, the driver cancels the open orders, optionally sends market orders that flatten every
position at the next open, and marks the session ``halted`` with the reason (a ``risk`` and a
``status`` event say so). A halted session keeps receiving bars, but every order, the agents'
and manual ones, is refused (journaled as rejected, reason ``halted: <why>``) until a person
resumes it (``SessionManager.resume``). The halt is in the checkpoint, so it survives restarts.

Rebalance schedules: the schedule the portfolio API stores for a session (``SCHEDULES``) is
read when the session loads and replaced, between two bars, when the API changes it (the
change takes effect at the next bar). At each bar's close, once the agents have decided, a
schedule that is due (``RebalanceSchedule.due`` from the previous bar's time, which the
checkpoint keeps) queues a rebalance for the next open:

- with ``targets``: a weight signal per target symbol, as a manual rebalance queues them
  (``control.trigger_rebalance``): after the agents' signals, so they win for their symbols;
- without: the agents' latest targets, i.e. every agent's latest signal per symbol (kept in
  ``SessionRun.targets`` and checkpointed) sent again, so holdings that drifted from their
  targets are traded back to them (a weight is restored at the current equity; a quantity, a
  direction sized again). Symbols no agent ever targeted are left alone.

A ``rebalance`` event names the bar and what was queued. With capital weights
(``portfolio.capital``) the planner nets the agents' targets, as in a backtest (see
``OrderPlanner``).
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import structlog
from ray.exceptions import RayActorError, RayTaskError

from raytrader.agents.host import AccountSnapshot
from raytrader.data.feeds import BarSlice
from raytrader.domain import Fill, Order, OrderState, OrderStatus, Signal
from raytrader.domain.codec import from_dict, state_to_dict, to_dict
from raytrader.execution.paper_broker import PaperBroker
from raytrader.orchestrator import metrics
from raytrader.orchestrator.actors import SessionNotLoaded
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.runtime import Components
from raytrader.portfolio.planner import OrderPlan, Targets, marked_account, note_targets
from raytrader.portfolio.rebalancer import AccountView
from raytrader.portfolio.schedule import RebalanceSchedule
from raytrader.risk.checks import RiskContext, bar_returns, resting_quantities
from raytrader.risk.kill_switch import KillSwitch, flatten_orders
from raytrader.state.ledger import Ledger
from raytrader.state.metrics import compute_metrics, periods_per_year
from raytrader.state.stores.base import JournalEntry, SessionRecord

log = structlog.get_logger("raytrader.sessions")

ACTIVE = ("starting", "running", "halted", "stopping")
#: Sessions that take orders (a halted one refuses them, each with the reason).
LIVE = ("running", "halted")
CHECKPOINT_EVERY = 50  # bars; bounds the replay after a crash when nothing else changes
TICK_WAIT = 0.05  # seconds the tick loop waits for a due bar before checking for stops
_MINUTE = timedelta(seconds=60)
#: The store's namespace of the rebalance schedules the portfolio API sets, keyed by session.
SCHEDULES = "rebalance_schedule"
SCHEDULED = "scheduled rebalance"


class SessionError(Exception):
    """A request about a session that cannot be served (unknown id, wrong state)."""

    def __init__(self, message: str, status_code: int = 409) -> None:
        super().__init__(message)
        self.status_code = status_code


def target_signals(targets: Mapping[str, float], ts: datetime, reason: str) -> list[Signal]:
    """Weight signals moving each symbol of ``targets`` to its weight of the equity."""
    return [
        Signal(
            symbol,
            ts,
            direction=int(math.copysign(1, w)) if w else 0,
            weight=w,
            reason=reason,
        )
        for symbol, w in targets.items()
    ]


def _order_key(state: OrderState) -> str:
    """What makes an order state new to the journal: its status, filled quantity and size (a
    bracket child is resized, same status, when its entry fills in part again)."""
    o = state.order
    return (
        f"{o.client_order_id}|{state.status.value}|{state.filled_quantity!r}|{float(o.quantity)!r}"
    )


@dataclass
class SessionRun:
    """What the driver keeps in memory about one session."""

    id: str
    config: SessionConfig
    status: str = "starting"
    reason: str = ""
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    pending: list[tuple[int, Signal]] = field(default_factory=list)
    last_close: dict[str, float] = field(default_factory=dict)
    symbols: tuple[str, ...] = ()
    journaled: set[str] = field(default_factory=set)
    equity: dict[int, tuple[datetime, float]] = field(default_factory=dict)
    last_bar: int = -1
    since_checkpoint: int = 0
    fills: int = 0
    orders: int = 0
    recoveries: int = 0
    account: AccountSnapshot = field(default_factory=lambda: AccountSnapshot(0.0, 0.0, {}))
    book: dict[str, Any] | None = None
    # Held by the driver for a bar's step (and recovery, finish) and by API actions on the
    # session (manual orders, cancels, rebalance triggers), so the two never interleave.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    # What the pre-trade checks and the kill switch need (checkpointed, see risk_state):
    kill: KillSwitch = field(init=False)  # equity high-water mark, the day's start, the halt
    order_times: list[datetime] = field(default_factory=list)  # orders sent, last minute
    closes: list[list[float | None]] = field(default_factory=list)  # recent closes, by bar
    open_orders: dict[str, OrderState] = field(default_factory=dict)  # working, by client id
    # Rebalancing (checkpointed: targets and prev_ts; the schedule is the stored one):
    targets: Targets = field(default_factory=dict)  # every agent's latest signal per symbol
    schedule: RebalanceSchedule | None = None
    schedule_targets: dict[str, float] | None = None  # None: the agents' latest targets
    prev_ts: datetime | None = None  # the last bar's time, the schedule's previous bar

    def __post_init__(self) -> None:
        self.kill = KillSwitch(self.config.portfolio.kill_switch, self.config.initial_cash)

    def set_schedule(self, stored: Mapping[str, Any] | None) -> None:
        """Act on ``stored`` (the portfolio API's record, or None: no schedule) from now on."""
        if stored is None:
            self.schedule, self.schedule_targets = None, None
            return
        self.schedule = RebalanceSchedule.from_stored(stored)
        targets = stored.get("schedule", stored).get("targets")
        self.schedule_targets = {str(s): float(w) for s, w in targets.items()} if targets else None

    def scheduled_rebalance(
        self, ts: datetime, signals: list[tuple[int, Signal]]
    ) -> list[tuple[int, Signal]]:
        """What the pending signals become when the schedule is due at the close at ``ts``,
        the agents having just sent ``signals`` (already noted in ``targets``)."""
        if self.schedule_targets is not None:
            known = {s: w for s, w in self.schedule_targets.items() if s in self.symbols}
            return [*signals, *((-1, sg) for sg in target_signals(known, ts, SCHEDULED))]
        fresh = {(k, sg.symbol) for k, sg in signals}
        again = [
            (k, replace(sg, ts=ts, reason=f"{SCHEDULED}: {sg.reason}" if sg.reason else SCHEDULED))
            for (k, symbol), sg in self.targets.items()
            if (k, symbol) not in fresh
        ]
        return [*again, *signals]

    def track_orders(self, states: list[OrderState]) -> None:
        """Keep ``open_orders`` up to date with order changes."""
        for st in states:
            cid = st.order.client_order_id
            if st.is_open:
                self.open_orders[cid] = st
            else:
                self.open_orders.pop(cid, None)

    def note_sent(self, ts: datetime, count: int) -> None:
        """Orders sent at ``ts`` (for the order rate limit)."""
        self.order_times = [t for t in self.order_times if t > ts - _MINUTE]
        self.order_times.extend([ts] * count)

    def risk_context(self, ts: datetime, cancel_symbols: tuple[str, ...] = ()) -> RiskContext:
        """What the pre-trade checks need for orders sent at ``ts`` (after the cancels of
        ``cancel_symbols``), as the backtest engine gives it."""
        limits = self.config.portfolio.limits
        returns = None
        if limits.needs_returns and len(self.closes) >= 2:
            closes = np.array(
                [[math.nan if c is None else c for c in row] for row in self.closes], dtype=float
            )
            returns = bar_returns(self.symbols, closes.T)
        return RiskContext(
            now=ts,
            # What survives the cancels of ``cancel_symbols``: other symbols' orders and exits.
            open_orders=sum(
                1
                for st in self.open_orders.values()
                if st.order.symbol not in cancel_symbols
                or (st.order.parent_id and st.status is not OrderStatus.NEW)
            ),
            order_times=[t for t in self.order_times if t > ts - _MINUTE],
            day_start_equity=self.kill.day_start_for(ts),
            returns=returns,
            halted=self.kill.reason,
            resting=resting_quantities(self.open_orders.values(), cancel_symbols),
        )

    def risk_state(self) -> dict[str, Any]:
        return {
            "kill_switch": self.kill.state(),
            "order_times": [t.isoformat() for t in self.order_times],
            "closes": self.closes,
        }

    def restore_risk(self, state: dict[str, Any] | None) -> None:
        self.kill = KillSwitch(self.config.portfolio.kill_switch, self.config.initial_cash)
        self.order_times, self.closes = [], []
        if state:
            self.kill.restore(state["kill_switch"])
            self.order_times = [pd.Timestamp(t).to_pydatetime() for t in state["order_times"]]
            self.closes = [list(row) for row in state["closes"]]


def checkpoint_of(
    run: SessionRun,
    ts: datetime | None,
    agents: dict[str, Any] | None,
    book: dict[str, Any] | None,
) -> dict[str, Any]:
    """The one checkpoint format: what a reload needs to resume ``run`` after its last bar."""
    return {
        "bar": run.last_bar,
        "ts": ts.isoformat() if ts is not None else None,
        "prev_ts": run.prev_ts.isoformat() if run.prev_ts is not None else None,
        "symbols": list(run.symbols),
        "pending": [(k, to_dict(sg)) for k, sg in run.pending],
        "targets": [(k, to_dict(sg)) for (k, _), sg in run.targets.items()],
        "agents": agents,
        "book": book,
        "risk": run.risk_state(),
    }


class _BarWork:
    """One session's bar on its way through a tick."""

    __slots__ = (
        "account",
        "bars",
        "check",
        "decision",
        "events",
        "item",
        "passed",
        "paused",
        "plan",
        "prices",
        "run",
        "step",
        "tripped",
        "ts",
    )

    def __init__(self, run: SessionRun, item: BarSlice) -> None:
        self.run = run
        self.item = item
        self.ts = item.ts
        self.bars = item.bars
        self.prices: dict[str, float] = {}
        self.account: AccountView | None = None
        self.plan: OrderPlan | None = None
        self.check: tuple[list[Order], list[tuple[Order, str]]] = ([], [])
        self.passed: list[Order] = []
        self.step: Any = None
        self.decision: Any = None
        self.events: list[dict[str, Any]] = []
        self.tripped = ""  # the kill switch tripped at this bar's close, with this reason
        self.paused = ""  # the live broker stopped sending orders, with this reason

    @property
    def orders(self) -> tuple[Order, ...]:
        return self.plan.orders if self.plan is not None else ()

    @property
    def cancel(self) -> list[str]:
        # Once halted, what rests is the kill switch's flattening: no signal supersedes it.
        if self.plan is None or self.run.kill.halted:
            return []
        return list(self.plan.cancel_symbols)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _is_component_failure(exc: BaseException) -> bool:
    if isinstance(exc, SessionNotLoaded | RayActorError):
        return True
    return isinstance(exc, RayTaskError) and isinstance(exc.cause, SessionNotLoaded)


class SessionManager:
    """Starts, drives, stops and resumes sessions."""

    def __init__(self, components: Components) -> None:
        self.c = components
        self.runs: dict[str, SessionRun] = {}
        self._ticking: set[str] = set()  # loaded and driven by the tick loop
        self._wake = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ---- life cycle --------------------------------------------------------------------------

    async def start(self, config: SessionConfig) -> str:
        """Register a session and start driving it; returns its id at once."""
        sid = f"s-{uuid.uuid4().hex[:12]}"
        record = SessionRecord(sid, config.name, config.model_dump(mode="json"), "starting")
        await self.c.state.put_session.remote(record)
        self._launch(SessionRun(sid, config))
        return sid

    async def stop(self, sid: str) -> str:
        run = self.runs.get(sid)
        if run is None:
            record = await self.c.state.get_session.remote(sid)
            if record is None:
                raise SessionError(f"unknown session {sid!r}", 404)
            return str(record.status)
        if run.status in ("stopped", "failed"):
            return run.status
        run.status = "stopping"
        run.stop.set()
        self._wake.set()
        return run.status

    async def wait(self, sid: str, timeout: float | None = None) -> str:
        """Wait for a session to end (stopped or failed); returns its final status."""
        run = self.runs[sid]
        await asyncio.wait_for(run.done.wait(), timeout)
        return run.status

    async def resume_all(self) -> list[str]:
        """Drive again every session the store shows as active (after a restart)."""
        records = await self.c.state.list_sessions.remote(set(ACTIVE))
        for record in records:
            if record.id in self.runs:
                continue
            try:
                config = SessionConfig.model_validate(record.config)
            except ValueError as exc:
                # A live session on a server started without the opt-in: left active in the
                # store, not driven (it resumes on a start with the opt-in).
                log.error("session not resumed", session_id=record.id, error=str(exc))
                continue
            run = SessionRun(record.id, config)
            if record.status == "stopping":
                run.stop.set()
            self._launch(run)
            log.info("session resumed", session_id=record.id)
        return [r.id for r in records]

    async def shutdown(self) -> None:
        """Stop driving (the sessions stay active in the store and resume on the next start)."""
        tasks = [t for t in (self._loop, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop = None

    def _launch(self, run: SessionRun) -> None:
        self.runs[run.id] = run
        metrics.ACTIVE_SESSIONS.inc()
        self._spawn(self._open(run))
        if self._loop is None or self._loop.done():
            self._loop = asyncio.create_task(self._tick_loop(), name="sessions-tick-loop")

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---- opening, closing, failing -----------------------------------------------------------

    async def _open(self, run: SessionRun) -> None:
        """Load the components for ``run`` (from its checkpoint) and let it tick."""
        structlog.contextvars.bind_contextvars(session_id=run.id)
        try:
            async with run.lock:
                await self._load_retrying(run)
            if run.kill.halted and run.status != "halted" and not run.stop.is_set():
                # Halted in the checkpoint (a restart): halted it stays until resumed.
                run.status, run.reason = "halted", run.kill.reason
                await self.c.state.set_status.remote(run.id, "halted", run.reason)
                await self._event(run, {"type": "status", "status": "halted", "reason": run.reason})
                log.warning("session halted", reason=run.reason, bars_done=run.last_bar + 1)
            elif run.status == "starting" or (run.status == "halted" and not run.kill.halted):
                run.status, run.reason = "running", ""
                await self.c.state.set_status.remote(run.id, "running")
                await self._event(run, {"type": "status", "status": "running"})
                log.info("session running", bars_done=run.last_bar + 1)
            self._ticking.add(run.id)
            self._wake.set()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail(run, exc)

    async def _load_retrying(self, run: SessionRun) -> None:
        for attempt in range(50):
            try:
                await self._load(run)
                return
            except Exception as exc:
                if not _is_component_failure(exc) or attempt == 49:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))  # an actor is restarting

    async def _close(self, run: SessionRun, reason: str) -> None:
        self._ticking.discard(run.id)
        try:
            async with run.lock:
                await self._finish(run, reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._fail(run, exc)

    async def _fail(self, run: SessionRun, exc: BaseException) -> None:
        self._ticking.discard(run.id)
        run.status, run.reason = "failed", f"{type(exc).__name__}: {exc}"
        log.error("session failed", session_id=run.id, error=run.reason)
        try:
            await self.c.state.set_status.remote(run.id, "failed", run.reason)
            await self._event(run, {"type": "status", "status": "failed", "reason": run.reason})
        except Exception:
            log.exception("could not record the failure")
        self._ended(run)

    def _ended(self, run: SessionRun) -> None:
        if not run.done.is_set():
            run.done.set()
            metrics.ACTIVE_SESSIONS.dec()

    async def _load(self, run: SessionRun) -> None:
        """Load every component from the checkpoint; rebuild the driver's own view."""
        sid = run.id
        c = self.c
        await asyncio.gather(
            c.data.load.remote(sid),
            c.strategy.load.remote(sid),
            c.portfolio.load.remote(sid),
            c.risk.load.remote(sid),
            c.execution.load.remote(sid),
        )
        cp = await c.state.load_snapshot.remote(sid, "checkpoint")
        run.last_bar = cp["bar"] if cp else -1
        run.pending = [(k, from_dict(Signal, s)) for k, s in (cp["pending"] if cp else [])]
        run.book = cp.get("book") if cp else None
        if run.config.mode == "live":  # with the fills reconciliation booked on load
            run.book = await c.execution.snapshot.remote(sid)
        run.last_close = dict(run.book["last_close"]) if run.book else {}
        if run.book:
            ledger = Ledger.from_snapshot(run.book["ledger"])
            positions = {s: p.quantity for s, p in ledger.positions().items()}
            run.account = AccountSnapshot(ledger.cash, 0.0, positions)
        else:
            run.account = AccountSnapshot(run.config.initial_cash, run.config.initial_cash, {})
        run.symbols = tuple(cp["symbols"]) if cp else ()
        if not run.symbols:
            run.symbols = tuple(await c.execution.symbols.remote(sid))
        run.restore_risk(cp.get("risk") if cp else None)
        run.targets = {}
        note_targets(
            run.targets, ((k, from_dict(Signal, sg)) for k, sg in (cp or {}).get("targets", []))
        )
        prev = (cp.get("prev_ts") or cp.get("ts")) if cp else None
        run.prev_ts = pd.Timestamp(prev).to_pydatetime() if prev else None
        run.set_schedule(await c.state.get_record.remote(SCHEDULES, sid))
        run.open_orders = {}
        if run.config.mode == "live":
            # The live broker's journal, reconciled with the exchange, is the truth.
            run.track_orders([st for st in await c.execution.orders.remote(sid) if st.is_open])
        elif run.book:
            broker = PaperBroker(run.config.broker)
            broker.restore(run.book["broker"])
            # Held bracket children too: they count as open until their entry settles them.
            run.track_orders([*broker.open_orders(), *broker.held_orders()])
        journal = await c.state.read_journal.remote(sid, "order")
        run.journaled = {
            f"{e.key}|{e.payload['status']}|{e.payload['filled_quantity']!r}"
            f"|{float(e.payload['order']['quantity'])!r}"
            for e in journal
        }
        run.orders = sum(1 for e in journal if e.payload["status"] == OrderStatus.NEW.value)
        run.fills = len(await c.state.read_journal.remote(sid, "fill"))
        events = await c.state.read_events.remote(sid, None, 10_000_000, None)
        for _, ev in events:
            if ev.get("type") == "equity":
                run.equity[int(ev["bar"])] = (pd.Timestamp(ev["ts"]).to_pydatetime(), ev["equity"])
        run.since_checkpoint = 0

    # ---- the tick loop -----------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        """Drive every ticking session: one batched call per component per tick.

        Ray costs about a millisecond per actor call whatever it carries, so the bars of all
        sessions that are due are handled together; under load the batches grow by themselves.
        """
        while True:
            for sid in list(self._ticking):
                run = self.runs[sid]
                if run.stop.is_set():
                    self._ticking.discard(sid)
                    self._spawn(self._close(run, "stopped on request"))
            if not self._ticking:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._wake.clear()
            try:
                due = await self.c.data.due.remote(sorted(self._ticking), TICK_WAIT)
            except Exception as exc:
                if not _is_component_failure(exc):
                    raise
                self._reload_all(exc)
                continue
            batch: list[tuple[SessionRun, BarSlice]] = []
            for sid, item in due:
                run = self.runs[sid]
                if isinstance(item, SessionNotLoaded):
                    self._reload(run, item)
                elif isinstance(item, BaseException):
                    self._ticking.discard(sid)
                    self._spawn(self._fail(run, item))
                elif item is None:
                    self._ticking.discard(sid)
                    self._spawn(self._close(run, "feed ended"))
                elif sid in self._ticking and not run.stop.is_set():
                    batch.append((run, item))
            if batch:
                try:
                    await self._tick(batch)
                except Exception as exc:
                    if not _is_component_failure(exc):
                        log.exception("tick failed")
                        for run, _ in batch:
                            await self._fail(run, exc)
                        continue
                    self._reload_all(exc)

    def _reload(self, run: SessionRun, exc: BaseException) -> None:
        """Reload one session from its checkpoint, then let it tick again (replaying)."""
        if run.id not in self._ticking:
            return
        self._ticking.discard(run.id)
        run.recoveries += 1
        metrics.RECOVERIES.inc()
        log.warning("component lost the session; reloading", session_id=run.id, error=str(exc))
        self._spawn(self._open(run))

    def _reload_all(self, exc: BaseException) -> None:
        for sid in list(self._ticking):
            self._reload(self.runs[sid], exc)

    async def _tick(self, batch: list[tuple[SessionRun, BarSlice]]) -> None:
        c = self.c
        t0 = time.perf_counter()
        for run, _ in sorted(batch, key=lambda b: b[0].id):
            await run.lock.acquire()
        try:
            work = {run.id: _BarWork(run, item) for run, item in batch}
            # 1. At the open: pending signals -> orders -> risk -> journal (before sending).
            planning = [w for w in work.values() if w.run.pending]
            if planning:
                for w in planning:
                    w.prices = {
                        s: w.bars[s][0] if s in w.bars else w.run.last_close.get(s, math.nan)
                        for s in w.run.symbols
                    }
                    # The account cannot change between the last close and this open.
                    w.account = marked_account(
                        w.run.account.cash, w.run.account.positions, w.prices
                    )
                plans = await c.portfolio.plan_many.remote(
                    [
                        (
                            w.run.id,
                            w.item.index,
                            w.ts,
                            w.prices,
                            w.account,
                            w.run.pending,
                            # With capital weights the planner nets the agents' latest targets.
                            w.run.targets if w.run.config.portfolio.capital else None,
                        )
                        for w in planning
                    ]
                )
                planning = self._drop_lost(work, planning, plans, "plan")
                checks = await c.risk.check_many.remote(
                    [
                        (
                            w.run.id,
                            list(w.orders),
                            w.account,
                            w.prices,
                            w.run.risk_context(w.ts, tuple(w.cancel)),
                        )
                        for w in planning
                    ]
                )
                planning = self._drop_lost(work, planning, checks, "check")
                sent: list[tuple[str, list[JournalEntry], list[dict[str, Any]], None]] = []
                for w in planning:
                    passed, refused = w.check
                    # An entry that passed takes its exits along (they only reduce it).
                    exits = w.plan.exits if w.plan is not None else {}
                    w.passed = [x for o in passed for x in (o, *exits.get(o.client_order_id, ()))]
                    entries = self._journal_states(w.run, [OrderState(o) for o in w.passed])
                    rejected = [
                        OrderState(o).to(OrderStatus.REJECTED, w.ts, why) for o, why in refused
                    ]
                    entries.extend(self._journal_states(w.run, rejected))
                    if entries:
                        sent.append((w.run.id, entries, [], None))
                    w.events.extend(
                        {"type": "risk", "order": to_dict(o), "reason": why} for o, why in refused
                    )
                    metrics.ORDERS.inc(len(w.passed))
                    metrics.REJECTED.inc(len(refused))
                    w.run.orders += len(w.passed)
                    w.run.note_sent(w.ts, len(passed))  # exits wait for their entry's fill
                    w.run.pending = []
                if sent:
                    await c.state.commit_many.remote(sent)
            # 2. The bar: submit, match, book.
            order_time = time.perf_counter() - t0
            steps = await c.execution.step_many.remote(
                [
                    (
                        w.run.id,
                        w.ts,
                        w.bars,
                        w.cancel,
                        w.passed,
                    )
                    for w in work.values()
                ]
            )
            live = self._drop_lost(work, list(work.values()), steps, "step")
            fill_time = time.perf_counter() - t0
            # 3. At the close: the agents decide.
            decisions = await c.strategy.decide_many.remote(
                [(w.run.id, w.ts, w.bars, w.step[3]) for w in live]
            )
            live = self._drop_lost(work, live, decisions, "decision")
            commits = [self._conclude(w, order_time, fill_time) for w in live]
            await c.state.commit_many.remote(commits)
            metrics.BARS.inc(len(live))
            for w in live:
                if w.tripped:
                    await self._halt(w)
        finally:
            for run, _ in batch:
                run.lock.release()

    def _drop_lost(
        self, work: dict[str, _BarWork], todo: list[_BarWork], results: list[Any], attr: str
    ) -> list[_BarWork]:
        """Attach each result to its session's work; sessions whose component lost them reload."""
        kept = []
        for w, result in zip(todo, results, strict=True):
            if isinstance(result, SessionNotLoaded):
                work.pop(w.run.id, None)
                self._reload(w.run, result)
                continue
            if isinstance(result, BaseException):
                raise result
            setattr(w, attr, result)
            kept.append(w)
        return kept

    def _conclude(
        self, w: _BarWork, order_time: float, fill_time: float
    ) -> tuple[str, list[JournalEntry], list[dict[str, Any]], dict[str, Any] | None]:
        """Book one session's bar in the driver's view; what the store must persist."""
        run = w.run
        fills, changes, equity, account_close, book, paused = w.step
        signals, agent_state = w.decision
        if w.passed:
            metrics.BAR_TO_ORDER.observe(order_time)
        if fills:
            metrics.BAR_TO_FILL.observe(fill_time)
            metrics.FILLS.inc(len(fills))
            run.fills += len(fills)
        run.account = account_close
        run.track_orders(changes)
        journal = self._journal_states(run, changes)
        journal.extend(self._fill_entry(f) for f in fills)
        for symbol, bar in w.bars.items():
            run.last_close[symbol] = bar[3]
        limits = run.config.portfolio.limits
        if limits.needs_returns:
            run.closes.append([_finite(run.last_close.get(s)) for s in run.symbols])
            del run.closes[: -(limits.risk_lookback + 1)]
        if run.config.portfolio.kill_switch is not None or limits.daily_loss_limit is not None:
            w.tripped = run.kill.update(w.ts, equity)
        if paused and not run.kill.halted:
            # The live broker gave up (retries ran out, or the account was refused): the
            # session halts with the reason rather than sending orders into the void.
            w.paused = w.tripped = run.kill.reason = f"broker paused: {paused}"
        i = w.item.index
        prev, run.prev_ts = run.prev_ts, w.ts
        note_targets(run.targets, signals)
        run.pending = list(signals)
        events = w.events
        events.extend({"type": "order", **state_to_dict(st)} for st in changes)
        events.extend({"type": "fill", **to_dict(f)} for f in fills)
        events.extend({"type": "signal", "agent": k, **to_dict(sg)} for k, sg in signals)
        scheduled = run.schedule is not None and run.schedule.due(prev, w.ts)
        if scheduled:
            assert run.schedule is not None
            run.pending = run.scheduled_rebalance(w.ts, run.pending)
            queued = run.pending if run.schedule_targets is None else run.pending[len(signals) :]
            events.append(
                {
                    "type": "rebalance",
                    "trigger": "schedule",
                    "bar": i,
                    "ts": w.ts.isoformat(),
                    "schedule": run.schedule.model_dump(mode="json"),
                    "targets": run.schedule_targets,
                    "signals": [{"agent": k, **to_dict(sg)} for k, sg in queued],
                }
            )
        events.append(
            {
                "type": "equity",
                "bar": i,
                "ts": w.ts.isoformat(),
                "equity": equity,
                "cash": account_close.cash,
            }
        )
        run.equity[i] = (w.ts, equity)
        run.last_bar = i
        run.since_checkpoint += 1
        checkpoint = None
        if book is not None:
            run.book = book
        if w.tripped:
            pass  # the halt writes the checkpoint, once its orders are cancelled
        elif book is not None or run.pending or run.since_checkpoint >= CHECKPOINT_EVERY:
            checkpoint = checkpoint_of(run, w.ts, agent_state, run.book)
            run.since_checkpoint = 0
        return run.id, journal, events, checkpoint

    async def _halt(self, w: _BarWork) -> None:
        """The kill switch tripped at this bar's close: cancel the open orders, flatten if
        configured (market orders for the next open, journaled before they are sent), mark
        the session halted; the checkpoint then holds the halt."""
        run, c, ts, why = w.run, self.c, w.ts, w.tripped
        config = run.config.portfolio.kill_switch
        flatten = config is not None and config.flatten and not w.paused
        orders = []
        if flatten:
            prefix = f"{run.id}-halt-{w.item.index}"
            orders = flatten_orders(run.account.positions, run.symbols, prefix, ts)
            sent = self._journal_states(run, [OrderState(o) for o in orders])
            if sent:
                await c.state.commit.remote(run.id, sent, [], None)
        changes, book = await c.execution.halt.remote(run.id, ts, f"halted: {why}", orders)
        run.track_orders(changes)
        run.orders += len(orders)
        metrics.ORDERS.inc(len(orders))
        run.book = book
        cancelled = sum(1 for st in changes if st.status is OrderStatus.CANCELLED)
        events: list[dict[str, Any]] = [{"type": "order", **state_to_dict(st)} for st in changes]
        events.append(
            {
                "type": "risk",
                "action": "halt",
                "reason": why,
                "bar": w.item.index,
                "ts": ts.isoformat(),
                "equity": run.kill.last_equity,
                "high_water": run.kill.high_water,
                "cancelled": cancelled,
                "flatten": [to_dict(o) for o in orders],
            }
        )
        events.append({"type": "status", "status": "halted", "reason": why})
        checkpoint = checkpoint_of(run, ts, w.decision[1], book)
        await c.state.commit.remote(run.id, self._journal_states(run, changes), events, checkpoint)
        run.since_checkpoint = 0
        if not run.stop.is_set():  # a stop on its way wins: the session ends anyway
            run.status, run.reason = "halted", why
            await c.state.set_status.remote(run.id, "halted", why)
        metrics.HALTS.inc()
        log.warning("session halted", session_id=run.id, reason=why, bar=w.item.index)

    async def resume(self, sid: str) -> str:
        """Resume a halted session: orders pass again, and the kill switch's limits count
        from the equity now (404 unknown session, 409 not halted)."""
        run = self.runs.get(sid)
        if run is None:
            record = await self.record(sid)  # 404 when unknown
            raise SessionError(f"session {sid!r} is {record.status}, not halted on this server")
        async with run.lock:
            if run.status != "halted" or run.stop.is_set():
                raise SessionError(f"session {sid!r} is {run.status}, not halted")
            c, why = self.c, run.reason
            try:
                agents = await c.strategy.state.remote(sid)
                book = await c.execution.snapshot.remote(sid)
            except Exception as exc:
                if _is_component_failure(exc):
                    raise SessionError(
                        f"session {sid!r} is reloading after a component failure; retry", 503
                    ) from exc
                raise
            halted = run.kill.state()
            run.kill.resume()
            await c.execution.resume.remote(sid)  # a paused live broker sends orders again
            last = run.equity.get(run.last_bar)
            checkpoint = checkpoint_of(run, last[0] if last else None, agents, book)
            event = {"type": "status", "status": "running", "reason": f"resumed after: {why}"}
            try:
                await c.state.commit.remote(sid, [], [event], checkpoint)
            except BaseException:
                run.kill.restore(halted)  # still halted: nothing was stored
                raise
            run.book, run.since_checkpoint = book, 0
            run.status, run.reason = "running", ""
            await c.state.set_status.remote(sid, "running", "")
            log.info("session resumed", session_id=sid, after=why)
            return run.status

    def _journal_states(self, run: SessionRun, states: list[OrderState]) -> list[JournalEntry]:
        out = []
        for st in states:
            key = _order_key(st)
            if key in run.journaled:
                continue  # a replayed bar: already in the journal
            run.journaled.add(key)
            ts = st.updated or st.order.ts
            out.append(JournalEntry("order", st.order.client_order_id, ts, state_to_dict(st)))
        return out

    @staticmethod
    def _fill_entry(fill: Fill) -> JournalEntry:
        return JournalEntry("fill", fill.fill_id, fill.ts, to_dict(fill))

    async def _finish(self, run: SessionRun, reason: str) -> None:
        """Cancel open orders, persist the final ledger, mark the session stopped."""
        c, sid = self.c, run.id
        run.status = "stopping"
        await c.state.set_status.remote(sid, "stopping", reason)
        now = datetime.now(UTC)
        cancelled, fills = await c.execution.stop.remote(sid, now)
        last = run.equity.get(run.last_bar)
        run.pending = []
        book = await c.execution.snapshot.remote(sid)
        final = checkpoint_of(run, last[0] if last else None, None, book)
        events = [{"type": "order", **state_to_dict(st)} for st in cancelled]
        events.extend({"type": "fill", **to_dict(f)} for f in fills)
        events.append({"type": "status", "status": "stopped", "reason": reason})
        journal = self._journal_states(run, cancelled) + [self._fill_entry(f) for f in fills]
        run.fills += len(fills)
        await c.state.commit.remote(sid, journal, events, final)
        for name in ("data", "strategy", "portfolio", "risk", "execution"):
            await getattr(c, name).drop.remote(sid)
        run.status, run.reason = "stopped", reason
        await c.state.set_status.remote(sid, "stopped", reason)
        log.info(
            "session stopped", session_id=sid, reason=reason, bars=run.last_bar + 1, fills=run.fills
        )
        self._ended(run)

    async def _event(self, run: SessionRun, event: dict[str, Any]) -> None:
        await self.c.state.commit.remote(run.id, [], [event], None)

    # ---- reads -------------------------------------------------------------------------------

    async def record(self, sid: str) -> SessionRecord:
        record: SessionRecord | None = await self.c.state.get_session.remote(sid)
        if record is None:
            raise SessionError(f"unknown session {sid!r}", 404)
        return record

    async def summary(self, sid: str) -> dict[str, Any]:
        record = await self.record(sid)
        out: dict[str, Any] = {
            "id": sid,
            "name": record.name,
            "status": record.status,
            "reason": record.reason,
            "created": record.created.isoformat(),
            "updated": record.updated.isoformat(),
            "mode": record.config.get("mode", "paper"),
        }
        run = self.runs.get(sid)
        if run is not None:
            out.update(self.live_summary(run))
        return out

    @staticmethod
    def live_summary(run: SessionRun) -> dict[str, Any]:
        """What the driver knows of a session right now (no store round trip)."""
        last = run.equity.get(run.last_bar)
        return {
            "id": run.id,
            "name": run.config.name,
            "status": run.status,
            "reason": run.reason,
            "bars": run.last_bar + 1,
            "fills": run.fills,
            "orders": run.orders,
            "equity": last[1] if last else run.config.initial_cash,
            "recoveries": run.recoveries,
        }

    def equity_series(self, sid: str) -> pd.Series:
        run = self.runs.get(sid)
        if run is None or not run.equity:
            return pd.Series(dtype=float, name="equity")
        bars = sorted(run.equity)
        return pd.Series(
            [run.equity[b][1] for b in bars],
            index=pd.DatetimeIndex([run.equity[b][0] for b in bars], tz="UTC"),
            name="equity",
        )

    async def ledger(self, sid: str) -> Ledger | None:
        cp = await self.c.state.load_snapshot.remote(sid, "checkpoint")
        if not cp or not cp.get("book"):
            return None
        return Ledger.from_snapshot(cp["book"]["ledger"])

    async def performance(self, sid: str) -> dict[str, Any]:
        await self.record(sid)
        equity = self.equity_series(sid)
        if len(equity) < 2:
            return {"id": sid, "bars": len(equity), "metrics": None}
        ledger = await self.ledger(sid)
        trades = ledger.trades if ledger else []
        m = compute_metrics(
            equity, trades, periods_per_year=periods_per_year(pd.DatetimeIndex(equity.index))
        )
        return {"id": sid, "bars": len(equity), "metrics": m.model_dump(mode="json")}

    async def orders(self, sid: str) -> list[dict[str, Any]]:
        """Latest state of every order of the session, from the journal."""
        await self.record(sid)
        latest: dict[str, dict[str, Any]] = {}
        for entry in await self.c.state.read_journal.remote(sid, "order"):
            latest[entry.key] = entry.payload
        return list(latest.values())

    async def fills(self, sid: str) -> list[dict[str, Any]]:
        await self.record(sid)
        return [e.payload for e in await self.c.state.read_journal.remote(sid, "fill")]

    async def positions(self, sid: str) -> dict[str, Any]:
        await self.record(sid)
        run = self.runs.get(sid)
        if run is not None and run.status in LIVE:
            try:
                positions: dict[str, Any] = await self.c.execution.positions.remote(sid)
                return positions
            except Exception:  # reloading right now: fall back to the checkpoint
                pass
        ledger = await self.ledger(sid)
        if ledger is None:
            return {}
        return {
            s: {"quantity": p.quantity, "avg_cost": p.avg_cost, "last": None}
            for s, p in ledger.positions().items()
        }

    async def read_events(
        self, sid: str, after: str | None, limit: int, block_ms: int | None
    ) -> list[tuple[str, dict[str, Any]]]:
        events: list[tuple[str, dict[str, Any]]] = await self.c.state.read_events.remote(
            sid, after, limit, block_ms
        )
        return events

    async def health(self, timeout: float = 2.0) -> dict[str, str]:
        """``ok`` or the error of each component actor (a ping with a timeout)."""

        async def ping(handle: Any) -> str:
            try:
                return str(await asyncio.wait_for(handle.ping.remote(), timeout))
            except Exception as exc:
                return f"error: {type(exc).__name__}"

        names = list(self.c.handles())
        results = await asyncio.gather(*(ping(h) for h in self.c.handles().values()))
        return dict(zip(names, results, strict=True))

    def active(self) -> list[str]:
        return [r.id for r in self.runs.values() if r.status in ACTIVE]
