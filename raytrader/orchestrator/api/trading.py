"""Trading sessions: start, stop, status, performance and per-session reads."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from sse_starlette import EventSourceResponse, ServerSentEvent

from raytrader.domain import OrderState, OrderType, TimeInForce
from raytrader.orchestrator import control
from raytrader.orchestrator.api.common import (
    SESSION_ERRORS,
    Price,
    Quantity,
    SideIn,
    Strict,
    Symbol,
    TimeInForceIn,
    examples,
)
from raytrader.orchestrator.api.deps import ERRORS, Manager
from raytrader.orchestrator.api.execution import OrderOut, check_prices
from raytrader.orchestrator.config import SessionConfig

router = APIRouter(prefix="/api/trading", tags=["trading"], responses=ERRORS)

SessionId = Annotated[str, Field(pattern=r"^s-[0-9a-f]{12}$", description="a session id")]


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: SessionId


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: SessionId


class SessionStarted(BaseModel):
    session_id: str
    status: str


@router.post("/start-session", status_code=202, response_model=SessionStarted)
async def start_session(config: SessionConfig, mgr: Manager) -> SessionStarted:
    """Start a paper session; answers at once, the session runs in the background."""
    sid = await mgr.start(config)
    return SessionStarted(session_id=sid, status="starting")


@router.post("/stop-session", response_model=SessionStarted)
async def stop_session(req: StopRequest, mgr: Manager) -> SessionStarted:
    """Stop a session: open orders cancelled, final ledger persisted, status ``stopped``."""
    return SessionStarted(session_id=req.session_id, status=await mgr.stop(req.session_id))


@router.post("/resume-session", response_model=SessionStarted)
async def resume_session(req: ResumeRequest, mgr: Manager) -> SessionStarted:
    """Resume a session its kill switch halted: orders are taken again, and the drawdown and
    daily loss limits count from the equity now. 409 if the session is not halted."""
    return SessionStarted(session_id=req.session_id, status=await mgr.resume(req.session_id))


@router.get("/status")
async def status(mgr: Manager) -> dict[str, Any]:
    """Active sessions and the health of every component actor."""
    sessions = [mgr.live_summary(mgr.runs[sid]) for sid in mgr.active()]
    return {"active_sessions": len(sessions), "sessions": sessions, "actors": await mgr.health()}


@router.get("/performance")
async def performance(
    mgr: Manager,
    session_id: Annotated[str | None, Query(pattern=r"^s-[0-9a-f]{12}$")] = None,
) -> dict[str, Any]:
    """Metrics of one session, or of every session this server drives."""
    ids = [session_id] if session_id else list(mgr.runs)
    return {"sessions": [await mgr.performance(sid) for sid in ids]}


@router.get("/sessions/{session_id}")
async def session(session_id: SessionId, mgr: Manager) -> dict[str, Any]:
    return await mgr.summary(session_id)


@router.get("/sessions/{session_id}/orders")
async def orders(session_id: SessionId, mgr: Manager) -> list[dict[str, Any]]:
    return await mgr.orders(session_id)


@router.get("/sessions/{session_id}/fills")
async def fills(session_id: SessionId, mgr: Manager) -> list[dict[str, Any]]:
    return await mgr.fills(session_id)


@router.get("/sessions/{session_id}/positions")
async def positions(session_id: SessionId, mgr: Manager) -> dict[str, Any]:
    return await mgr.positions(session_id)


@router.get("/sessions/{session_id}/equity")
async def equity(session_id: SessionId, mgr: Manager) -> list[dict[str, Any]]:
    await mgr.record(session_id)
    series = mgr.equity_series(session_id)
    return [
        {"ts": ts.isoformat(), "equity": float(v)}
        for ts, v in zip(series.index, series.to_numpy(), strict=True)
    ]


@router.get("/sessions/{session_id}/events", response_class=EventSourceResponse)
async def events(
    session_id: SessionId,
    mgr: Manager,
    # At most 19 digits a part: event ids are pairs of unsigned 64-bit numbers.
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{1,19}-[0-9]{1,19}$")] = None,
    follow: bool = True,
) -> EventSourceResponse:
    """Orders, fills, signals, equity and status events as server-sent events.

    Resumes after ``Last-Event-ID``; with ``follow=false`` it ends after the backlog.
    """
    await mgr.record(session_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        after = last_event_id
        while True:
            batch = await mgr.read_events(session_id, after, 500, 1000 if follow else None)
            for event_id, event in batch:
                after = event_id
                yield ServerSentEvent(
                    data=json.dumps(event), event=str(event.get("type", "event")), id=event_id
                )
            if not batch:
                if not follow:
                    return
                record = await mgr.record(session_id)
                if record.status in ("stopped", "failed"):
                    return
                await asyncio.sleep(0)

    return EventSourceResponse(stream(), ping=15)


# An entry's id: its exits append "-tp", "-sl" and "-ts", within the 64 characters of an id.
EntryId = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,60}$",
        description="the client's id for the entry (its exits get <id>-tp, <id>-sl, <id>-ts);"
        " sending it again returns the same trade (generated if omitted; ids starting with 's-'"
        " are the session's own)",
    ),
]
EntryType = Annotated[
    Literal[OrderType.MARKET, OrderType.LIMIT],
    BeforeValidator(lambda v: OrderType(v) if v in OrderType._value2member_map_ else v),
    Field(description="the entry's type: market or limit"),
]
TrailPercent = Annotated[
    float, Field(gt=0, lt=1, description="a fraction of the best price since the entry filled")
]


class SmartTradeRequest(Strict):
    """An entry with one-cancels-other exits: at least one of take_profit, stop_loss and a
    trailing stop (trail_percent or trail_amount)."""

    model_config = examples(
        {
            "session_id": "s-0123456789ab",
            "client_order_id": "trade-1",
            "symbol": "SYN",
            "side": "buy",
            "quantity": 10,
            "take_profit": 110.0,
            "stop_loss": 95.0,
        },
        {
            "session_id": "s-0123456789ab",
            "symbol": "SYN",
            "side": "sell",
            "quantity": 5,
            "type": "limit",
            "limit_price": 101.5,
            "stop_loss": 104.0,
            "trail_percent": 0.02,
        },
    )

    session_id: SessionId
    client_order_id: EntryId | None = None
    symbol: Symbol
    side: SideIn
    quantity: Quantity
    type: EntryType = OrderType.MARKET
    limit_price: Price | None = Field(
        None, validate_default=True, description="the entry's limit price (limit entries only)"
    )
    take_profit: Price | None = Field(None, description="limit price of the take-profit exit")
    stop_loss: Price | None = Field(None, description="stop price of the stop-loss exit")
    trail_percent: TrailPercent | None = Field(None, description="trailing stop, as a fraction")
    trail_amount: Price | None = Field(
        None, validate_default=True, description="trailing stop, in price units"
    )
    time_in_force: TimeInForceIn = Field(
        TimeInForce.GTC, description="of the entry and of its exits"
    )
    tag: str = Field("manual", max_length=64, description="free text kept with the orders")

    @field_validator("limit_price")
    @classmethod
    def _limit(cls, v: float | None, info: ValidationInfo) -> float | None:
        return check_prices(info.data.get("type"), "limit_price", v, (OrderType.LIMIT,))

    @field_validator("trail_amount")
    @classmethod
    def _exits(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("trail_percent") is not None:
            raise ValueError("give trail_percent or trail_amount, not both")
        given = [info.data.get(n) for n in ("take_profit", "stop_loss", "trail_percent")]
        if v is None and all(x is None for x in given) and "take_profit" in info.data:
            raise ValueError(
                "give at least one exit: take_profit, stop_loss, trail_percent or trail_amount"
            )
        return v


class ExitOut(OrderOut):
    """One exit of a smart trade: held (status new) until its entry fills."""

    parent_id: str
    oco_group: str
    trail_amount: float | None
    trail_percent: float | None

    @classmethod
    def of_exit(cls, state: OrderState) -> ExitOut:
        o = state.order
        return cls(
            **OrderOut.of(state).model_dump(),
            parent_id=o.parent_id,
            oco_group=o.oco_group,
            trail_amount=o.trail_amount,
            trail_percent=o.trail_percent,
        )


class SmartTradeOut(BaseModel):
    session_id: str
    created: bool = Field(description="false when the entry's client order id was seen before")
    entry: OrderOut
    exits: list[ExitOut] = Field(description="none when pre-trade risk refused the entry")


_EXISTING_TRADE: dict[int | str, dict[str, Any]] = {
    **SESSION_ERRORS,
    200: {"model": SmartTradeOut, "description": "A trade with this client order id exists"},
}


@router.post(
    "/smart-trade", status_code=201, response_model=SmartTradeOut, responses=_EXISTING_TRADE
)
async def smart_trade(req: SmartTradeRequest, mgr: Manager, response: Response) -> SmartTradeOut:
    """Place an entry with stop-loss / take-profit (and trailing stop) exits on a running
    session.

    Pre-trade risk checks the entry; every order is journaled before the broker sees it. The
    exits are one OCO group (``<id>-oco``): held until the entry's first fill, then sized to
    its filled quantity and working from the next bar; the first exit to fill cancels the
    others (``oco: <id>-oco filled``). Cancelling the entry before it fills cancels its exits.
    For a buy the take-profit must lie above the stop-loss and, for a limit entry, above its
    limit price with the stop-loss below (the reverse for a sell): 422 naming the field.
    404 unknown session, 409 not running or the id taken by a different order.

    The session's agents keep trading: a new agent signal on the symbol supersedes what is
    working there, this trade included (its entry and working exits are cancelled, "superseded
    by a new signal"), as the agent's new target replaces the position. Sending the same
    ``client_order_id`` again returns the existing trade with 200.
    """
    trade = control.SmartTrade(
        entry=control.ManualOrder(
            client_order_id=req.client_order_id or f"api-{uuid.uuid4().hex[:16]}",
            symbol=req.symbol,
            side=req.side,
            quantity=req.quantity,
            type=req.type,
            limit_price=req.limit_price,
            time_in_force=req.time_in_force,
            tag=req.tag,
        ),
        take_profit=req.take_profit,
        stop_loss=req.stop_loss,
        trail_percent=req.trail_percent,
        trail_amount=req.trail_amount,
    )
    states, created = await control.submit_smart_trade(mgr, req.session_id, trade)
    if not created:
        response.status_code = 200
    return SmartTradeOut(
        session_id=req.session_id,
        created=created,
        entry=OrderOut.of(states[0]),
        exits=[ExitOut.of_exit(s) for s in states[1:]],
    )
