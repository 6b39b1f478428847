"""Executions and positions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from raytrader.domain.enums import Side
from raytrader.domain.time import ensure_utc


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of (part of) an order. ``commission`` is in account currency."""

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    price: float
    commission: float
    ts: datetime
    fill_id: str = ""

    def __post_init__(self) -> None:
        ensure_utc(self.ts, f"fill {self.client_order_id!r} ts")
        if not (self.quantity > 0 and self.price > 0 and math.isfinite(self.quantity * self.price)):
            raise ValueError(
                f"fill {self.client_order_id!r}: quantity and price must be positive numbers, "
                f"got {self.quantity} at {self.price}"
            )
        if not math.isfinite(self.commission):
            raise ValueError(f"fill {self.client_order_id!r}: commission must be a number")

    @property
    def signed_quantity(self) -> float:
        return self.side.sign * self.quantity

    @property
    def notional(self) -> float:
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class Position:
    """Holding in one symbol: signed quantity, average cost and realized PnL so far."""

    symbol: str
    quantity: float = 0.0
    avg_cost: float = 0.0
    realized_pnl: float = 0.0

    def market_value(self, price: float) -> float:
        return self.quantity * price

    def unrealized_pnl(self, price: float) -> float:
        return self.quantity * (price - self.avg_cost)
