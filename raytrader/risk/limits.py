"""Portfolio limits: applied to targets before orders are made, and to orders before they go out.

``max_position_weight``, ``max_gross_exposure`` and ``allow_short`` also cut targets
(``clip_target`` and the rebalancer); the optional limits below are pre-trade checks only
(``PreTradeRisk``). An optional limit left at None is off: the defaults behave exactly as
the three basic limits alone.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RiskLimits(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_weight: float = Field(1.0, gt=0, le=10, description="|position| / equity")
    max_gross_exposure: float = Field(1.0, gt=0, le=20, description="sum |positions| / equity")
    allow_short: bool = False
    max_net_exposure: float | None = Field(
        None, gt=0, le=20, description="|sum of signed positions| / equity; None = off"
    )
    max_open_orders: int | None = Field(
        None, ge=1, le=1_000_000, description="orders working at once, a new one included"
    )
    max_order_notional: float | None = Field(
        None,
        gt=0,
        le=1e15,
        description="quantity x price (the limit or stop price if the order has one)",
    )
    price_band: float | None = Field(
        None,
        gt=0,
        le=10,
        description="|limit or stop price / last price - 1| of limit and stop orders",
    )
    max_orders_per_minute: int | None = Field(
        None, ge=1, le=1_000_000, description="orders sent within 60 s of the order's time"
    )
    daily_loss_limit: float | None = Field(
        None,
        gt=0,
        le=1,
        description="loss since the day's start / day-start equity beyond which orders that "
        "add exposure are refused",
    )
    max_correlation: float | None = Field(
        None,
        gt=-1,
        le=1,
        description="return correlation (signed by the positions' sides) of an opened or "
        "increased position with any other holding",
    )
    max_var: float | None = Field(
        None,
        gt=0,
        le=1,
        description="one-bar historical VaR at 95% of the portfolio after the order / equity",
    )
    risk_lookback: int = Field(
        60, ge=10, le=100_000, description="bar returns max_correlation and max_var look at"
    )

    @property
    def needs_returns(self) -> bool:
        """Whether the checks need recent returns (``RiskContext.returns``)."""
        return self.max_correlation is not None or self.max_var is not None

    @property
    def extended(self) -> list[str]:
        """The optional pre-trade limits that are on (not None), by name."""
        return [name for name in _OPTIONAL if getattr(self, name) is not None]


_OPTIONAL = (
    "max_net_exposure",
    "max_open_orders",
    "max_order_notional",
    "price_band",
    "max_orders_per_minute",
    "daily_loss_limit",
    "max_correlation",
    "max_var",
)


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
