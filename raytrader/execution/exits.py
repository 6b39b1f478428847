"""Exits follow their position: at most one exit group per position, never larger than it.

Exits are bracket children (``Order.parent_id``; see ``raytrader.portfolio.exits`` for the
ones ``PortfolioConfig.exits`` attaches, and smart trades). The broker activates them when
their entry fills; these two steps keep them in line with the position after that:

* ``cancel_reduced_exits``, before an order is submitted: an order that reduces or closes the
  position (not itself an exit) cancels the position's working exits, so the order and an
  exit cannot both fill and flip the position.
* ``sync_exits``, after a bar's fills are booked: a flat position's exits are cancelled, as
  are those on the wrong side after a reversal; of several groups (an increase's entry
  filled) the oldest is kept and the others cancelled; the kept group is resized to the
  position when the position grew, and cancelled when it shrank.

A child's group is its parent: bracket children of one entry are one OCO group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from raytrader.domain import OrderState, Side
from raytrader.execution.paper_broker import PaperBroker

# Relative tolerance on quantities, as the broker's.
_QTY_EPS = 1e-9


def working_exits(broker: PaperBroker, symbol: str) -> dict[str, list[OrderState]]:
    """The working (not held) exits of ``symbol`` by their entry's id, oldest first."""
    groups: dict[str, list[OrderState]] = {}
    for st in broker.open_orders(symbol):
        if st.order.parent_id:
            groups.setdefault(st.order.parent_id, []).append(st)
    return groups


def cancel_reduced_exits(
    broker: PaperBroker, position: float, order_side: Side, symbol: str, cid: str, ts: datetime
) -> None:
    """Cancel the working exits of ``symbol`` when an order ``cid`` on ``order_side`` reduces
    ``position`` (the caller leaves exits themselves out)."""
    if position == 0.0 or (position > 0) == (order_side is Side.BUY):
        return
    for members in working_exits(broker, symbol).values():
        for st in members:
            broker.cancel(st.order.client_order_id, ts, f"exits: {cid} reduces the position")


def sync_exits(
    broker: PaperBroker, positions: Mapping[str, float], symbols: Iterable[str], ts: datetime
) -> None:
    """Bring the working exits of ``symbols`` in line with ``positions`` (see the module)."""
    for symbol in symbols:
        groups = working_exits(broker, symbol)
        if not groups:
            continue
        q = positions.get(symbol, 0.0)
        exit_side = Side.SELL if q > 0 else Side.BUY
        keep = ""
        if q != 0.0:
            keep = next(
                (p for p, m in groups.items() if all(st.order.side is exit_side for st in m)), ""
            )
        size = abs(q)
        for parent, members in groups.items():
            if parent == keep:
                continue
            if q == 0.0:
                why = "exits: position closed"
            elif members[0].order.side is not exit_side:
                why = "exits: position reversed"
            else:
                why = f"exits: merged into the exits of {keep}"
            for st in members:
                broker.cancel(st.order.client_order_id, ts, why)
        if not keep:
            continue
        kept = groups[keep]
        if any(st.remaining > size * (1 + _QTY_EPS) for st in kept):
            for st in kept:
                broker.cancel(st.order.client_order_id, ts, f"exits: position reduced to {q:g}")
            continue
        for st in kept:
            if st.remaining < size * (1 - _QTY_EPS):
                broker.resize(
                    st.order.client_order_id,
                    st.filled_quantity + size,
                    ts,
                    f"exits: position now {q:g}",
                )
