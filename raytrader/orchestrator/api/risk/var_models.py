"""Response models of GET /api/risk/portfolio-risk: exposures, VaR and expected shortfall."""

from __future__ import annotations

from datetime import datetime

from pydantic import (
    BaseModel,
    Field,
)

from raytrader.orchestrator.api.risk.holdings import PositionRisk, ReturnsUsed
from raytrader.risk.limits import RiskLimits
from raytrader.risk.var import Method as VarMethod


class ValueAtRisk(BaseModel):
    confidence: float
    horizon_bars: int
    observations: int = Field(description="bar returns the estimate rests on")
    var: float = Field(description="loss not exceeded with `confidence`, a fraction of equity")
    var_amount: float
    expected_shortfall: float = Field(description="mean loss beyond the VaR, a fraction")
    expected_shortfall_amount: float


class RiskMeasureOut(BaseModel):
    method: VarMethod
    confidence: float
    var: float = Field(
        description="loss (currency) not exceeded with `confidence` over the horizon; negative"
        " when even that quantile is a gain"
    )
    es: float = Field(description="expected shortfall: the mean loss at or beyond the VaR")


class RiskProfileOut(BaseModel):
    name: str = Field(description="a symbol, or 'portfolio'")
    value: float = Field(description="market value; the portfolio's: the net of its positions")
    measures: list[RiskMeasureOut]


class PositionsRisk(BaseModel):
    """VaR and ES of each position on its own and of the portfolio (with diversification)."""

    horizon_bars: int
    confidence_levels: list[float]
    methods: list[VarMethod]
    observations: int = Field(description="complete h-bar windows of the historical estimates")
    bars: int = Field(description="complete bar returns of the parametric moments")
    portfolio: RiskProfileOut
    positions: list[RiskProfileOut] = Field(description="standalone: they do not add up")


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
    var: ValueAtRisk | None = Field(
        description="one-bar historical VaR of the equity curve at the first confidence level;"
        " None until the session has enough bars"
    )
    value_at_risk: PositionsRisk | None = Field(
        description="VaR/ES of today's positions from their symbols' recent returns; None (with"
        " `note`) without positions or enough returns"
    )
    returns: ReturnsUsed | None = Field(description="the returns `value_at_risk` rests on")
    note: str | None = Field(description="why `value_at_risk` is None")
