"""GET /api/risk/portfolio-risk: a session's exposures, and VaR / expected shortfall of its
positions and of its equity curve."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query
from pydantic import Field

from raytrader.orchestrator import control
from raytrader.orchestrator.api.common import (
    SessionQuery,
    field_error,
)
from raytrader.orchestrator.api.deps import Manager
from raytrader.orchestrator.api.risk.holdings import (
    all_finite,
    held_exposures,
    held_returns,
    position_rows,
    returns_used,
)
from raytrader.orchestrator.api.risk.returns import MIN_RETURNS, check_work, session_returns
from raytrader.orchestrator.api.risk.var_models import (
    PortfolioRisk,
    PositionsRisk,
    RiskMeasureOut,
    RiskProfileOut,
    ValueAtRisk,
)
from raytrader.risk.var import METHODS, historical_var_es
from raytrader.risk.var import Method as VarMethod
from raytrader.risk.var import portfolio_risk as var_report

router = APIRouter()


def equity_var(
    equity: pd.Series, confidence: float, window: int
) -> tuple[float, float, int] | None:
    """One-bar historical VaR and expected shortfall (fractions, at least 0) of the last
    ``window`` returns of an equity curve; None with fewer than ``MIN_RETURNS`` of them."""
    values = equity.to_numpy(dtype=float)
    if len(values) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    returns = returns[np.isfinite(returns)][-window:]
    if len(returns) < MIN_RETURNS:
        return None
    v = historical_var_es(returns, confidence)
    return max(v.var, 0.0), max(v.es, 0.0), len(returns)


def _positions_risk(
    frame: pd.DataFrame,
    exposures: Mapping[str, float],
    levels: tuple[float, ...],
    methods: tuple[VarMethod, ...],
    horizon: int,
) -> tuple[PositionsRisk | None, str | None]:
    with np.errstate(all="ignore"):
        try:
            report = var_report(frame, dict(exposures), levels, horizon, methods)
        except ValueError as exc:
            return None, f"no estimate: {exc}"
    short = report.bars < MIN_RETURNS or (
        "historical" in methods and report.observations < MIN_RETURNS
    )
    if short:
        return None, (
            f"too few complete returns: {report.bars} bars, {report.observations} windows of"
            f" {horizon} bars; need {MIN_RETURNS}"
        )

    def profile(p: Any) -> RiskProfileOut:
        return RiskProfileOut(
            name=p.name,
            value=p.value,
            measures=[
                RiskMeasureOut(method=m.method, confidence=m.confidence, var=m.var, es=m.es)
                for m in p.measures
            ],
        )

    out = PositionsRisk(
        horizon_bars=horizon,
        confidence_levels=list(levels),
        methods=list(methods),
        observations=report.observations,
        bars=report.bars,
        portfolio=profile(report.portfolio),
        positions=[profile(p) for p in report.positions],
    )
    if not all_finite(out.model_dump()):
        return None, "the estimates overflow"
    return out, None


Confidence = Annotated[float, Field(ge=0.5, le=0.999)]


@router.get("/portfolio-risk", response_model=PortfolioRisk)
async def portfolio_risk(
    mgr: Manager,
    session_id: SessionQuery,
    confidence: Annotated[
        list[Confidence] | None,
        Query(max_length=5, description="VaR levels, repeatable; default 0.95 and 0.99"),
    ] = None,
    window: Annotated[int, Query(ge=MIN_RETURNS, le=1_000_000, description="bar returns")] = 250,
    horizon: Annotated[int, Query(ge=1, le=250, description="bars the VaR spans")] = 1,
    method: Annotated[
        list[VarMethod] | None,
        Query(max_length=3, description="historical, gaussian, cornish_fisher; default all"),
    ] = None,
) -> PortfolioRisk:
    """Exposures and position weights; VaR and expected shortfall of today's positions, each
    on its own and together, over `horizon` bars, from the last `window` returns of their
    symbols (a replayed session's data up to its last bar), by each `method` at each level;
    and the one-bar historical VaR of the session's equity curve at the first level (`var`).

    `historical` takes the overlapping h-bar windows of compounded returns; `gaussian` and
    `cornish_fisher` (skewness and kurtosis) scale the one-bar moments to h bars.
    """
    levels = tuple(dict.fromkeys(confidence or (0.95, 0.99)))
    methods: tuple[VarMethod, ...] = tuple(dict.fromkeys(method or METHODS))
    if window - horizon + 1 < MIN_RETURNS:
        raise field_error(
            ("query", "horizon"),
            f"{window} returns hold {max(window - horizon + 1, 0)} windows of {horizon} bars;"
            f" need {MIN_RETURNS} (a longer window or a shorter horizon)",
        )
    held = await control.portfolio(mgr, session_id)
    config = await control.session_config(mgr, session_id)
    equity = held.equity
    rows = position_rows(held)
    weights = [abs(r.weight) for r in rows if r.weight is not None]
    estimate = equity_var(mgr.equity_series(session_id), levels[0], window)
    var = None
    if estimate is not None:
        v, es, n = estimate
        var = ValueAtRisk(
            confidence=levels[0],
            horizon_bars=1,
            observations=n,
            var=v,
            var_amount=v * max(equity, 0.0),
            expected_shortfall=es,
            expected_shortfall_amount=es * max(equity, 0.0),
        )
    exposures = held_exposures(held)
    returns = await session_returns(mgr, session_id, window, ("query", "window"), list(exposures))
    frame, note = held_returns(returns, exposures)
    report = used = None
    if frame is not None:
        check_work(
            len(frame) * horizon * len(exposures),
            ("query", "horizon"),
            f"{len(frame)} returns x {horizon} bars x {len(exposures)} positions",
        )
        used = returns_used(frame, returns.source)
        report, note = await asyncio.to_thread(
            _positions_risk, frame, exposures, levels, methods, horizon
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
        value_at_risk=report,
        returns=used,
        note=note,
    )
