"""Bracket orders: an entry plus exit children that are live only once the entry fills."""

from __future__ import annotations

import math

from raytrader.domain.enums import OrderType, Side, TimeInForce
from raytrader.domain.order import Order

#: Suffixes of the children's client order ids, and of the children's OCO group id.
TAKE_PROFIT_SUFFIX = "-tp"
STOP_LOSS_SUFFIX = "-sl"
TRAILING_STOP_SUFFIX = "-ts"
OCO_SUFFIX = "-oco"


def bracket(
    entry: Order,
    take_profit: float | None = None,
    stop_loss: float | None = None,
    trail_percent: float | None = None,
    trail_amount: float | None = None,
    *,
    time_in_force: TimeInForce = TimeInForce.GTC,
) -> list[Order]:
    """``entry`` followed by its exit children, in the order they are to be submitted.

    The children are on the entry's symbol and the opposite side, one OCO group
    (``<entry id>-oco``), with ``parent_id`` the entry's id:

    * ``<entry id>-tp``: a limit order at ``take_profit``;
    * ``<entry id>-sl``: a stop order at ``stop_loss``;
    * ``<entry id>-ts``: a trailing stop, ``trail_percent`` or ``trail_amount`` from the
      best price since the entry filled.

    Give at least one exit. They are submitted with the entry's quantity; the broker holds
    them until the entry's first fill and then sizes them to its filled quantity. For a
    buy entry the take-profit must lie above the stop-loss (below for a sell), and both on
    their side of the entry's limit or stop price when it has one.
    """
    where = f"bracket {entry.client_order_id!r}"
    if entry.parent_id:
        raise ValueError(f"{where}: the entry must not itself be a child (parent_id is set)")
    trailing = trail_percent is not None or trail_amount is not None
    if take_profit is None and stop_loss is None and not trailing:
        raise ValueError(
            f"{where}: give at least one of take_profit, stop_loss, trail_percent, trail_amount"
        )
    for name, price in (("take_profit", take_profit), ("stop_loss", stop_loss)):
        if price is not None and not (math.isfinite(price) and price > 0):
            raise ValueError(f"{where}: {name} must be a positive number, got {price}")
    buy = entry.side is Side.BUY
    above, below = ("above", "below") if buy else ("below", "above")
    if take_profit is not None and stop_loss is not None and (take_profit > stop_loss) != buy:
        raise ValueError(
            f"{where}: take_profit {take_profit} must be {above} stop_loss {stop_loss}"
            f" for a {entry.side} entry"
        )
    name, reference = _reference(entry)
    if reference is not None:
        if take_profit is not None and (take_profit > reference) != buy:
            raise ValueError(
                f"{where}: take_profit {take_profit} must be {above} the entry's {name}"
                f" {reference} for a {entry.side} entry"
            )
        if stop_loss is not None and (stop_loss < reference) != buy:
            raise ValueError(
                f"{where}: stop_loss {stop_loss} must be {below} the entry's {name}"
                f" {reference} for a {entry.side} entry"
            )
    cid = entry.client_order_id
    exit_side = Side.SELL if buy else Side.BUY

    def child(
        suffix: str,
        kind: OrderType,
        limit_price: float | None = None,
        stop_price: float | None = None,
    ) -> Order:
        trail = kind is OrderType.TRAILING_STOP
        return Order(
            client_order_id=cid + suffix,
            symbol=entry.symbol,
            side=exit_side,
            quantity=entry.quantity,
            ts=entry.ts,
            type=kind,
            limit_price=limit_price,
            stop_price=stop_price,
            time_in_force=time_in_force,
            session_id=entry.session_id,
            tag=entry.tag,
            trail_amount=trail_amount if trail else None,
            trail_percent=trail_percent if trail else None,
            oco_group=cid + OCO_SUFFIX,
            parent_id=cid,
        )

    out = [entry]
    if take_profit is not None:
        out.append(child(TAKE_PROFIT_SUFFIX, OrderType.LIMIT, limit_price=take_profit))
    if stop_loss is not None:
        out.append(child(STOP_LOSS_SUFFIX, OrderType.STOP, stop_price=stop_loss))
    if trailing:
        out.append(child(TRAILING_STOP_SUFFIX, OrderType.TRAILING_STOP))
    return out


def _reference(entry: Order) -> tuple[str, float | None]:
    """The price the entry is expected to fill near, if it names one."""
    if entry.type in (OrderType.LIMIT, OrderType.STOP_LIMIT):
        return "limit_price", entry.limit_price
    if entry.type is OrderType.STOP:
        return "stop_price", entry.stop_price
    return "", None
