"""POST /api/risk/check-limits: the pre-trade checks over proposed orders, nothing sent."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter

from raytrader.domain import Order
from raytrader.orchestrator import control
from raytrader.orchestrator.api.deps import Manager
from raytrader.orchestrator.api.risk.limits_models import (
    CheckedOrder,
    CheckLimitsRequest,
    LimitsCheck,
)
from raytrader.portfolio.rebalancer import AccountView
from raytrader.risk.checks import PreTradeRisk, RiskContext
from raytrader.risk.limits import RiskLimits

router = APIRouter()


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
