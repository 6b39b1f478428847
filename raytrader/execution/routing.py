"""Smart order routing: split an order across venues by best price after fees (pure).

Every venue's book side (asks for a buy, bids for a sell) is priced after that venue's taker fee
(``price * (1 + fee)`` to buy, ``price * (1 - fee)`` to sell), and the order takes the best
levels of all venues together until it is filled or the books (or the venues' capacities, e.g.
the balance available there) run out. Ties go to the venue listed first.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from raytrader.domain import Side

Level = tuple[float, float]  # (price, size)

_EPS = 1e-12


@dataclass(frozen=True, slots=True)
class VenueBook:
    """One venue's side of the book for one symbol, best level first, and its taker fee."""

    venue: str
    levels: Sequence[Level]
    taker_fee: float = 0.0

    def __post_init__(self) -> None:
        if not self.venue:
            raise ValueError("a venue book needs the venue's name")
        if not (math.isfinite(self.taker_fee) and 0.0 <= self.taker_fee < 1.0):
            raise ValueError(f"venue {self.venue!r}: taker_fee must be in [0, 1)")
        for price, size in self.levels:
            if not (math.isfinite(price) and price > 0 and math.isfinite(size) and size >= 0):
                raise ValueError(f"venue {self.venue!r}: bad book level ({price}, {size})")


@dataclass(frozen=True, slots=True)
class RouteLeg:
    """What to send to one venue: quantity, the worst book price taken (a limit that the
    levels chosen satisfy) and the average price before and after fees."""

    venue: str
    quantity: float
    limit_price: float
    avg_price: float
    avg_price_after_fees: float


@dataclass(frozen=True, slots=True)
class Route:
    side: Side
    quantity: float
    legs: list[RouteLeg] = field(default_factory=list)

    @property
    def routed(self) -> float:
        return math.fsum(leg.quantity for leg in self.legs)

    @property
    def unrouted(self) -> float:
        return max(0.0, self.quantity - self.routed)

    @property
    def avg_price_after_fees(self) -> float:
        """Average price per unit after fees of what is routed (0 when nothing is)."""
        q = self.routed
        if q <= 0:
            return 0.0
        return math.fsum(leg.quantity * leg.avg_price_after_fees for leg in self.legs) / q


def _floor_lot(quantity: float, lot: float) -> float:
    return quantity if lot <= 0 else math.floor(quantity / lot + 1e-9) * lot


def route_order(
    side: Side,
    quantity: float,
    books: Sequence[VenueBook],
    *,
    capacity: Mapping[str, float] | None = None,
    lot_size: float = 0.0,
    limit_price: float | None = None,
) -> Route:
    """The legs that fill ``quantity`` at the best prices after fees.

    ``capacity`` caps the quantity per venue (venues absent from it are uncapped);
    ``lot_size`` rounds each leg down to a multiple; ``limit_price`` (before fees) excludes
    levels worse than it. What the books cannot fill is ``Route.unrouted``.
    """
    if not (math.isfinite(quantity) and quantity > 0):
        raise ValueError(f"quantity to route must be a positive number, got {quantity}")
    names = [b.venue for b in books]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate venues in {names}")
    buy = side is Side.BUY
    sign = 1.0 if buy else -1.0
    # (price after fees, venue rank, price, size, venue)
    candidates: list[tuple[float, int, float, float, str]] = []
    for rank, book in enumerate(books):
        for price, size in book.levels:
            if limit_price is not None and (price > limit_price if buy else price < limit_price):
                continue
            if size > 0:
                net = price * (1.0 + sign * book.taker_fee)
                candidates.append((net, rank, price, size, book.venue))
    candidates.sort(key=lambda c: (sign * c[0], c[1]))
    left = dict(capacity or {})
    taken: dict[str, list[tuple[float, float, float]]] = {}  # venue -> (qty, price, net)
    remaining = quantity
    for net, _rank, price, size, venue in candidates:
        if remaining <= _EPS * quantity:
            break
        qty = min(size, remaining, left.get(venue, math.inf))
        if qty <= 0:
            continue
        taken.setdefault(venue, []).append((qty, price, net))
        remaining -= qty
        if venue in left:
            left[venue] -= qty
    legs: list[RouteLeg] = []
    for venue in names:  # legs in the order the venues were given
        fills = taken.get(venue)
        if not fills:
            continue
        total = math.fsum(q for q, _, _ in fills)
        qty = _floor_lot(total, lot_size)
        if qty <= 0:
            continue
        prices = [p for _, p, _ in fills]
        legs.append(
            RouteLeg(
                venue=venue,
                quantity=qty,
                limit_price=max(prices) if buy else min(prices),
                avg_price=math.fsum(q * p for q, p, _ in fills) / total,
                avg_price_after_fees=math.fsum(q * n for q, _, n in fills) / total,
            )
        )
    return Route(side, quantity, legs)
