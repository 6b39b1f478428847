"""Trading cost models: commission per fill and adverse slippage on market-like fills."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from raytrader.domain import Side

_COST_CONFIG = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class CommissionModel(BaseModel):
    """Commission of ``bps`` basis points of the notional, at least ``minimum`` per fill."""

    model_config = _COST_CONFIG

    bps: float = Field(default=0.0, ge=0.0)
    minimum: float = Field(default=0.0, ge=0.0)

    def commission(self, notional: float) -> float:
        """Commission of one fill of ``notional`` (0 for a zero notional)."""
        if notional == 0.0:
            return 0.0
        return max(self.minimum, abs(notional) * self.bps / 1e4)

    def max_quantity(self, price: float, budget: float) -> float:
        """Largest quantity ``q`` with ``q * price + commission(q * price) <= budget``.

        The cost is ``q*p + max(minimum, q*p*rate)``, so both ``q*p + minimum <= budget``
        and ``q*p*(1 + rate) <= budget`` must hold; the answer is the smaller bound.
        """
        if not (budget > 0.0 and price > 0.0):
            return 0.0
        rate = self.bps / 1e4
        q = min((budget - self.minimum) / price, budget / (price * (1.0 + rate)))
        # The closed form can overshoot the budget by a few ulps; step down until it fits.
        for _ in range(64):
            if q <= 0.0 or q * price + self.commission(q * price) <= budget:
                break
            q -= q * 1e-15 + 1e-300
        return max(q, 0.0)


class SlippageModel(BaseModel):
    """Adverse slippage of ``bps`` basis points: buys pay more, sells receive less."""

    model_config = _COST_CONFIG

    # Below 10_000 bps so a sell price stays positive.
    bps: float = Field(default=0.0, ge=0.0, lt=10_000.0)

    def adjust(self, price: float, side: Side) -> float:
        """Price after slippage for an order of ``side``."""
        if side is Side.BUY:
            return price * (1.0 + self.bps / 1e4)
        return price * (1.0 - self.bps / 1e4)
