"""Sizing and limits. Pure: no I/O."""

from raytrader.risk.covariance import check_covariance, covariance
from raytrader.risk.kelly import kelly_fraction, kelly_from_returns, win_rate_and_payoff
from raytrader.risk.limits import RiskLimits, clip_target
from raytrader.risk.mean_variance import mean_variance_weights
from raytrader.risk.risk_parity import risk_contributions, risk_parity_weights
from raytrader.risk.sizing import SizingConfig, atr_risk_unit, fixed_fractional, round_to_lot
from raytrader.risk.vol_target import (
    ewma_volatility,
    rolling_volatility,
    vol_target_scale,
    vol_target_units,
)

__all__ = [
    "RiskLimits",
    "SizingConfig",
    "atr_risk_unit",
    "check_covariance",
    "clip_target",
    "covariance",
    "ewma_volatility",
    "fixed_fractional",
    "kelly_fraction",
    "kelly_from_returns",
    "mean_variance_weights",
    "risk_contributions",
    "risk_parity_weights",
    "rolling_volatility",
    "round_to_lot",
    "vol_target_scale",
    "vol_target_units",
    "win_rate_and_payoff",
]
