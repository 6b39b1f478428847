"""Orders and their immutable lifecycle state."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime

from raytrader.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from raytrader.domain.time import ensure_utc


@dataclass(frozen=True, slots=True)
class Order:
    """An instruction to trade ``quantity`` of ``symbol``.

    Contingent orders (the paper broker implements them):

    * ``TRAILING_STOP``: a stop that follows the best price since the order started working,
      at a distance of ``trail_amount`` (in price units) or ``trail_percent`` (a fraction in
      (0, 1) of that best price); give exactly one of them.
    * ``oco_group``: orders sharing a non-empty id are one-cancels-other: the first fill of
      any of them, complete or partial, cancels the others.
    * ``parent_id``: a bracket child (take-profit, stop-loss) of the order with that id, on
      the same symbol and the opposite side. It is held until the parent's first fill and
      then sized to the parent's filled quantity (see ``raytrader.domain.bracket``).
    """

    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    ts: datetime
    type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    session_id: str = ""
    tag: str = ""
    trail_amount: float | None = None
    trail_percent: float | None = None
    oco_group: str = ""
    parent_id: str = ""

    def __post_init__(self) -> None:
        where = f"order {self.client_order_id!r}"
        ensure_utc(self.ts, f"{where} ts")
        if not self.client_order_id:
            raise ValueError("order: client_order_id must not be empty")
        if not (math.isfinite(self.quantity) and self.quantity > 0):
            raise ValueError(f"{where}: quantity must be a positive number, got {self.quantity}")
        needs_limit = self.type in (OrderType.LIMIT, OrderType.STOP_LIMIT)
        needs_stop = self.type in (OrderType.STOP, OrderType.STOP_LIMIT)
        if needs_limit != (self.limit_price is not None):
            raise ValueError(
                f"{where}: limit_price is {'required' if needs_limit else 'not allowed'}"
                f" for a {self.type} order"
            )
        if needs_stop != (self.stop_price is not None):
            raise ValueError(
                f"{where}: stop_price is {'required' if needs_stop else 'not allowed'}"
                f" for a {self.type} order"
            )
        for name, price in (("limit_price", self.limit_price), ("stop_price", self.stop_price)):
            if price is not None and not (math.isfinite(price) and price > 0):
                raise ValueError(f"{where}: {name} must be a positive number, got {price}")
        self._check_trail(where)
        if self.parent_id and self.parent_id == self.client_order_id:
            raise ValueError(f"{where}: parent_id must differ from client_order_id")

    def _check_trail(self, where: str) -> None:
        amount, percent = self.trail_amount, self.trail_percent
        if self.type != OrderType.TRAILING_STOP:
            for name, value in (("trail_amount", amount), ("trail_percent", percent)):
                if value is not None:
                    raise ValueError(f"{where}: {name} is not allowed for a {self.type} order")
            return
        if (amount is None) == (percent is None):
            raise ValueError(
                f"{where}: give exactly one of trail_amount and trail_percent for a"
                f" {self.type} order"
            )
        if amount is not None and not (math.isfinite(amount) and amount > 0):
            raise ValueError(f"{where}: trail_amount must be a positive number, got {amount}")
        if percent is not None and not 0.0 < percent < 1.0:
            raise ValueError(f"{where}: trail_percent must be in (0, 1), got {percent}")

    def trail_stop(self, best: float) -> float:
        """Stop price of a trailing stop whose best price so far is ``best``.

        A sell trails below the highest price (``best - amount`` or ``best * (1 - percent)``),
        a buy above the lowest (``best + amount`` or ``best * (1 + percent)``).
        """
        if self.trail_amount is not None:
            return best + self.trail_amount if self.side is Side.BUY else best - self.trail_amount
        percent = self.trail_percent
        if percent is None:
            raise ValueError(f"order {self.client_order_id!r}: not a trailing stop")
        return best * (1.0 + percent) if self.side is Side.BUY else best * (1.0 - percent)

    @property
    def signed_quantity(self) -> float:
        return self.side.sign * self.quantity


# Legal moves of the order state machine; anything else is an error.
_TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.NEW: frozenset({OrderStatus.ACCEPTED, OrderStatus.REJECTED, OrderStatus.CANCELLED}),
    OrderStatus.ACCEPTED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        }
    ),
}


class IllegalTransition(ValueError):
    """An order was asked to move to a status its current status cannot reach."""


@dataclass(frozen=True, slots=True)
class OrderState:
    """An order with its status, fills so far and the reason of its last change."""

    order: Order
    status: OrderStatus = OrderStatus.NEW
    filled_quantity: float = 0.0
    avg_fill_price: float = 0.0
    reason: str = ""
    updated: datetime | None = None

    @property
    def remaining(self) -> float:
        return self.order.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    def to(self, status: OrderStatus, ts: datetime, reason: str = "") -> OrderState:
        """Move to ``status``; raise ``IllegalTransition`` when the state machine forbids it."""
        if status not in _TRANSITIONS.get(self.status, frozenset()):
            raise IllegalTransition(
                f"order {self.order.client_order_id!r}: cannot go from {self.status} to {status}"
            )
        return OrderState(
            self.order,
            status,
            self.filled_quantity,
            self.avg_fill_price,
            reason or self.reason,
            ts,
        )

    def with_quantity(self, quantity: float, ts: datetime, reason: str = "") -> OrderState:
        """The same open order resized to ``quantity`` (a bracket child following its
        parent's fills); the status, fills and average price are kept."""
        if not self.is_open:
            raise IllegalTransition(
                f"order {self.order.client_order_id!r}: cannot resize in status {self.status}"
            )
        if not quantity > self.filled_quantity:
            raise ValueError(
                f"order {self.order.client_order_id!r}: quantity {quantity} must exceed the"
                f" filled quantity {self.filled_quantity}"
            )
        return OrderState(
            replace(self.order, quantity=quantity),
            self.status,
            self.filled_quantity,
            self.avg_fill_price,
            reason or self.reason,
            ts,
        )

    def with_fill(self, quantity: float, price: float, ts: datetime) -> OrderState:
        """Book a fill of ``quantity`` at ``price``; status becomes partially filled or filled."""
        total = self.order.quantity
        if quantity <= 0 or quantity > self.remaining + 1e-9 * total:
            raise ValueError(
                f"order {self.order.client_order_id!r}: fill of {quantity} exceeds remaining "
                f"{self.remaining}"
            )
        filled = self.filled_quantity + quantity
        avg = (self.avg_fill_price * self.filled_quantity + price * quantity) / filled
        done = filled >= total - 1e-9 * total
        status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        if status not in _TRANSITIONS.get(self.status, frozenset()):
            raise IllegalTransition(
                f"order {self.order.client_order_id!r}: cannot fill in status {self.status}"
            )
        return OrderState(self.order, status, total if done else filled, avg, self.reason, ts)
