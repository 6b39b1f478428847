"""Portfolio construction settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from raytrader.risk.kill_switch import KillSwitchConfig
from raytrader.risk.limits import RiskLimits
from raytrader.risk.sizing import SizingConfig


class PortfolioConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lot_size: float = Field(1.0, ge=0, description="order quantity step; 0 = fractional")
    sizing: SizingConfig = SizingConfig()
    limits: RiskLimits = RiskLimits()
    kill_switch: KillSwitchConfig | None = Field(
        None, description="halt trading on a drawdown or a daily loss; None = off"
    )
