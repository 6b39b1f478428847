"""Portfolio: signals or targets -> orders, desired vs held, rebalances and their schedule."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from raytrader.domain import Order, OrderType, Side, Signal, TimeInForce
from raytrader.domain.codec import state_from_dict
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.orchestrator import control
from raytrader.orchestrator.api.common import (
    SESSION_ERRORS,
    BrokerIn,
    Money,
    OrderTypeIn,
    PortfolioIn,
    Price,
    SessionId,
    SessionQuery,
    SignedQuantity,
    Strict,
    Symbol,
    TimeInForceIn,
    examples,
    field_error,
)
from raytrader.orchestrator.api.deps import Manager
from raytrader.orchestrator.api.execution import check_prices
from raytrader.portfolio.config import PortfolioConfig
from raytrader.portfolio.rebalancer import AccountView, Rebalancer
from raytrader.portfolio.reconcile import in_flight_quantities, reconcile
from raytrader.portfolio.schedule import OnMissed
from raytrader.portfolio.schedule import RebalanceSchedule as ScheduleTiming
from raytrader.risk.checks import PreTradeRisk
from raytrader.risk.limits import clip_target
from raytrader.risk.sizing import round_to_lot

router = APIRouter(prefix="/api/portfolio", tags=["portfolio"], responses=SESSION_ERRORS)

Weight = Annotated[float, Field(ge=-10, le=10, description="signed share of equity")]
Atr = Annotated[float, Field(ge=1e-8, le=1e9)]
_LIMIT_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT)


class SignalIn(Strict):
    """A target for one symbol: ``weight`` or ``quantity``, else ``direction`` sized by config."""

    symbol: Symbol
    direction: int = Field(0, ge=-1, le=1, description="-1, 0 or 1: sized by the config")
    weight: Weight | None = None
    quantity: SignedQuantity | None = Field(None, validate_default=True)
    strength: float = Field(1.0, ge=0, le=1)
    order_type: OrderTypeIn = OrderType.MARKET
    limit_price: Price | None = Field(None, validate_default=True)
    stop_price: Price | None = Field(None, validate_default=True)
    time_in_force: TimeInForceIn = TimeInForce.GTC
    reason: str = Field("", max_length=200)

    @field_validator("quantity")
    @classmethod
    def _one_size(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and info.data.get("weight") is not None:
            raise ValueError("give weight or quantity, not both")
        return v

    @field_validator("limit_price")
    @classmethod
    def _limit(cls, v: float | None, info: ValidationInfo) -> float | None:
        return check_prices(info.data.get("order_type"), "limit_price", v, _LIMIT_TYPES)

    @field_validator("stop_price")
    @classmethod
    def _stop(cls, v: float | None, info: ValidationInfo) -> float | None:
        return check_prices(info.data.get("order_type"), "stop_price", v, _STOP_TYPES)

    def signal(self, ts: datetime) -> Signal:
        return Signal(
            self.symbol,
            ts,
            direction=self.direction,
            weight=self.weight,
            quantity=self.quantity,
            strength=self.strength,
            order_type=self.order_type,
            limit_price=self.limit_price,
            stop_price=self.stop_price,
            time_in_force=self.time_in_force,
            reason=self.reason,
        )


class AccountIn(Strict):
    cash: Money
    positions: dict[Symbol, SignedQuantity] = Field(default_factory=dict, max_length=1000)


class PlanRequest(Strict):
    """Targets and an account: given, or a session's (its holdings, last closes and config)."""

    model_config = examples(
        {
            "account": {"cash": 5000, "positions": {"A": 50}},
            "prices": {"A": 100, "B": 10},
            "targets": {"A": 0.2, "B": 0.1},
        },
        {"session_id": "s-0123456789ab"},
    )

    session_id: SessionId | None = Field(None, description="use this session's account")
    account: AccountIn | None = Field(
        None, validate_default=True, description="required without session_id"
    )
    signals: list[SignalIn] = Field(default_factory=list, max_length=500)
    targets: dict[Symbol, Weight] = Field(
        default_factory=dict, max_length=500, description="symbol -> weight, after `signals`"
    )
    prices: dict[Symbol, Price] = Field(
        default_factory=dict, max_length=1000, description="order-time prices (override)"
    )
    portfolio: PortfolioIn | None = Field(None, description="the session's or the default")
    broker: BrokerIn | None = Field(None, description="costs: the session's or none")
    atr: dict[Symbol, Atr] | None = Field(
        None, max_length=1000, description="ATR per symbol, for atr_risk sizing"
    )

    @field_validator("account")
    @classmethod
    def _account_or_session(cls, v: AccountIn | None, info: ValidationInfo) -> AccountIn | None:
        if v is None and info.data.get("session_id") is None and "session_id" in info.data:
            raise ValueError("give an account, or a session_id to use its account")
        return v


class GenerateOrdersRequest(PlanRequest):
    model_config = examples(
        {
            "account": {"cash": 1000, "positions": {"A": 100}},
            "prices": {"A": 100, "B": 50},
            "targets": {"A": 0.25, "B": 0.5},
            "portfolio": {"lot_size": 1},
        },
        {"session_id": "s-0123456789ab", "targets": {"SYN": 0.5}},
    )

    check_risk: bool = Field(True, description="run the pre-trade limits over the orders")


@dataclass
class _Plan:
    ts: datetime
    account: AccountView
    prices: dict[str, float]
    config: PortfolioConfig
    broker: PaperBrokerConfig
    signals: list[Signal]
    atr: Callable[[str], float] | None


def _account(acct: AccountIn, prices: dict[str, float]) -> AccountView:
    value = gross = 0.0
    for symbol, qty in acct.positions.items():
        price = prices.get(symbol)
        if price is not None:
            value += qty * price
            gross += abs(qty) * price
    return AccountView(acct.cash, acct.cash + value, dict(acct.positions), gross)


async def _plan(req: PlanRequest, mgr: Manager) -> _Plan:
    ts = datetime.now(UTC)
    if req.session_id is not None:
        sid = req.session_id
        held = await control.portfolio(mgr, sid)
        config = await control.session_config(mgr, sid)
        prices = {**held.last_close, **req.prices}
        account = held.account()
        if req.prices:  # marks at the prices given
            marks = {h.symbol: prices.get(h.symbol, held.mark(h)) for h in held.holdings}
            value = sum(h.quantity * marks[h.symbol] for h in held.holdings)
            gross = sum(abs(h.quantity * marks[h.symbol]) for h in held.holdings)
            account = AccountView(held.cash, held.cash + value, account.positions, gross)
        portfolio_config = req.portfolio or config.portfolio
        broker = req.broker or config.broker
        run = mgr.runs.get(sid)
        pending = [s for _, s in run.pending] if run is not None else []
        if held.as_of is not None:
            ts = held.as_of
    else:
        assert req.account is not None
        prices = dict(req.prices)
        account = _account(req.account, prices)
        portfolio_config = req.portfolio or PortfolioConfig()
        broker = req.broker or PaperBrokerConfig()
        pending = []
    signals = [s.signal(ts) for s in req.signals]
    signals += [
        Signal(sym, ts, direction=int(math.copysign(1, w)) if w else 0, weight=w, reason="target")
        for sym, w in req.targets.items()
    ]
    if not signals:
        if req.session_id is None:
            raise field_error(("body", "signals"), "give signals or targets")
        signals = pending
    sized = any(s.weight is None and s.quantity is None and s.direction for s in signals)
    if portfolio_config.sizing.method == "atr_risk" and sized and req.atr is None:
        raise field_error(("body", "atr"), "atr_risk sizing needs the ATR of every signal symbol")
    table = req.atr

    def atr(symbol: str) -> float:
        return table.get(symbol, math.nan) if table is not None else math.nan

    return _Plan(ts, account, prices, portfolio_config, broker, signals, atr if table else None)


class AccountOut(BaseModel):
    cash: float
    equity: float
    gross_exposure: float


class PlannedOrder(BaseModel):
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    type: OrderType
    limit_price: float | None
    stop_price: float | None
    time_in_force: TimeInForce
    tag: str
    risk_passed: bool | None = Field(description="None when risk was not checked")
    risk_reason: str | None


class AdjustmentOut(BaseModel):
    symbol: str
    wanted: float
    got: float
    reason: str


class OrdersOut(BaseModel):
    session_id: str | None
    account: AccountOut
    orders: list[PlannedOrder]
    adjustments: list[AdjustmentOut] = Field(description="targets cut by limits, cash or price")


def _account_out(a: AccountView) -> AccountOut:
    return AccountOut(cash=a.cash, equity=a.equity, gross_exposure=a.gross_exposure)


def _planned(order: Order, passed: bool | None, reason: str | None) -> PlannedOrder:
    return PlannedOrder(
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side=order.side,
        quantity=order.quantity,
        type=order.type,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
        time_in_force=order.time_in_force,
        tag=order.tag,
        risk_passed=passed,
        risk_reason=reason,
    )


@router.post("/generate-orders", response_model=OrdersOut)
async def generate_orders(req: GenerateOrdersRequest, mgr: Manager) -> OrdersOut:
    """The orders that move the account to the targets (the rebalancer: sells first, cash and
    limits honoured), and optionally the pre-trade limits' verdict on each. Nothing is sent."""
    plan = await _plan(req, mgr)
    rb = Rebalancer(plan.config, plan.broker.commission, plan.broker.slippage)
    count = 0

    def next_id() -> str:
        nonlocal count
        count += 1
        return f"plan-{count}"

    orders = rb.orders(plan.signals, plan.prices, plan.account, plan.ts, next_id, plan.atr)
    verdict: dict[str, str] = {}
    if req.check_risk:
        _, refused = PreTradeRisk(plan.config.limits).check(orders, plan.account, plan.prices)
        verdict = {o.client_order_id: why for o, why in refused}
    return OrdersOut(
        session_id=req.session_id,
        account=_account_out(plan.account),
        orders=[
            _planned(
                o,
                (o.client_order_id not in verdict) if req.check_risk else None,
                verdict.get(o.client_order_id),
            )
            for o in orders
        ],
        adjustments=[
            AdjustmentOut(symbol=a.symbol, wanted=a.wanted, got=a.got, reason=a.reason)
            for a in rb.adjustments
        ],
    )


class DesiredRow(BaseModel):
    symbol: str
    price: float | None
    held: float
    wanted: float | None = Field(description="what the target asks, before limits")
    target: float = Field(description="after limits and lot size; held when no target")
    delta: float
    held_weight: float | None
    target_weight: float | None
    note: str | None = Field(description="why the target was cut, or why it is unknown")
    desired: float | None = Field(description="the target when the symbol has one, else None")
    in_flight: float = Field(description="signed remaining quantity of the working orders")
    gap: float = Field(description="target - held - in_flight: still to order")
    flags: list[str] = Field(
        description="under / over (gap > 0 / < 0), orphan (working orders, no target),"
        " against (working orders away from the target), overshoot (past it)"
    )


class DesiredOut(BaseModel):
    session_id: str | None
    account: AccountOut
    rows: list[DesiredRow]


@router.post("/desired-state", response_model=DesiredOut)
async def desired_state(req: PlanRequest, mgr: Manager) -> DesiredOut:
    """Desired positions vs held and in flight, per symbol, before cash constraints.

    With a session and no targets given, the targets are the session's pending signals (its
    agents' latest decisions, traded at the next open), and its working orders are in flight:
    `gap` is what is still to order once they fill, `flags` say what needs attention.
    """
    plan = await _plan(req, mgr)
    rb = Rebalancer(plan.config, plan.broker.commission, plan.broker.slippage)
    equity = plan.account.equity
    latest = {s.symbol: s for s in plan.signals}
    held = plan.account.positions
    in_flight: dict[str, float] = {}
    if req.session_id is not None:
        states = [state_from_dict(p) for p in await mgr.orders(req.session_id)]
        in_flight = in_flight_quantities(states)
    desired: dict[str, float] = {}
    wanted: dict[str, float] = {}
    notes: dict[str, str] = {}
    for symbol, sig in latest.items():
        price = plan.prices.get(symbol)
        if price is None:
            notes[symbol] = "no price"
            continue
        wanted[symbol] = rb.target_quantity(sig, price, equity, plan.atr)
        target, why = clip_target(wanted[symbol], price, equity, plan.config.limits)
        desired[symbol] = round_to_lot(target, plan.config.lot_size)
        if why:
            notes[symbol] = why
    # A symbol without a target keeps what it holds.
    rec = {r.symbol: r for r in reconcile(desired, held, in_flight, missing="keep").rows}
    rows = []
    for symbol in sorted(set(held) | set(latest) | set(in_flight)):
        price = plan.prices.get(symbol)
        have = held.get(symbol, 0.0)
        target = desired.get(symbol, have)
        r = rec.get(symbol)

        def weight(q: float, price: float | None = price) -> float | None:
            return q * price / equity if price is not None and equity > 0 else None

        rows.append(
            DesiredRow(
                symbol=symbol,
                price=price,
                held=have,
                wanted=wanted.get(symbol),
                target=target,
                delta=target - have,
                held_weight=weight(have),
                target_weight=weight(target),
                note=notes.get(symbol),
                desired=desired.get(symbol),
                in_flight=in_flight.get(symbol, 0.0),
                gap=r.gap if r is not None else target - have,
                flags=sorted(r.flags) if r is not None else [],
            )
        )
    return DesiredOut(session_id=req.session_id, account=_account_out(plan.account), rows=rows)


class RebalanceRequest(Strict):
    model_config = examples({"session_id": "s-0123456789ab", "targets": {"SYN": 0.5}})

    session_id: SessionId
    targets: dict[Symbol, Weight] = Field(min_length=1, max_length=500)
    close_others: bool = Field(False, description="also close holdings that are not targets")


class QueuedTarget(BaseModel):
    symbol: str
    weight: float


class RebalanceQueued(BaseModel):
    session_id: str
    queued: list[QueuedTarget]
    effective: str


@router.post("/trigger-rebalance", status_code=202, response_model=RebalanceQueued)
async def trigger_rebalance(req: RebalanceRequest, mgr: Manager) -> RebalanceQueued:
    """Rebalance a running session to target weights at its next bar's open.

    The targets go the way the agents' signals go: planner (cash, lots), limits, journal,
    broker. They win over the agents' signals for the same symbols at that bar.
    """
    signals = await control.trigger_rebalance(mgr, req.session_id, req.targets, req.close_others)
    return RebalanceQueued(
        session_id=req.session_id,
        queued=[QueuedTarget(symbol=s.symbol, weight=s.weight or 0.0) for s in signals],
        effective="the next bar's open",
    )


Nth = Annotated[int, Field(ge=1, le=5)] | Literal["last"]


class RebalanceSchedule(Strict):
    """When a session rebalances to its targets."""

    frequency: Literal["daily", "weekly", "monthly", "manual"] = "weekly"
    weekday: int = Field(2, ge=0, le=6, description="weekly and monthly: 0 = Monday")
    week_of_month: Nth = Field(
        2, description="monthly: the n-th such weekday of the month (1-5), or 'last'"
    )
    on_missed: OnMissed = Field(
        "next_bar", description="a scheduled date without a bar: rebalance at the next bar, or skip"
    )
    targets: dict[Symbol, Weight] | None = Field(
        None, max_length=500, description="weights to restore; none = the agents' targets"
    )
    enabled: bool = True


class ScheduleRequest(RebalanceSchedule):
    model_config = examples(
        {"session_id": "s-0123456789ab", "frequency": "monthly", "weekday": 2, "week_of_month": 2},
        {"session_id": "s-0123456789ab", "kind": "monthly", "nth": "last", "on_missed": "skip"},
    )

    session_id: SessionId
    kind: Literal["daily", "weekly", "monthly", "manual"] | None = Field(
        None, description="the schedule model's name for `frequency` (give one of them)"
    )
    nth: Nth | None = Field(
        None, description="the schedule model's name for `week_of_month` (give one of them)"
    )

    def schedule(self) -> RebalanceSchedule:
        """The stored form: ``frequency`` and ``week_of_month``."""
        fields = self.model_dump(exclude={"session_id", "kind", "nth"})
        if self.kind is not None:
            fields["frequency"] = self.kind
        if self.nth is not None:
            fields["week_of_month"] = self.nth
        return RebalanceSchedule(**fields)


class ScheduleOut(BaseModel):
    session_id: str
    schedule: RebalanceSchedule
    updated: datetime


@router.post("/update-rebalance-schedule", response_model=ScheduleOut)
async def update_rebalance_schedule(req: ScheduleRequest, mgr: Manager) -> ScheduleOut:
    """Store a session's rebalance schedule (404 unknown session, 409 finished session).

    Monthly dates are the `week_of_month`-th (1-5, or `last`) `weekday` of the month; a
    scheduled date without a bar moves to the next bar or is skipped (`on_missed`). The
    schedule model's names `kind` and `nth` may stand for `frequency` and `week_of_month`.
    """
    for alias, name in (("kind", "frequency"), ("nth", "week_of_month")):
        if getattr(req, alias) is not None and name in req.model_fields_set:
            raise field_error(("body", alias), f"give {alias} or {name}, not both")
    schedule = req.schedule()
    ScheduleTiming.from_stored(schedule.model_dump())  # what the schedule's user reads back
    out = ScheduleOut(session_id=req.session_id, schedule=schedule, updated=datetime.now(UTC))
    await control.put_schedule(mgr, req.session_id, out.model_dump(mode="json"))
    return out


@router.get("/rebalance-schedule", response_model=ScheduleOut)
async def rebalance_schedule(mgr: Manager, session_id: SessionQuery) -> ScheduleOut:
    """A session's stored rebalance schedule (404 when it has none)."""
    return ScheduleOut.model_validate(await control.get_schedule(mgr, session_id))
