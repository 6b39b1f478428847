"""Acting on a running session from outside its driver: manual orders, cancels, rebalances.

Every action holds the session's lock, so it lands between two bars and never inside a bar's
step. A manual order goes the way the driver's orders go: pre-trade risk, then the journal,
then the broker; a fresh checkpoint then records the book, so a component restart neither
loses the order nor sends it twice (client order ids are idempotent). The session's clock is
the timestamp of its last bar: a manual order placed now meets the market at the next bar.
A halted session (its kill switch tripped) takes requests too, but refuses every order with
the halt's reason, as its driver does. A new rebalance schedule lands between two bars too: the
driver acts on it from the next bar, and a checkpoint at the change makes a replay after a
restart use the old schedule before the change and the new one after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ray.exceptions import RayActorError, RayTaskError

from raytrader.domain import (
    Order,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
    Signal,
    TimeInForce,
)
from raytrader.domain.bracket import bracket
from raytrader.domain.codec import state_from_dict, to_dict
from raytrader.orchestrator import metrics
from raytrader.orchestrator.actors import SessionNotLoaded
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.sessions import (
    LIVE,
    SCHEDULES,
    SessionError,
    SessionManager,
    SessionRun,
    checkpoint_of,
    target_signals,
)
from raytrader.portfolio.planner import marked_account
from raytrader.portfolio.rebalancer import AccountView
from raytrader.portfolio.schedule import RebalanceSchedule
from raytrader.state.ledger import Ledger

# Client order ids the session's own planner hands out start with the session id.
RESERVED_ID_PREFIX = "s-"


class FieldError(ValueError):
    """A request field that does not fit the session (an unknown symbol, say): a 422."""

    def __init__(self, loc: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.loc = tuple(loc)
        self.message = message


@dataclass(frozen=True, slots=True)
class ManualOrder:
    """An order a client places on a session, before the session's clock stamps it."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    tag: str = "manual"

    def same_as(self, order: Order) -> bool:
        return (
            order.symbol == self.symbol
            and order.side is self.side
            and order.quantity == self.quantity
            and order.type is self.type
            and order.limit_price == self.limit_price
            and order.stop_price == self.stop_price
            and order.time_in_force is self.time_in_force
        )


@dataclass(frozen=True, slots=True)
class Holding:
    symbol: str
    quantity: float
    avg_cost: float
    realized_pnl: float
    last_price: float | None


@dataclass(frozen=True, slots=True)
class Portfolio:
    """A session's account: cash, holdings marked at their last close, exposures."""

    session_id: str
    source: str  # "live" (the running book) or "checkpoint" (the last one stored)
    as_of: datetime | None
    cash: float
    holdings: list[Holding] = field(default_factory=list)
    last_close: dict[str, float] = field(default_factory=dict)

    def mark(self, h: Holding) -> float:
        """The price a holding is valued at: its last close, else its average cost."""
        return h.last_price if h.last_price is not None else h.avg_cost

    @property
    def market_value(self) -> float:
        return sum(h.quantity * self.mark(h) for h in self.holdings)

    @property
    def gross_exposure(self) -> float:
        return sum(abs(h.quantity * self.mark(h)) for h in self.holdings)

    @property
    def equity(self) -> float:
        return self.cash + self.market_value

    def account(self) -> AccountView:
        positions = {h.symbol: h.quantity for h in self.holdings}
        return AccountView(self.cash, self.equity, positions, self.gross_exposure)


def _is_component_failure(exc: BaseException) -> bool:
    if isinstance(exc, SessionNotLoaded | RayActorError):
        return True
    return isinstance(exc, RayTaskError) and isinstance(exc.cause, SessionNotLoaded)


async def running(mgr: SessionManager, sid: str) -> SessionRun:
    """The run of a session this server drives and that is running (or halted); 404 or 409
    otherwise."""
    run = mgr.runs.get(sid)
    if run is None:
        record = await mgr.record(sid)  # 404 when unknown
        raise SessionError(f"session {sid!r} is {record.status}, not running on this server")
    if run.status not in LIVE or run.stop.is_set():
        raise SessionError(f"session {sid!r} is {run.status}, not running")
    return run


@asynccontextmanager
async def acting_on(mgr: SessionManager, sid: str) -> AsyncIterator[SessionRun]:
    """Hold the session's lock between two bars; 503 if a component fails meanwhile."""
    run = await running(mgr, sid)
    async with run.lock:
        if run.status not in LIVE or run.stop.is_set():
            raise SessionError(f"session {sid!r} is {run.status}, not running")
        try:
            yield run
        except Exception as exc:
            if _is_component_failure(exc):
                raise SessionError(
                    f"session {sid!r} is reloading after a component failure; retry", 503
                ) from exc
            raise


def session_clock(run: SessionRun) -> datetime:
    """The session's time: the timestamp of its last bar."""
    last = run.equity.get(run.last_bar)
    if last is None:
        raise SessionError(f"session {run.id!r} has not seen a bar yet; retry after its first bar")
    return last[0]


async def _checkpoint(
    mgr: SessionManager,
    run: SessionRun,
    journal: list[Any],
    book: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
) -> None:
    """Persist ``journal`` (and ``events``) and a checkpoint at the last bar holding the book
    as it is now."""
    c, sid = mgr.c, run.id
    if book is None:
        book = await c.execution.snapshot.remote(sid)
    agents = await c.strategy.state.remote(sid)
    checkpoint = checkpoint_of(run, session_clock(run), agents, book)
    await c.state.commit.remote(sid, journal, events or [], checkpoint)
    run.book = book  # the driver checkpoints this copy until the book changes again
    run.since_checkpoint = 0


async def _refused_by_risk(
    mgr: SessionManager, run: SessionRun, order: Order, ts: datetime
) -> OrderState | None:
    """Pre-trade risk on a manual order; a refusal is journaled (with a risk event) and returned."""
    prices = {s: run.last_close[s] for s in run.symbols if s in run.last_close}
    # The account as of the last close: it cannot change before the next bar.
    account = marked_account(run.account.cash, run.account.positions, prices)
    c = mgr.c
    _, refused = await c.risk.check.remote(run.id, [order], account, prices, run.risk_context(ts))
    if not refused:
        return None
    why = refused[0][1]
    state = OrderState(order).to(OrderStatus.REJECTED, ts, why)
    event = {"type": "risk", "order": to_dict(order), "reason": why}
    await c.state.commit.remote(run.id, mgr._journal_states(run, [state]), [event], None)
    metrics.REJECTED.inc()
    return state


async def submit_order(mgr: SessionManager, sid: str, req: ManualOrder) -> tuple[OrderState, bool]:
    """Place ``req`` on a running session; returns its state and whether it is new.

    A client order id seen before returns that order (409 if the order differs). An id that
    was journaled but never reached the broker (a crash in between) is sent now.
    """
    if req.client_order_id.startswith(RESERVED_ID_PREFIX):
        raise FieldError(
            ("body", "client_order_id"),
            f"client order ids starting with {RESERVED_ID_PREFIX!r} are the session's own",
        )
    async with acting_on(mgr, sid) as run:
        c, cid = mgr.c, req.client_order_id
        if req.symbol not in run.symbols:
            raise FieldError(
                ("body", "symbol"),
                f"symbol {req.symbol!r} is not traded in session {sid} (have {list(run.symbols)})",
            )
        in_book: OrderState | None = await c.execution.order.remote(sid, cid)
        known = in_book
        if known is None and await c.state.has_order.remote(sid, cid):
            payload = await c.state.order_state.remote(sid, cid)
            known = state_from_dict(payload) if payload is not None else None
        if known is not None and not req.same_as(known.order):
            raise SessionError(f"client order id {cid!r} is taken by a different order")
        if in_book is not None:
            return in_book, False
        if known is not None and not known.is_open:
            return known, False
        ts = session_clock(run)
        order = (
            known.order
            if known is not None
            else Order(
                client_order_id=cid,
                symbol=req.symbol,
                side=req.side,
                quantity=req.quantity,
                ts=ts,
                type=req.type,
                limit_price=req.limit_price,
                stop_price=req.stop_price,
                time_in_force=req.time_in_force,
                tag=req.tag,
            )
        )
        refused = await _refused_by_risk(mgr, run, order, ts)
        if refused is not None:
            return refused, True
        # Journaled before it is sent: a crash after this line cannot lose the order.
        sent = mgr._journal_states(run, [OrderState(order)])
        if sent:
            await c.state.commit.remote(sid, sent, [], None)
        states, book = await c.execution.place.remote(sid, [order], ts)
        state = states[-1]
        metrics.ORDERS.inc()
        run.orders += 1
        run.note_sent(ts, 1)
        run.track_orders(states)
        await _checkpoint(mgr, run, mgr._journal_states(run, [state]), book)
        return state, True


@dataclass(frozen=True, slots=True)
class SmartTrade:
    """An entry order and its exits (``raytrader.domain.bracket``), before the session's clock
    stamps them."""

    entry: ManualOrder
    take_profit: float | None = None
    stop_loss: float | None = None
    trail_percent: float | None = None
    trail_amount: float | None = None

    def orders(self, ts: datetime) -> list[Order]:
        """The entry and its children at ``ts``; a ``FieldError`` naming the field of a price
        on the wrong side (a take-profit below a buy's limit price, say)."""
        e = self.entry
        entry = Order(
            client_order_id=e.client_order_id,
            symbol=e.symbol,
            side=e.side,
            quantity=e.quantity,
            ts=ts,
            type=e.type,
            limit_price=e.limit_price,
            stop_price=e.stop_price,
            time_in_force=e.time_in_force,
            tag=e.tag,
        )
        try:
            return bracket(
                entry,
                self.take_profit,
                self.stop_loss,
                self.trail_percent,
                self.trail_amount,
                time_in_force=e.time_in_force,
            )
        except ValueError as exc:
            message = str(exc)
            # The message names the offending price first: "<where>: take_profit ... must be".
            detail = message.split(": ", 1)[-1]
            names = ("take_profit", "stop_loss", "trail_percent", "trail_amount")
            name = min((n for n in names if n in detail), key=detail.index, default="take_profit")
            raise FieldError(("body", name), message) from exc


async def submit_smart_trade(
    mgr: SessionManager, sid: str, req: SmartTrade
) -> tuple[list[OrderState], bool]:
    """Place an entry with its OCO exits on a running session: the states of the entry and
    of its children (in that order), and whether they are new.

    Pre-trade risk checks the entry (the exits only ever reduce what it opens): refused, it
    is journaled rejected and no child is placed. Otherwise every order is journaled NEW
    before the broker sees any. An entry id seen before returns that trade (409 if it
    differs, or if a child's id is taken by another order).
    """
    cid = req.entry.client_order_id
    if cid.startswith(RESERVED_ID_PREFIX):
        raise FieldError(
            ("body", "client_order_id"),
            f"client order ids starting with {RESERVED_ID_PREFIX!r} are the session's own",
        )
    async with acting_on(mgr, sid) as run:
        c = mgr.c
        if req.entry.symbol not in run.symbols:
            raise FieldError(
                ("body", "symbol"),
                f"symbol {req.entry.symbol!r} is not traded in session {sid}"
                f" (have {list(run.symbols)})",
            )
        ts = session_clock(run)
        orders = req.orders(ts)
        known = [await _known(mgr, sid, o.client_order_id) for o in orders]
        entry_known = known[0]
        if entry_known is not None:
            have = [k for k in known[1:] if k is not None]
            rejected = entry_known.status is OrderStatus.REJECTED and not have
            same = (
                req.entry.same_as(entry_known.order)
                and not entry_known.order.parent_id
                and (rejected or len(have) == len(orders) - 1)
                and all(_same_exit(k.order, o) for k, o in zip(have, orders[1:], strict=False))
            )
            if not same:
                raise SessionError(f"client order id {cid!r} is taken by a different order")
            return [entry_known, *have], False
        for o, k in zip(orders[1:], known[1:], strict=True):
            if k is not None:
                raise SessionError(
                    f"client order id {o.client_order_id!r} (an exit of {cid!r}) is taken"
                )
        entry = orders[0]
        refused = await _refused_by_risk(mgr, run, entry, ts)
        if refused is not None:
            return [refused], True
        # Journaled before they are sent: a crash after this line cannot lose them.
        sent = mgr._journal_states(run, [OrderState(o) for o in orders])
        if sent:
            await c.state.commit.remote(sid, sent, [], None)
        states, book = await c.execution.place.remote(sid, orders, ts)
        metrics.ORDERS.inc(len(orders))
        run.orders += len(orders)
        run.note_sent(ts, 1)  # one order meets the market now; the exits wait for its fill
        run.track_orders(states)
        await _checkpoint(mgr, run, mgr._journal_states(run, states), book)
        return states, True


def _same_exit(have: Order, want: Order) -> bool:
    return (
        have.client_order_id == want.client_order_id
        and have.parent_id == want.parent_id
        and have.type is want.type
        and have.limit_price == want.limit_price
        and have.stop_price == want.stop_price
        and have.trail_amount == want.trail_amount
        and have.trail_percent == want.trail_percent
    )


async def _known(mgr: SessionManager, sid: str, cid: str) -> OrderState | None:
    """An order's latest state, from the book or else the journal; None if never seen."""
    c = mgr.c
    state: OrderState | None = await c.execution.order.remote(sid, cid)
    if state is None and await c.state.has_order.remote(sid, cid):
        payload = await c.state.order_state.remote(sid, cid)
        state = state_from_dict(payload) if payload is not None else None
    return state


async def cancel_order(mgr: SessionManager, sid: str, client_order_id: str) -> OrderState:
    """Cancel an open order of a running session (404 unknown, 409 already done).

    Cancelling a bracket's entry before it fills cancels its held exits too; those changes
    are journaled with the entry's.
    """
    async with acting_on(mgr, sid) as run:
        c = mgr.c
        ts = session_clock(run)
        outcome: str
        state: OrderState | None
        outcome, state = await c.execution.cancel.remote(
            sid, client_order_id, ts, "cancelled on request"
        )
        if outcome == "unknown":
            payload = await c.state.order_state.remote(sid, client_order_id)
            if payload is None:
                raise SessionError(f"unknown order {client_order_id!r} in session {sid}", 404)
            state = state_from_dict(payload)
            outcome = "terminal"
        assert state is not None
        if outcome == "terminal":
            raise SessionError(f"order {client_order_id!r} is {state.status}; nothing to cancel")
        changed = [state]
        if outcome == "cancelled":
            book: list[OrderState] = await c.execution.orders.remote(sid)
            changed += [s for s in book if s.order.parent_id == client_order_id and not s.is_open]
        run.track_orders(changed)
        await _checkpoint(mgr, run, mgr._journal_states(run, changed))
        return state


async def trigger_rebalance(
    mgr: SessionManager, sid: str, targets: Mapping[str, float], close_others: bool
) -> list[Signal]:
    """Queue target weights for the session's next bar open (through its planner and risk)."""
    async with acting_on(mgr, sid) as run:
        unknown = sorted(set(targets) - set(run.symbols))
        if unknown:
            raise FieldError(
                ("body", "targets"),
                f"symbols {unknown} are not traded in session {sid} (have {list(run.symbols)})",
            )
        ts = session_clock(run)
        signals = target_signals(targets, ts, "rebalance on request")
        if close_others:
            held = await mgr.c.execution.positions.remote(sid)
            signals += [
                Signal(s, ts, direction=0, weight=0.0, reason="rebalance on request: not a target")
                for s, p in held.items()
                if s not in targets and p["quantity"] != 0
            ]
        # Appended last, so these win over the agents' signals of the same symbol.
        run.pending.extend((-1, s) for s in signals)
        await _checkpoint(mgr, run, [])
        return signals


async def portfolio(mgr: SessionManager, sid: str) -> Portfolio:
    """The account of a session: live while it runs here, else from its last checkpoint."""
    record = await mgr.record(sid)
    run = mgr.runs.get(sid)
    as_of = None
    if run is not None and run.last_bar in run.equity:
        as_of = run.equity[run.last_bar][0]
    raw: dict[str, Any] | None = None
    source = "live"
    if run is not None and run.status in LIVE:
        try:
            raw = await mgr.c.execution.portfolio.remote(sid)
        except Exception as exc:
            if not _is_component_failure(exc):
                raise
    if raw is None:
        source = "checkpoint"
        cp = await mgr.c.state.load_snapshot.remote(sid, "checkpoint")
        if cp and cp.get("book"):
            ledger = Ledger.from_snapshot(cp["book"]["ledger"])
            raw = {
                "cash": ledger.cash,
                "positions": {
                    s: {
                        "quantity": p.quantity,
                        "avg_cost": p.avg_cost,
                        "realized_pnl": p.realized_pnl,
                    }
                    for s, p in ledger.positions().items()
                },
                "last_close": dict(cp["book"]["last_close"]),
            }
        else:
            config = SessionConfig.model_validate(record.config)
            raw = {"cash": config.initial_cash, "positions": {}, "last_close": {}}
    last_close: dict[str, float] = {s: float(v) for s, v in raw["last_close"].items()}
    holdings = [
        Holding(
            s,
            float(p["quantity"]),
            float(p["avg_cost"]),
            float(p["realized_pnl"]),
            last_close.get(s),
        )
        for s, p in sorted(raw["positions"].items())
    ]
    return Portfolio(sid, source, as_of, float(raw["cash"]), holdings, last_close)


async def session_config(mgr: SessionManager, sid: str) -> SessionConfig:
    run = mgr.runs.get(sid)
    if run is not None:
        return run.config
    return SessionConfig.model_validate((await mgr.record(sid)).config)


async def put_schedule(mgr: SessionManager, sid: str, schedule: dict[str, Any]) -> None:
    """Store a session's rebalance schedule (the portfolio API's record: ``{"schedule":
    {...}, ...}``) and, when this server drives the session, act on it from the next bar (404
    unknown session, 409 finished, 422 a target symbol the session does not trade).

    A ``schedule`` event names the first bar the schedule applies to (``from_bar``); the
    checkpoint written with it keeps a replay after a restart on the old schedule before.
    """
    record = await mgr.record(sid)
    run = mgr.runs.get(sid)
    status = run.status if run is not None else record.status
    if status in ("stopped", "failed"):
        raise SessionError(f"session {sid!r} is {status}; its schedule cannot change")
    timing = RebalanceSchedule.from_stored(schedule)
    if run is None or run.done.is_set():
        await mgr.c.state.put_record.remote(SCHEDULES, sid, schedule)
        return
    async with run.lock:
        if run.status in ("stopped", "failed"):
            raise SessionError(f"session {sid!r} is {run.status}; its schedule cannot change")
        targets = schedule.get("schedule", schedule).get("targets") or {}
        unknown = sorted(set(targets) - set(run.symbols)) if run.symbols else []
        if unknown:
            raise FieldError(
                ("body", "targets"),
                f"symbols {unknown} are not traded in session {sid} (have {list(run.symbols)})",
            )
        event = {
            "type": "schedule",
            "from_bar": run.last_bar + 1,
            "schedule": timing.model_dump(mode="json"),
            "targets": targets or None,
        }
        try:
            if run.status in LIVE and run.last_bar in run.equity:
                await _checkpoint(mgr, run, [], events=[event])
            else:  # no bar yet (a replay starts on the new schedule), or stopping
                await mgr.c.state.commit.remote(sid, [], [event], None)
        except Exception as exc:
            if _is_component_failure(exc):
                raise SessionError(
                    f"session {sid!r} is reloading after a component failure; retry", 503
                ) from exc
            raise
        await mgr.c.state.put_record.remote(SCHEDULES, sid, schedule)
        run.set_schedule(schedule)


async def get_schedule(mgr: SessionManager, sid: str) -> dict[str, Any]:
    await mgr.record(sid)
    stored: dict[str, Any] | None = await mgr.c.state.get_record.remote(SCHEDULES, sid)
    if stored is None:
        raise SessionError(f"session {sid!r} has no rebalance schedule", 404)
    return stored
