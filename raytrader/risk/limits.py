"""Basic portfolio limits applied to targets before orders are made."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RiskLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_weight: float = Field(1.0, gt=0, le=10, description="|position| / equity")
    max_gross_exposure: float = Field(1.0, gt=0, le=20, description="sum |positions| / equity")
    allow_short: bool = False


def clip_target(
    target: float, price: float, equity: float, limits: RiskLimits
) -> tuple[float, str]:
    """Clip a target quantity to the per-position limits; return it and why it was cut."""
    if target < 0 and not limits.allow_short:
        return 0.0, "short selling not allowed"
    cap = limits.max_position_weight * max(equity, 0.0) / price
    if abs(target) > cap:
        return (cap if target > 0 else -cap), "max_position_weight"
    return target, ""
