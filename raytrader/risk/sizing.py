"""Position sizing: how many units a target is worth."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def fixed_fractional(equity: float, fraction: float, unit_cost: float) -> float:
    """Units worth ``fraction`` of ``equity`` when each unit costs ``unit_cost`` (fees included)."""
    if unit_cost <= 0 or not math.isfinite(unit_cost):
        return 0.0
    return equity * fraction / unit_cost


def atr_risk_unit(equity: float, risk_factor: float, atr: float, point_value: float = 1.0) -> float:
    """Units such that a one-ATR move changes equity by ``risk_factor`` (equity x rf / ATR)."""
    if not (atr > 0 and math.isfinite(atr)):
        return 0.0
    return equity * risk_factor / (atr * point_value)


def round_to_lot(quantity: float, lot_size: float) -> float:
    """Round toward zero to a multiple of ``lot_size`` (0 means any quantity)."""
    if lot_size <= 0:
        return quantity
    # The epsilon keeps 2.9999999999 (float noise) from flooring to 2.
    lots = math.floor(abs(quantity) / lot_size + 1e-9)
    return math.copysign(lots * lot_size, quantity) if lots else 0.0


class SizingConfig(BaseModel):
    """How direction-only signals are sized."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    method: Literal["fixed_fractional", "atr_risk"] = "fixed_fractional"
    fraction: float = Field(1.0, gt=0, le=10, description="fixed_fractional: share of equity")
    risk_factor: float = Field(0.001, gt=0, le=1, description="atr_risk: equity x rf / ATR")
    atr_period: int = Field(20, ge=1, le=1000)
