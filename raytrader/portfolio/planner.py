"""The step between a decision and the market: last close's signals -> this open's orders."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from raytrader.domain import Order, Side, Signal
from raytrader.portfolio.allocation import combine_targets
from raytrader.portfolio.config import AgentCapital
from raytrader.portfolio.exits import attach_exits
from raytrader.portfolio.rebalancer import AccountView, Rebalancer
from raytrader.state.ledger import Ledger

#: Each agent's latest signal per symbol, keyed ``(agent, symbol)``, the most recent last.
Targets = dict[tuple[int, str], Signal]


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


def note_targets(targets: Targets, signals: Iterable[tuple[int, Signal]]) -> None:
    """Record the agents' signals as their latest targets (agent < 0, a manual signal, is no
    agent's target)."""
    for k, sig in signals:
        if k >= 0:
            targets.pop((k, sig.symbol), None)  # re-inserted: the most recent last
            targets[(k, sig.symbol)] = sig


@dataclass(frozen=True, slots=True)
class OrderPlan:
    """Orders to send now, after cancelling what still rests for ``cancel_symbols`` (but
    exits: they belong to the position). ``exits``: the exit children of an order (by its
    id), to send right after it if it passes the pre-trade checks."""

    cancel_symbols: tuple[str, ...]
    orders: tuple[Order, ...]
    owners: Mapping[str, int] = field(default_factory=dict)  # client order id -> agent index
    exits: Mapping[str, tuple[Order, ...]] = field(default_factory=dict)


class OrderPlanner:
    """Keeps the latest decision's signals and turns them into orders at the next open.

    Client order ids are ``{prefix}-{bar}-{k}``: the same bar planned twice (a restart that
    replays it) yields the same ids, so a venue or the journal can recognise a repeat.

    Without ``capital`` the latest signal of a symbol wins, whichever agent sent it. With it,
    the agents share the account: every agent's latest signal per symbol stands as its target
    (``targets``), read as a weight of its own capital, and a symbol some agent re-targets is
    traded to the net account weight ``sum_a c_a * w_a`` (``combine_targets``) with a market
    order. A weight signal gives ``w_a`` directly; a quantity or a direction (sized as the
    rebalancer sizes it) becomes a weight at the order-time price and equity, ``units x
    buy cost / equity``, so that an agent holding the whole capital gets its own units back. A
    target that cannot be sized (no finite number) counts as none. Manual signals (agent -1)
    are account targets: they bypass the netting and win for their symbols.

    With ``exits`` in the portfolio config, each order that opens or increases a position gets
    its exit children in ``OrderPlan.exits`` (see ``raytrader.portfolio.exits``).
    """

    def __init__(
        self, rebalancer: Rebalancer, id_prefix: str, capital: AgentCapital | None = None
    ) -> None:
        self.rebalancer = rebalancer
        self.id_prefix = id_prefix
        self.capital = capital
        self.pending: list[tuple[int, Signal]] = []
        self.targets: Targets = {}
        #: With capital weights: symbol -> agent label -> account weight now, and every change
        #: as ``(bar, symbol, contributions)``, the input of the attribution.
        self.contributions: dict[str, dict[str, float]] = {}
        self.allocation_log: list[tuple[int, str, dict[str, float]]] = []

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
        if self.capital is not None:
            pending = self._net(bar, pending, prices, account.equity, atr)
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
        config = self.rebalancer.config.exits
        exits = attach_exits(orders, account.positions, prices, config) if config else {}
        return OrderPlan(tuple(by_symbol), tuple(orders), owners, exits)

    def _net(
        self,
        bar: int,
        pending: list[tuple[int, Signal]],
        prices: Mapping[str, float],
        equity: float,
        atr: Callable[[str], float] | None,
    ) -> list[tuple[int, Signal]]:
        """The agents' signals of ``pending`` -> one net signal per symbol they touch (owned by
        the agent whose signal came last), then the manual signals."""
        capital = self.capital
        assert capital is not None
        note_targets(self.targets, pending)
        touched: dict[str, tuple[int, Signal]] = {}
        for k, sig in pending:
            if k >= 0:
                touched.pop(sig.symbol, None)  # the order of the latest signals
                touched[sig.symbol] = (k, sig)
        priced = {s for s in touched if _valid(prices.get(s, math.nan))}
        per_agent: dict[str, dict[str, float]] = {}
        for (k, symbol), sig in self.targets.items():
            if symbol in priced:
                w = self._weight(sig, prices[symbol], equity, atr)
                if math.isfinite(w):
                    per_agent.setdefault(capital.labels[k], {})[symbol] = w
        combined = combine_targets(capital.weights, per_agent).contributions
        out: list[tuple[int, Signal]] = []
        for symbol, (k, sig) in touched.items():
            if symbol not in priced:
                out.append((k, sig))  # no price: the rebalancer skips it and says so
                continue
            contrib = combined.get(symbol, {})
            self.contributions[symbol] = contrib
            self.allocation_log.append((bar, symbol, dict(contrib)))
            net = math.fsum(contrib.values())
            direction = int(math.copysign(1, net)) if net else 0
            reason = f"net: {sig.reason}" if sig.reason else "net"
            out.append((k, Signal(symbol, sig.ts, direction, weight=net, reason=reason)))
        out.extend((k, sig) for k, sig in pending if k < 0)
        return out

    def _weight(
        self, sig: Signal, price: float, equity: float, atr: Callable[[str], float] | None
    ) -> float:
        """The signal as a weight of the capital of the agent that sent it."""
        if sig.weight is not None:
            return sig.weight
        if not equity > 0:
            return math.nan
        units = self.rebalancer.target_quantity(sig, price, equity, atr)
        return units * self.rebalancer.unit_cost(price, Side.BUY) / equity


def _valid(price: float) -> bool:
    return math.isfinite(price) and price > 0
