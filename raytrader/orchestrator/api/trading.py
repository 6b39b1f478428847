"""Trading sessions: start, stop, status, performance and per-session reads; smart trades,
manual or driven by the ensemble agent's signal."""

from __future__ import annotations

import asyncio
import json
import math
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sse_starlette import EventSourceResponse, ServerSentEvent

from raytrader.domain import OrderState, OrderType, Side, TimeInForce
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
from raytrader.orchestrator.sessions import SessionError, SessionRun

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
    source: Literal["manual", "ensemble"] = Field(
        "manual",
        description="manual: the side and quantity given; ensemble: the ensemble agent's "
        "signal for the symbol sets them (its target weight less the position held)",
    )
    ensemble: dict[str, Any] | None = Field(
        None,
        description="the ensemble agent's params (source ensemble only; default: its "
        "defaults, the regime member alone)",
    )
    client_order_id: EntryId | None = None
    symbol: Symbol
    side: SideIn | None = Field(None, validate_default=True, description="manual only")
    quantity: Quantity | None = Field(None, validate_default=True, description="manual only")
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

    @field_validator("ensemble")
    @classmethod
    def _ensemble_only(cls, v: dict[str, Any] | None, info: ValidationInfo) -> Any:
        if v is not None and info.data.get("source") != "ensemble":
            raise ValueError("ensemble params go with source ensemble")
        return v

    @field_validator("side", "quantity")
    @classmethod
    def _manual_only(cls, v: Any, info: ValidationInfo) -> Any:
        source = info.data.get("source")
        if source == "manual" and v is None:
            raise ValueError(f"{info.field_name} is required for a manual trade")
        if source == "ensemble" and v is not None:
            raise ValueError(f"the ensemble sets the {info.field_name}: leave it out")
        return v

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
        manual = info.data.get("source") == "manual"  # an ensemble trade may go without exits
        if v is None and all(x is None for x in given) and "take_profit" in info.data and manual:
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


class VoteOut(BaseModel):
    score: float | None = Field(description="the member's score in [-1, 1]; null: no vote")
    weight: float = Field(description="its weight in the vote, renormalized over the voters")


class EnsembleReasoning(BaseModel):
    """Why the ensemble traded (or did not) at the session's last bar."""

    ts: str = Field(description="the bar the ensemble read last")
    score: float | None = Field(description="the combined score; null when nobody voted")
    votes: dict[str, VoteOut] = Field(description="per member: ml, rl, regime")
    current_weight: float = Field(description="the position held, as a share of equity")
    target_weight: float = Field(description="the ensemble's target weight")
    price: float
    quantity: float = Field(description="signed units the order moves (0: no order)")
    summary: str


class SmartTradeOut(BaseModel):
    session_id: str
    created: bool = Field(description="false when the entry's client order id was seen before")
    entry: OrderOut | None = Field(description="null when the ensemble's target needs no order")
    exits: list[ExitOut] = Field(description="none when pre-trade risk refused the entry")
    reasoning: EnsembleReasoning | None = Field(None, description="source ensemble only")


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

    With ``source: ensemble`` the ensemble agent (params in ``ensemble``) reads the session's
    bars so far (a replay session's), votes its members' scores for ``symbol`` at the last bar,
    and the order moves the position to its target weight (a market order of the difference,
    rounded down to the session's lot size, with the exits given, if any), risk-checked like
    any other; ``reasoning`` gives each member's score and weight. No order is placed when
    the target is what is held (``entry`` null).
    """
    if req.source == "ensemble":
        return await _ensemble_trade(req, mgr, response)
    assert req.side is not None and req.quantity is not None  # the validators see to it
    entry = control.ManualOrder(
        client_order_id=req.client_order_id or f"api-{uuid.uuid4().hex[:16]}",
        symbol=req.symbol,
        side=req.side,
        quantity=req.quantity,
        type=req.type,
        limit_price=req.limit_price,
        time_in_force=req.time_in_force,
        tag=req.tag,
    )
    return await _place(req, mgr, response, entry)


async def _place(
    req: SmartTradeRequest,
    mgr: Manager,
    response: Response,
    entry: control.ManualOrder,
    reasoning: EnsembleReasoning | None = None,
) -> SmartTradeOut:
    """Submit ``entry`` with the request's exits (a plain order when it has none)."""
    exits = (req.take_profit, req.stop_loss, req.trail_percent, req.trail_amount)
    if all(x is None for x in exits):
        state, created = await control.submit_order(mgr, req.session_id, entry)
        states = [state]
    else:
        trade = control.SmartTrade(
            entry=entry,
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
        exits=[ExitOut.of_exit(st) for st in states[1:]],
        reasoning=reasoning,
    )


def _ensemble_vote(
    config: SessionConfig, run: SessionRun, symbol: str, params: Any
) -> tuple[str, dict[str, float], Any, Any]:
    """The ensemble's member scores for ``symbol`` at the session's last bar, the agent and
    its combined vote (None when nobody votes)."""
    from raytrader.agents.ensemble import EnsembleAgent
    from raytrader.data.market_data import MarketData

    data = MarketData.from_frames(config.data_spec().frames()).slice(0, run.last_bar + 1)
    agent = EnsembleAgent(params)
    scores = agent.indicators(data)
    j = list(data.symbols).index(symbol)
    last = {m: float(scores[f"score_{m}"][j, -1]) for m in agent.members}
    return str(data.index[-1]), last, agent, agent.combine(last)


async def _ensemble_trade(
    req: SmartTradeRequest, mgr: Manager, response: Response
) -> SmartTradeOut:
    from raytrader.agents.ensemble import EnsembleParams

    try:
        params = EnsembleParams.model_validate(req.ensemble or {})
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {"loc": ("body", "ensemble", *e["loc"]), "msg": e["msg"], "type": e["type"]}
                for e in exc.errors()
            ]
        ) from None
    run = await control.running(mgr, req.session_id)
    if req.symbol not in run.symbols:
        raise control.FieldError(
            ("body", "symbol"),
            f"symbol {req.symbol!r} is not traded in session {req.session_id}"
            f" (have {list(run.symbols)})",
        )
    config = run.config
    if config.feed.data is None:
        raise SessionError("the ensemble reads a replay session's bars; this feed has none")
    control.session_clock(run)  # 409 before the first bar
    ts, scores, agent, vote = await asyncio.to_thread(
        _ensemble_vote, config, run, req.symbol, params
    )
    last = run.last_close.get(req.symbol)
    if last is None or not math.isfinite(last) or last <= 0:
        raise SessionError(f"symbol {req.symbol!r} has no price yet in session {req.session_id}")
    account, price = run.account, float(last)
    equity, held = account.equity_value, account.position(req.symbol)
    current = held * price / equity if equity > 0 else 0.0
    score, weights = vote if vote is not None else (None, {})
    target = agent.target(score, current) if score is not None else current
    delta = target * equity / price - held if equity > 0 else 0.0
    lot = config.portfolio.lot_size
    size = math.floor(abs(delta) / lot + 1e-9) * lot if lot > 0 else abs(delta)
    votes = {
        m: VoteOut(score=s if math.isfinite(s) else None, weight=float(weights.get(m, 0.0)))
        for m, s in scores.items()
    }
    summary = (
        "no vote at the last bar"
        if score is None
        else f"ensemble score={score:+.3f}: "
        + ", ".join(f"{m}={v.score} (w={v.weight:.2f})" for m, v in votes.items())
    )
    reasoning = EnsembleReasoning(
        ts=ts,
        score=score,
        votes=votes,
        current_weight=current,
        target_weight=target,
        price=price,
        quantity=math.copysign(size, delta) if size > 0 else 0.0,
        summary=summary,
    )
    if size <= 0:
        response.status_code = 200
        return SmartTradeOut(
            session_id=req.session_id, created=False, entry=None, exits=[], reasoning=reasoning
        )
    entry = control.ManualOrder(
        client_order_id=req.client_order_id or f"api-{uuid.uuid4().hex[:16]}",
        symbol=req.symbol,
        side=Side.BUY if delta > 0 else Side.SELL,
        quantity=size,
        time_in_force=req.time_in_force,
        tag="ensemble",
    )
    return await _place(req, mgr, response, entry, reasoning)
