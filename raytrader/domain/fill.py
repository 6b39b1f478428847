"""Executions and positions."""

from __future__ import annotations

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
        if self.quantity <= 0 or self.price <= 0:
            raise ValueError(f"fill {self.client_order_id!r}: quantity and price must be positive")

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
