"""Session life cycle and the per-bar pipeline across the component actors.

One asyncio task per session drives its bars: data -> (at the open) portfolio -> risk ->
journal -> execution -> (the bar) execution -> strategy -> store. A bar's outcome depends only
on the last checkpoint and the bar, so after any component failure the driver reloads every
component from the checkpoint and replays: client order ids repeat, and the journal skips what
it already holds, so no order is sent or booked twice.
"""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import structlog
from ray.exceptions import RayActorError, RayTaskError

from raytrader.data.feeds import BarSlice
from raytrader.agents.host import AccountSnapshot
from raytrader.domain import Fill, Order, OrderState, OrderStatus, Signal
from raytrader.domain.codec import from_dict, state_to_dict, to_dict
from raytrader.orchestrator import metrics
from raytrader.orchestrator.actors import SessionNotLoaded
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.runtime import Components
from raytrader.portfolio.planner import marked_account
from raytrader.state.ledger import Ledger
from raytrader.state.metrics import compute_metrics, periods_per_year
from raytrader.state.stores.base import JournalEntry, SessionRecord

log = structlog.get_logger("raytrader.sessions")

ACTIVE = ("starting", "running", "stopping")
CHECKPOINT_EVERY = 50  # bars; bounds the replay after a crash when nothing else changes


class SessionError(Exception):
    """A request about a session that cannot be served (unknown id, wrong state)."""

    def __init__(self, message: str, status_code: int = 409) -> None:
        super().__init__(message)
        self.status_code = status_code


def _order_key(state: OrderState) -> str:
    return f"{state.order.client_order_id}|{state.status.value}|{state.filled_quantity!r}"


@dataclass
class SessionRun:
    """What the driver keeps in memory about one session."""

    id: str
    config: SessionConfig
    status: str = "starting"
    reason: str = ""
    task: asyncio.Task[None] | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
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


def _is_component_failure(exc: BaseException) -> bool:
    if isinstance(exc, SessionNotLoaded | RayActorError):
        return True
    return isinstance(exc, RayTaskError) and isinstance(exc.cause, SessionNotLoaded)


class SessionManager:
    """Starts, drives, stops and resumes sessions."""

    def __init__(self, components: Components) -> None:
        self.c = components
        self.runs: dict[str, SessionRun] = {}

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
        return run.status

    async def wait(self, sid: str, timeout: float | None = None) -> str:
        """Wait for a session's driver to end; returns its final status."""
        run = self.runs[sid]
        if run.task is not None:
            await asyncio.wait_for(asyncio.shield(run.task), timeout)
        return run.status

    async def resume_all(self) -> list[str]:
        """Drive again every session the store shows as active (after a restart)."""
        records = await self.c.state.list_sessions.remote(set(ACTIVE))
        for record in records:
            if record.id in self.runs:
                continue
            run = SessionRun(record.id, SessionConfig.model_validate(record.config))
            if record.status == "stopping":
                run.stop.set()
            self._launch(run)
            log.info("session resumed", session_id=record.id)
        return [r.id for r in records]

    async def shutdown(self) -> None:
        """Stop driving (the sessions stay active in the store and resume on the next start)."""
        for run in self.runs.values():
            if run.task is not None and not run.task.done():
                run.task.cancel()
        await asyncio.gather(
            *(r.task for r in self.runs.values() if r.task is not None), return_exceptions=True
        )

    def _launch(self, run: SessionRun) -> None:
        self.runs[run.id] = run
        run.task = asyncio.create_task(self._drive(run), name=f"session-{run.id}")
        metrics.ACTIVE_SESSIONS.inc()

    # ---- the driver --------------------------------------------------------------------------

    async def _drive(self, run: SessionRun) -> None:
        structlog.contextvars.bind_contextvars(session_id=run.id)
        reason = ""
        try:
            await self._load(run)
            if not run.stop.is_set():
                run.status = "running"
                await self.c.state.set_status.remote(run.id, "running")
                await self._event(run, {"type": "status", "status": "running"})
                log.info("session running", bars_done=run.last_bar + 1)
            while not run.stop.is_set():
                try:
                    item = await self._next_bar(run)
                    if item is None:
                        if not run.stop.is_set():
                            reason = "feed ended"
                        break
                    async with run.lock:
                        await self._step(run, item)
                except Exception as exc:
                    if not _is_component_failure(exc):
                        raise
                    async with run.lock:
                        await self._recover(run, exc)
            async with run.lock:
                await self._finish(run, reason or "stopped on request")
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            run.status, run.reason = "failed", f"{type(exc).__name__}: {exc}"
            log.exception("session failed")
            try:
                await self.c.state.set_status.remote(run.id, "failed", run.reason)
                await self._event(run, {"type": "status", "status": "failed", "reason": run.reason})
            except Exception:
                log.exception("could not record the failure")
        finally:
            metrics.ACTIVE_SESSIONS.dec()
            structlog.contextvars.unbind_contextvars("session_id")

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
        journal = await c.state.read_journal.remote(sid, "order")
        run.journaled = {
            f"{e.key}|{e.payload['status']}|{e.payload['filled_quantity']!r}" for e in journal
        }
        run.orders = sum(1 for e in journal if e.payload["status"] == OrderStatus.NEW.value)
        run.fills = len(await c.state.read_journal.remote(sid, "fill"))
        events = await c.state.read_events.remote(sid, None, 10_000_000, None)
        for _, ev in events:
            if ev.get("type") == "equity":
                run.equity[int(ev["bar"])] = (pd.Timestamp(ev["ts"]).to_pydatetime(), ev["equity"])
        run.since_checkpoint = 0

    async def _recover(self, run: SessionRun, exc: BaseException) -> None:
        run.recoveries += 1
        metrics.RECOVERIES.inc()
        log.warning("component failure, reloading from the checkpoint", error=str(exc))
        for attempt in range(50):
            try:
                await self._load(run)
                return
            except Exception as again:
                if not _is_component_failure(again) or attempt == 49:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))

    async def _next_bar(self, run: SessionRun) -> BarSlice | None:
        fetch = asyncio.ensure_future(self.c.data.next.remote(run.id))
        stop = asyncio.ensure_future(run.stop.wait())
        done, _ = await asyncio.wait({fetch, stop}, return_when=asyncio.FIRST_COMPLETED)
        if fetch in done:
            stop.cancel()
            result: BarSlice | None = fetch.result()
            return result
        fetch.cancel()
        return None

    async def _step(self, run: SessionRun, item: BarSlice) -> None:
        c, sid = self.c, run.id
        t0 = time.perf_counter()
        i, ts, bars = item.index, item.ts, item.bars
        journal: list[JournalEntry] = []
        events: list[dict[str, Any]] = []
        cancel: list[str] = []
        passed: list[Order] = []
        if run.pending:
            prices = {
                s: bars[s][0] if s in bars else run.last_close.get(s, math.nan) for s in run.symbols
            }
            # The account cannot change between the last close and this open.
            account = marked_account(run.account.cash, run.account.positions, prices)
            plan = await c.portfolio.plan.remote(sid, i, ts, prices, account, run.pending)
            passed, refused = await c.risk.check.remote(sid, list(plan.orders), account, prices)
            sent: list[JournalEntry] = []
            for order in passed:
                sent.extend(self._journal_states(run, [OrderState(order)]))
            rejected = [OrderState(o).to(OrderStatus.REJECTED, ts, why) for o, why in refused]
            sent.extend(self._journal_states(run, rejected))
            # Journaled before it is sent: a crash after this line cannot lose the order.
            if sent:
                await c.state.commit.remote(sid, sent, [], None)
            cancel = list(plan.cancel_symbols)
            metrics.ORDERS.inc(len(passed))
            metrics.REJECTED.inc(len(refused))
            run.orders += len(passed)
            events.extend(
                {"type": "risk", "order": to_dict(o), "reason": why} for o, why in refused
            )
            run.pending = []
        fills, changes, equity, account_close, book = await c.execution.step.remote(
            sid, ts, bars, cancel, passed
        )
        if passed:
            metrics.BAR_TO_ORDER.observe(time.perf_counter() - t0)
        if fills:
            metrics.BAR_TO_FILL.observe(time.perf_counter() - t0)
            metrics.FILLS.inc(len(fills))
            run.fills += len(fills)
        run.account = account_close
        journal.extend(self._journal_states(run, changes))
        journal.extend(self._fill_entry(f) for f in fills)
        for symbol, bar in bars.items():
            run.last_close[symbol] = bar[3]
        signals, agent_state = await c.strategy.decide.remote(sid, ts, bars, account_close)
        run.pending = list(signals)
        events.extend({"type": "order", **state_to_dict(st)} for st in changes)
        events.extend({"type": "fill", **to_dict(f)} for f in fills)
        events.extend({"type": "signal", "agent": k, **to_dict(s)} for k, s in signals)
        events.append(
            {
                "type": "equity",
                "bar": i,
                "ts": ts.isoformat(),
                "equity": equity,
                "cash": account_close.cash,
            }
        )
        run.equity[i] = (ts, equity)
        run.last_bar = i
        run.since_checkpoint += 1
        checkpoint = None
        if book is not None:
            run.book = book
        if book is not None or signals or run.since_checkpoint >= CHECKPOINT_EVERY:
            checkpoint = {
                "bar": i,
                "symbols": list(run.symbols),
                "pending": [(k, to_dict(s)) for k, s in run.pending],
                "agents": agent_state,
                "book": run.book,
            }
            run.since_checkpoint = 0
        await c.state.commit.remote(sid, journal, events, checkpoint)
        metrics.BARS.inc()

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
        cancelled = await c.execution.stop.remote(sid, now)
        final = {
            "bar": run.last_bar,
            "symbols": list(run.symbols),
            "pending": [],
            "agents": None,
            "book": await c.execution.snapshot.remote(sid),
        }
        events = [{"type": "order", **state_to_dict(st)} for st in cancelled]
        events.append({"type": "status", "status": "stopped", "reason": reason})
        await c.state.commit.remote(sid, self._journal_states(run, cancelled), events, final)
        for name in ("data", "strategy", "portfolio", "risk", "execution"):
            await getattr(c, name).drop.remote(sid)
        run.status, run.reason = "stopped", reason
        await c.state.set_status.remote(sid, "stopped", reason)
        log.info("session stopped", reason=reason, bars=run.last_bar + 1, fills=run.fills)

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
        if run is not None and run.status == "running":
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
