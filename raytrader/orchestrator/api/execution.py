"""Execution: manual orders on a running paper session, its orders and its portfolio."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from raytrader.domain import OrderState, OrderStatus, OrderType, Side, TimeInForce
from raytrader.domain.codec import state_from_dict
from raytrader.orchestrator import control
from raytrader.orchestrator.api.common import (
    SESSION_ERRORS,
    SYMBOL_PATTERN,
    ClientOrderId,
    OrderTypeIn,
    Price,
    Quantity,
    SessionId,
    SessionQuery,
    SideIn,
    Strict,
    Symbol,
    TimeInForceIn,
    examples,
)
from raytrader.orchestrator.api.deps import Manager

router = APIRouter(prefix="/api/execution", tags=["execution"], responses=SESSION_ERRORS)

_NEEDS_LIMIT = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_NEEDS_STOP = (OrderType.STOP, OrderType.STOP_LIMIT)


def check_prices(
    type_: OrderType | None, name: str, value: float | None, needs: tuple[OrderType, ...]
) -> float | None:
    """``limit_price``/``stop_price`` is given exactly for the order types that use it."""
    if type_ is None:  # the type itself was invalid; that error is reported
        return value
    if type_ in needs and value is None:
        raise ValueError(f"{name} is required for a {type_.value} order")
    if type_ not in needs and value is not None:
        raise ValueError(f"{name} is not allowed for a {type_.value} order")
    return value


class OrderFields(Strict):
    """An order's instrument, side, size, type and prices."""

    symbol: Symbol
    side: SideIn
    quantity: Quantity
    type: OrderTypeIn = OrderType.MARKET
    limit_price: Price | None = Field(
        None, validate_default=True, description="limit and stop_limit orders only"
    )
    stop_price: Price | None = Field(
        None, validate_default=True, description="stop and stop_limit orders only"
    )
    time_in_force: TimeInForceIn = TimeInForce.GTC

    @field_validator("limit_price")
    @classmethod
    def _limit(cls, v: float | None, info: ValidationInfo) -> float | None:
        return check_prices(info.data.get("type"), "limit_price", v, _NEEDS_LIMIT)

    @field_validator("stop_price")
    @classmethod
    def _stop(cls, v: float | None, info: ValidationInfo) -> float | None:
        return check_prices(info.data.get("type"), "stop_price", v, _NEEDS_STOP)


class SubmitOrderRequest(OrderFields):
    model_config = examples(
        {
            "session_id": "s-0123456789ab",
            "client_order_id": "my-order-1",
            "symbol": "SYN",
            "side": "buy",
            "quantity": 10,
        },
        {
            "session_id": "s-0123456789ab",
            "client_order_id": "my-order-2",
            "symbol": "SYN",
            "side": "sell",
            "quantity": 5,
            "type": "limit",
            "limit_price": 120.5,
            "time_in_force": "day",
        },
    )

    session_id: SessionId
    client_order_id: ClientOrderId | None = Field(
        None,
        description="idempotency key: the same id returns the same order (generated if omitted;"
        " ids starting with 's-' are the session's own)",
    )
    tag: str = Field("manual", max_length=64, description="free text kept with the order")


class CancelOrderRequest(Strict):
    model_config = examples({"session_id": "s-0123456789ab", "client_order_id": "my-order-2"})

    session_id: SessionId
    client_order_id: ClientOrderId


class OrderOut(BaseModel):
    """An order and its latest state."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    type: OrderType
    limit_price: float | None
    stop_price: float | None
    time_in_force: TimeInForce
    tag: str
    ts: datetime = Field(description="when the order was placed (session time)")
    status: OrderStatus
    filled_quantity: float
    avg_fill_price: float
    reason: str
    updated: datetime | None

    @classmethod
    def of(cls, state: OrderState) -> OrderOut:
        o = state.order
        return cls(
            client_order_id=o.client_order_id,
            symbol=o.symbol,
            side=o.side,
            quantity=o.quantity,
            type=o.type,
            limit_price=o.limit_price,
            stop_price=o.stop_price,
            time_in_force=o.time_in_force,
            tag=o.tag,
            ts=o.ts,
            status=state.status,
            filled_quantity=state.filled_quantity,
            avg_fill_price=state.avg_fill_price,
            reason=state.reason,
            updated=state.updated,
        )


class SubmittedOrder(OrderOut):
    session_id: str
    created: bool = Field(description="false when the client order id was seen before")


class OrderList(BaseModel):
    session_id: str
    count: int
    orders: list[OrderOut]


class PositionOut(BaseModel):
    symbol: str
    quantity: float
    avg_cost: float
    last_price: float | None
    market_value: float
    unrealized_pnl: float
    realized_pnl: float
    weight: float | None = Field(description="market value / equity (None when equity <= 0)")


class PortfolioOut(BaseModel):
    session_id: str
    source: Literal["live", "checkpoint"]
    as_of: datetime | None = Field(description="the session time of the last bar")
    cash: float
    equity: float
    market_value: float
    gross_exposure: float
    net_exposure: float
    positions: list[PositionOut]

    @classmethod
    def of(cls, p: control.Portfolio) -> PortfolioOut:
        equity = p.equity
        rows = []
        for h in p.holdings:
            value = h.quantity * p.mark(h)
            rows.append(
                PositionOut(
                    symbol=h.symbol,
                    quantity=h.quantity,
                    avg_cost=h.avg_cost,
                    last_price=h.last_price,
                    market_value=value,
                    unrealized_pnl=h.quantity * (p.mark(h) - h.avg_cost),
                    realized_pnl=h.realized_pnl,
                    weight=value / equity if equity > 0 else None,
                )
            )
        return cls(
            session_id=p.session_id,
            source="live" if p.source == "live" else "checkpoint",
            as_of=p.as_of,
            cash=p.cash,
            equity=equity,
            market_value=p.market_value,
            gross_exposure=p.gross_exposure,
            net_exposure=p.market_value,
            positions=rows,
        )


_EXISTING: dict[int | str, dict[str, Any]] = {
    200: {"model": SubmittedOrder, "description": "An order with this client order id exists"}
}


@router.post("/submit-order", status_code=201, response_model=SubmittedOrder, responses=_EXISTING)
async def submit_order(req: SubmitOrderRequest, mgr: Manager, response: Response) -> SubmittedOrder:
    """Place an order on a running paper session: pre-trade risk, journal, then the broker.

    The order meets the market at the session's next bar. Sending the same
    ``client_order_id`` again returns the existing order with 200 (409 if it differs).
    """
    order = control.ManualOrder(
        client_order_id=req.client_order_id or f"api-{uuid.uuid4().hex[:16]}",
        symbol=req.symbol,
        side=req.side,
        quantity=req.quantity,
        type=req.type,
        limit_price=req.limit_price,
        stop_price=req.stop_price,
        time_in_force=req.time_in_force,
        tag=req.tag,
    )
    state, created = await control.submit_order(mgr, req.session_id, order)
    if not created:
        response.status_code = 200
    out = OrderOut.of(state).model_dump()
    return SubmittedOrder(**out, session_id=req.session_id, created=created)


@router.get("/orders", response_model=OrderList)
async def orders(
    mgr: Manager,
    session_id: SessionQuery,
    status: Annotated[
        Literal["all", "open", "closed"], Query(description="open: not yet terminal")
    ] = "all",
    symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000, description="the latest this many")] = 1000,
) -> OrderList:
    """The latest state of a session's orders (from its journal), oldest first."""
    states = [state_from_dict(p) for p in await mgr.orders(session_id)]
    if status != "all":
        states = [s for s in states if s.is_open == (status == "open")]
    if symbol is not None:
        states = [s for s in states if s.order.symbol == symbol]
    states = states[-limit:]
    return OrderList(
        session_id=session_id, count=len(states), orders=[OrderOut.of(s) for s in states]
    )


@router.post("/cancel-order", response_model=OrderOut)
async def cancel_order(req: CancelOrderRequest, mgr: Manager) -> OrderOut:
    """Cancel an open order of a running session (404 unknown order, 409 already done)."""
    return OrderOut.of(await control.cancel_order(mgr, req.session_id, req.client_order_id))


@router.get("/portfolio", response_model=PortfolioOut)
async def portfolio(mgr: Manager, session_id: SessionQuery) -> PortfolioOut:
    """Cash, positions marked at their last close, equity and exposures of a session."""
    return PortfolioOut.of(await control.portfolio(mgr, session_id))
