"""Response models of GET /api/risk/stress-test: PnL distributions of the scenarios."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    Field,
)

from raytrader.orchestrator.api.risk.holdings import PositionRisk, ReturnsUsed


class PnLSummary(BaseModel):
    """PnL samples (currency): count, mean, std, quantiles, VaR/ES at 95% and 99% (losses)."""

    n: int
    mean: float
    std: float
    q01: float
    q05: float
    q50: float
    q95: float
    q99: float
    var95: float
    es95: float
    var99: float
    es99: float


class ScenarioOut(BaseModel):
    rank: int = Field(description="1 = the worst")
    start: datetime | None = Field(description="the window's first bar return")
    end: datetime | None = Field(description="its last: the loss runs to this bar's close")
    pnl: float
    position_pnl: dict[str, float]


class HistoricalStress(BaseModel):
    """Every complete h-bar window of the returns replayed on today's positions."""

    windows: int
    distribution: PnLSummary
    worst: list[ScenarioOut] = Field(description="the worst windows that share no bar")


class MonteCarloStress(BaseModel):
    method: Literal["bootstrap", "normal"]
    paths: int
    seed: int = Field(description="the same seed gives the same paths")
    distribution: PnLSummary
    positions: dict[str, PnLSummary] = Field(description="each position's simulated PnL")


class ShockOut(BaseModel):
    shock: float = Field(description="the factor's return")
    pnl: float
    position_pnl: dict[str, float]


class FactorStress(BaseModel):
    """Single-factor shocks: PnL = sum of position x beta x shock (OLS betas on bar returns)."""

    factor: str = Field(description="a symbol, or 'basket'")
    basket: list[str] = Field(description="the basket's symbols (equal weights)")
    betas: dict[str, float | None] = Field(description="None: no estimate (counted as 0)")
    shocks: list[ShockOut]
    history: PnLSummary | None = Field(
        description="the factor's own h-bar moves over the returns taken as shocks"
    )


class StressTest(BaseModel):
    session_id: str
    as_of: datetime | None
    equity: float
    horizon_bars: int
    positions: list[PositionRisk]
    returns: ReturnsUsed
    historical: HistoricalStress | None
    monte_carlo: MonteCarloStress | None
    factor: FactorStress | None
    notes: list[str] = Field(description="why a part is None")
