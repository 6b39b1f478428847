"""Sizing and limits. Pure: no I/O."""

from raytrader.risk.limits import RiskLimits, clip_target
from raytrader.risk.sizing import SizingConfig, atr_risk_unit, fixed_fractional, round_to_lot

__all__ = [
    "RiskLimits",
    "SizingConfig",
    "atr_risk_unit",
    "clip_target",
    "fixed_fractional",
    "round_to_lot",
]
