"""Running execution algorithms and smart routing against venues, paper or live.

A ``Venue`` is anything that quotes a book and takes orders: ``CcxtBroker`` (live) or a
``PaperVenue`` (a paper broker that reads real books). ``route_and_submit`` splits an order
across venues by best price after fees (``routing.route_order``) and sends each leg as a
marketable limit order at the worst book price it was routed to, so no leg fills worse than
the books promised. ``run_schedule`` sends a parent's children (``algos``) when they are due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from raytrader.domain import Order, OrderState, OrderType, Side, TimeInForce
from raytrader.execution.algos import ChildSlice, child_orders
from raytrader.execution.paper_broker import PaperBroker
from raytrader.execution.routing import Level, Route, VenueBook, route_order

R = TypeVar("R")
Book = tuple[list[Level], list[Level]]  # (bids, asks), best first


class Venue(Protocol):
    """What routing needs of a venue."""

    async def order_book(self, symbol: str, depth: int = 20) -> Book: ...

    def taker_fee(self, symbol: str) -> float: ...

    async def submit(self, order: Order) -> OrderState: ...


@dataclass
class PaperVenue:
    """A paper broker quoting a real venue's book: orders never reach the venue, they fill
    in the paper broker against the bars it is given."""

    broker: PaperBroker
    books: Callable[[str, int], Awaitable[Book]]
    fee: float = 0.0

    async def order_book(self, symbol: str, depth: int = 20) -> Book:
        return await self.books(symbol, depth)

    def taker_fee(self, symbol: str) -> float:
        return self.fee

    async def submit(self, order: Order) -> OrderState:
        return self.broker.submit(order)


@dataclass(frozen=True, slots=True)
class RoutedOrder:
    """A routed order: the route chosen and each leg's order state, by venue."""

    route: Route
    states: dict[str, OrderState]


async def route_and_submit(
    order: Order,
    venues: Mapping[str, Venue],
    *,
    depth: int = 20,
    capacity: Mapping[str, float] | None = None,
    lot_size: float = 0.0,
) -> RoutedOrder:
    """Fetch every venue's book, route ``order`` and send one leg per venue chosen, with
    client id ``<order id>-<venue>``. What the books cannot fill is left unsent
    (``route.unrouted``)."""
    if order.type not in (OrderType.MARKET, OrderType.LIMIT):
        raise ValueError(f"order {order.client_order_id!r}: routing takes market or limit orders")
    names = list(venues)
    books = await asyncio.gather(*(venues[n].order_book(order.symbol, depth) for n in names))
    side_books = [
        VenueBook(
            n, book[1] if order.side is Side.BUY else book[0], venues[n].taker_fee(order.symbol)
        )
        for n, book in zip(names, books, strict=True)
    ]
    route = route_order(
        order.side,
        order.quantity,
        side_books,
        capacity=capacity,
        lot_size=lot_size,
        limit_price=order.limit_price,
    )
    tif = order.time_in_force if order.type is OrderType.LIMIT else TimeInForce.IOC
    legs = [
        replace(
            order,
            client_order_id=f"{order.client_order_id}-{leg.venue}",
            quantity=leg.quantity,
            type=OrderType.LIMIT,
            limit_price=leg.limit_price,
            time_in_force=tif,
            tag=order.tag or "routed",
        )
        for leg in route.legs
    ]
    states = await asyncio.gather(
        *(venues[leg.venue].submit(o) for leg, o in zip(route.legs, legs, strict=True))
    )
    return RoutedOrder(route, {leg.venue: s for leg, s in zip(route.legs, states, strict=True)})


def _now() -> datetime:
    return datetime.now(UTC)


async def run_schedule(
    parent: Order,
    schedule: Sequence[ChildSlice],
    submit: Callable[[Order], Awaitable[R]],
    *,
    clock: Callable[[], datetime] = _now,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> list[R]:
    """Send each child of ``parent`` when it is due (at once if it is late), in order, and
    return what ``submit`` returned for each. Child ids are ``<parent id>-<n>``: running a
    schedule again after a restart re-sends the same ids, which a broker rejects as
    duplicates, so no child is sent twice."""
    out: list[R] = []
    for child in child_orders(parent, schedule):
        wait = (child.ts - clock()).total_seconds()
        if wait > 0:
            await sleep(wait)
        out.append(await submit(replace(child, ts=max(child.ts, clock()))))
    return out
