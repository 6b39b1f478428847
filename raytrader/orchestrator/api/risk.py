"""Risk: position sizing, pre-trade limit checks, and a session's portfolio risk."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, ValidationInfo, field_validator

from raytrader.data.indicators import atr as atr_indicator
from raytrader.domain import Order, Side
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.orchestrator import control
from raytrader.orchestrator.api.common import (
    SESSION_ERRORS,
    ClientOrderId,
    LimitsIn,
    Money,
    Price,
    SessionId,
    SessionQuery,
    SideIn,
    SignedQuantity,
    Strict,
    Symbol,
    check_lot,
    examples,
    field_error,
)
from raytrader.orchestrator.api.data import Source, bundled_frames
from raytrader.orchestrator.api.deps import Manager
from raytrader.orchestrator.api.execution import OrderFields
from raytrader.portfolio.config import PortfolioConfig
from raytrader.portfolio.rebalancer import AccountView, Rebalancer
from raytrader.risk.checks import PreTradeRisk, RiskContext
from raytrader.risk.limits import RiskLimits, clip_target
from raytrader.risk.sizing import atr_risk_unit, fixed_fractional, round_to_lot

router = APIRouter(prefix="/api/risk", tags=["risk"], responses=SESSION_ERRORS)


class PositionSizeRequest(Strict):
    model_config = examples(
        {"equity": 100000, "price": 50, "fraction": 0.1, "commission_bps": 10, "lot_size": 1},
        {"method": "atr_risk", "equity": 100000, "price": 50, "atr": 2.0},
        {"method": "atr_risk", "equity": 100000, "price": 50, "symbol": "S01"},
    )

    method: Literal["fixed_fractional", "atr_risk"] = "fixed_fractional"
    equity: float = Field(gt=0, le=1e13, description="account equity")
    price: Price
    side: SideIn = Side.BUY
    fraction: float = Field(0.1, gt=0, le=10, description="fixed_fractional: share of equity")
    risk_factor: float = Field(
        0.001, gt=0, le=1, description="atr_risk: units = equity x risk_factor / ATR"
    )
    symbol: Symbol | None = Field(None, description="atr_risk: compute the ATR from bundled data")
    source: Source = Field("universe_daily", description="the data set of `symbol`")
    atr_period: int = Field(20, ge=1, le=1000)
    atr: float | None = Field(
        None, ge=1e-8, le=1e9, validate_default=True, description="atr_risk: the ATR itself"
    )
    point_value: float = Field(1.0, ge=1e-6, le=1e6, description="currency per price unit")
    lot_size: float = Field(0.0, ge=0, le=1e6, description="round down to lots; 0 = any")
    commission_bps: float = Field(0.0, ge=0, le=1000)
    slippage_bps: float = Field(0.0, ge=0, le=1000)
    limits: LimitsIn | None = Field(None, description="clip to these per-position limits")

    _lot_size = field_validator("lot_size")(check_lot)

    @field_validator("atr")
    @classmethod
    def _atr_source(cls, v: float | None, info: ValidationInfo) -> float | None:
        if info.data.get("method") == "atr_risk":
            if v is None and info.data.get("symbol") is None and "symbol" in info.data:
                raise ValueError("atr_risk needs atr, or a symbol to compute it from")
            if v is not None and info.data.get("symbol") is not None:
                raise ValueError("give atr or symbol, not both")
        return v


class PositionSize(BaseModel):
    method: str
    side: Side
    quantity: float = Field(description="units after limits and lots")
    raw_quantity: float = Field(description="units before limits and lots")
    notional: float
    weight: float = Field(description="notional / equity")
    unit_cost: float = Field(description="cash per unit, slippage and commission included")
    atr: float | None
    risk_amount: float | None = Field(description="atr_risk: equity change on a one-ATR move")
    clipped_by: str | None


def _last_atr(source: Source, symbol: str, period: int) -> float:
    frame = bundled_frames(source).get(symbol)
    if frame is None:
        raise field_error(("body", "symbol"), f"unknown symbol {symbol!r} in {source}")
    values = atr_indicator(
        frame["high"].to_numpy(), frame["low"].to_numpy(), frame["close"].to_numpy(), period
    )
    last = float(values[-1]) if len(values) else math.nan
    if not (last > 0 and math.isfinite(last)):
        raise field_error(("body", "atr_period"), f"{symbol} has too few bars for ATR({period})")
    return last


@router.post("/calculate-position-size", response_model=PositionSize)
async def calculate_position_size(req: PositionSizeRequest) -> PositionSize:
    """Units to trade: a fixed fraction of equity, or equity x risk factor / ATR."""
    rb = Rebalancer(
        PortfolioConfig(),
        CommissionModel(bps=req.commission_bps),
        SlippageModel(bps=req.slippage_bps),
    )
    unit_cost = rb.unit_cost(req.price, req.side)
    atr: float | None = None
    if req.method == "atr_risk":
        atr = req.atr
        if atr is None:
            assert req.symbol is not None
            atr = await asyncio.to_thread(_last_atr, req.source, req.symbol, req.atr_period)
        raw = atr_risk_unit(req.equity, req.risk_factor, atr, req.point_value)
    else:
        raw = fixed_fractional(req.equity, req.fraction, unit_cost)
    clipped: str | None = None
    quantity = raw
    if req.limits is not None:
        signed, why = clip_target(req.side.sign * raw, req.price, req.equity, req.limits)
        quantity, clipped = abs(signed), why or None
    quantity = round_to_lot(quantity, req.lot_size)
    notional = quantity * req.price
    return PositionSize(
        method=req.method,
        side=req.side,
        quantity=quantity,
        raw_quantity=raw,
        notional=notional,
        weight=notional / req.equity,
        unit_cost=unit_cost,
        atr=atr,
        risk_amount=quantity * atr * req.point_value if atr is not None else None,
        clipped_by=clipped,
    )


class ProposedOrder(OrderFields):
    client_order_id: ClientOrderId | None = None


class AccountIn(Strict):
    cash: Money
    positions: dict[Symbol, SignedQuantity] = Field(default_factory=dict, max_length=1000)


class CheckLimitsRequest(Strict):
    model_config = examples(
        {
            "account": {"cash": 10000, "positions": {"A": 10}},
            "prices": {"A": 100, "B": 50},
            "limits": {"max_position_weight": 0.5},
            "orders": [
                {"symbol": "A", "side": "buy", "quantity": 40},
                {"symbol": "B", "side": "buy", "quantity": 200},
            ],
        },
        {
            "session_id": "s-0123456789ab",
            "orders": [{"symbol": "SYN", "side": "buy", "quantity": 10}],
        },
    )

    session_id: SessionId | None = Field(None, description="use this session's account, limits")
    account: AccountIn | None = Field(
        None, validate_default=True, description="required without session_id"
    )
    orders: list[ProposedOrder] = Field(min_length=1, max_length=500)
    prices: dict[Symbol, Price] = Field(
        default_factory=dict, max_length=1000, description="a session's last closes by default"
    )
    limits: LimitsIn | None = Field(None, description="the session's or the default limits")

    @field_validator("account")
    @classmethod
    def _account_or_session(cls, v: AccountIn | None, info: ValidationInfo) -> AccountIn | None:
        if v is None and "session_id" in info.data and info.data["session_id"] is None:
            raise ValueError("give an account, or a session_id to use its account")
        return v


class CheckedOrder(BaseModel):
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    passed: bool
    reason: str | None


class LimitsCheck(BaseModel):
    limits: RiskLimits
    equity: float
    gross_exposure: float
    passed: int
    refused: int
    orders: list[CheckedOrder]


@router.post("/check-limits", response_model=LimitsCheck)
async def check_limits(req: CheckLimitsRequest, mgr: Manager) -> LimitsCheck:
    """Pre-trade limits (position weight, exposures, shorting, a price, and the optional limits
    that are set) over orders, in order: each passing order counts toward the next one's
    exposure. With a session the session's state counts too: its open orders, recent orders,
    the day's start, recent returns and a kill-switch halt. Nothing is sent."""
    context: RiskContext | None = None
    ts = datetime.now(UTC)
    if req.session_id is not None:
        held = await control.portfolio(mgr, req.session_id)
        config = await control.session_config(mgr, req.session_id)
        limits = req.limits or config.portfolio.limits
        prices = {**held.last_close, **req.prices}
        marks = {h.symbol: prices.get(h.symbol, held.mark(h)) for h in held.holdings}
        value = sum(h.quantity * marks[h.symbol] for h in held.holdings)
        gross = sum(abs(h.quantity * marks[h.symbol]) for h in held.holdings)
        positions = {h.symbol: h.quantity for h in held.holdings}
        account = AccountView(held.cash, held.cash + value, positions, gross)
        run = mgr.runs.get(req.session_id)
        if run is not None and run.last_bar in run.equity:
            ts = run.equity[run.last_bar][0]  # the session's clock
            context = run.risk_context(ts)
    else:
        assert req.account is not None
        limits = req.limits or RiskLimits()
        prices = dict(req.prices)
        value = gross = 0.0
        for symbol, qty in req.account.positions.items():
            if symbol in prices:
                value += qty * prices[symbol]
                gross += abs(qty) * prices[symbol]
        account = AccountView(
            req.account.cash, req.account.cash + value, dict(req.account.positions), gross
        )
    orders = [
        Order(
            client_order_id=o.client_order_id or f"check-{i + 1}",
            symbol=o.symbol,
            side=o.side,
            quantity=o.quantity,
            ts=ts,
            type=o.type,
            limit_price=o.limit_price,
            stop_price=o.stop_price,
            time_in_force=o.time_in_force,
        )
        for i, o in enumerate(req.orders)
    ]
    passed, refused = PreTradeRisk(limits).check(orders, account, prices, context)
    why = {id(o): reason for o, reason in refused}
    return LimitsCheck(
        limits=limits,
        equity=account.equity,
        gross_exposure=account.gross_exposure,
        passed=len(passed),
        refused=len(refused),
        orders=[
            CheckedOrder(
                client_order_id=o.client_order_id,
                symbol=o.symbol,
                side=o.side,
                quantity=o.quantity,
                passed=id(o) not in why,
                reason=why.get(id(o)),
            )
            for o in orders
        ],
    )


class PositionRisk(BaseModel):
    symbol: str
    quantity: float
    price: float
    market_value: float
    weight: float | None


class ValueAtRisk(BaseModel):
    confidence: float
    horizon_bars: int
    observations: int = Field(description="bar returns the estimate rests on")
    var: float = Field(description="loss not exceeded with `confidence`, a fraction of equity")
    var_amount: float
    expected_shortfall: float = Field(description="mean loss beyond the VaR, a fraction")
    expected_shortfall_amount: float


class PortfolioRisk(BaseModel):
    session_id: str
    as_of: datetime | None
    equity: float
    cash: float
    gross_exposure: float
    net_exposure: float
    leverage: float | None = Field(description="gross exposure / equity")
    net_leverage: float | None
    largest_weight: float | None
    limits: RiskLimits
    positions: list[PositionRisk]
    var: ValueAtRisk | None = Field(description="None until the session has enough bars")


MIN_RETURNS = 20


def historical_var(
    equity: pd.Series, confidence: float, window: int
) -> tuple[float, float, int] | None:
    """One-bar historical VaR and expected shortfall (fractions) of an equity curve."""
    values = equity.to_numpy(dtype=float)
    if len(values) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    returns = returns[np.isfinite(returns)][-window:]
    if len(returns) < MIN_RETURNS:
        return None
    cut = float(np.quantile(returns, 1.0 - confidence))
    tail = returns[returns <= cut]
    var = max(-cut, 0.0)
    es = max(-float(tail.mean()), var) if len(tail) else var
    return var, es, len(returns)


@router.get("/portfolio-risk", response_model=PortfolioRisk)
async def portfolio_risk(
    mgr: Manager,
    session_id: SessionQuery,
    confidence: Annotated[float, Query(ge=0.5, le=0.999, description="VaR level")] = 0.95,
    window: Annotated[int, Query(ge=MIN_RETURNS, le=1_000_000, description="bar returns")] = 250,
) -> PortfolioRisk:
    """Exposures, position weights and a one-bar historical VaR of a session's equity curve."""
    held = await control.portfolio(mgr, session_id)
    config = await control.session_config(mgr, session_id)
    equity = held.equity
    rows = []
    for h in held.holdings:
        price = held.mark(h)
        value = h.quantity * price
        rows.append(
            PositionRisk(
                symbol=h.symbol,
                quantity=h.quantity,
                price=price,
                market_value=value,
                weight=value / equity if equity > 0 else None,
            )
        )
    weights = [abs(r.weight) for r in rows if r.weight is not None]
    estimate = historical_var(mgr.equity_series(session_id), confidence, window)
    var = None
    if estimate is not None:
        v, es, n = estimate
        var = ValueAtRisk(
            confidence=confidence,
            horizon_bars=1,
            observations=n,
            var=v,
            var_amount=v * max(equity, 0.0),
            expected_shortfall=es,
            expected_shortfall_amount=es * max(equity, 0.0),
        )
    return PortfolioRisk(
        session_id=session_id,
        as_of=held.as_of,
        equity=equity,
        cash=held.cash,
        gross_exposure=held.gross_exposure,
        net_exposure=held.market_value,
        leverage=held.gross_exposure / equity if equity > 0 else None,
        net_leverage=held.market_value / equity if equity > 0 else None,
        largest_weight=max(weights) if weights else None,
        limits=config.portfolio.limits,
        positions=rows,
        var=var,
    )
