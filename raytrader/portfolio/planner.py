"""The step between a decision and the market: last close's signals -> this open's orders."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from raytrader.domain import Order, Signal
from raytrader.portfolio.rebalancer import AccountView, Rebalancer
from raytrader.state.ledger import Ledger


def account_at(ledger: Ledger, prices: Mapping[str, float]) -> AccountView:
    """The ledger's account marked at ``prices`` (holdings without a price count as zero)."""
    return marked_account(
        ledger.cash, {s: p.quantity for s, p in ledger.positions().items()}, prices
    )


def marked_account(
    cash: float, positions: Mapping[str, float], prices: Mapping[str, float]
) -> AccountView:
    """Cash and holdings (in the ledger's order) marked at ``prices``."""
    value = gross = 0.0
    for s, q in positions.items():
        price = prices.get(s, math.nan)
        if price == price:
            value += q * price
            gross += abs(q) * price
    return AccountView(cash, cash + value, dict(positions), gross)


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """Orders to send now, after cancelling what still rests for ``cancel_symbols``."""

    cancel_symbols: tuple[str, ...]
    orders: tuple[Order, ...]
    owners: Mapping[str, int] = field(default_factory=dict)  # client order id -> agent index


class OrderPlanner:
    """Keeps the latest decision's signals and turns them into orders at the next open.

    Client order ids are ``{prefix}-{bar}-{k}``: the same bar planned twice (a restart that
    replays it) yields the same ids, so a venue or the journal can recognise a repeat.
    """

    def __init__(self, rebalancer: Rebalancer, id_prefix: str) -> None:
        self.rebalancer = rebalancer
        self.id_prefix = id_prefix
        self.pending: list[tuple[int, Signal]] = []

    def add(self, agent: int, signals: Sequence[Signal]) -> None:
        self.pending.extend((agent, s) for s in signals)

    def plan(
        self,
        bar: int,
        ts: datetime,
        prices: Mapping[str, float],
        account: AccountView,
        atr: Callable[[str], float] | None = None,
    ) -> OrderPlan:
        """Orders for the pending signals at ``prices`` (this bar's open); clears them."""
        if not self.pending:
            return OrderPlan((), ())
        pending, self.pending = self.pending, []
        by_symbol = {sig.symbol: k for k, sig in pending}
        k = 0

        def next_id() -> str:
            nonlocal k
            k += 1
            return f"{self.id_prefix}-{bar}-{k}"

        orders = self.rebalancer.orders(
            [sig for _, sig in pending], prices, account, ts, next_id, atr
        )
        owners = {o.client_order_id: by_symbol[o.symbol] for o in orders}
        return OrderPlan(tuple(by_symbol), tuple(orders), owners)
