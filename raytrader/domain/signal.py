"""What an agent wants: a target for one symbol, sized later by the portfolio."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from raytrader.domain.enums import OrderType, TimeInForce
from raytrader.domain.time import ensure_utc


@dataclass(frozen=True, slots=True)
class Signal:
    """A target position for ``symbol``.

    Give at most one of ``weight`` (fraction of equity, signed) and ``quantity`` (signed units).
    With neither, ``direction`` (-1, 0, +1) is sized by the portfolio's sizer. ``strength`` in
    [0, 1] is the agent's confidence (ensembles weight by it).
    """

    symbol: str
    ts: datetime
    direction: int = 0
    weight: float | None = None
    quantity: float | None = None
    strength: float = 1.0
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    reason: str = ""

    def __post_init__(self) -> None:
        ensure_utc(self.ts, f"signal {self.symbol} ts")
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"signal {self.symbol}: direction must be -1, 0 or 1")
        if self.weight is not None and self.quantity is not None:
            raise ValueError(f"signal {self.symbol}: give weight or quantity, not both")
        if not 0.0 <= self.strength <= 1.0:
            raise ValueError(f"signal {self.symbol}: strength {self.strength} outside [0, 1]")

    @property
    def is_exit(self) -> bool:
        """True when the target is flat."""
        if self.weight is not None:
            return self.weight == 0.0
        if self.quantity is not None:
            return self.quantity == 0.0
        return self.direction == 0
