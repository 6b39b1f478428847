"""The execution side of one session: its paper broker and its ledger."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from raytrader.agents.host import AccountSnapshot
from raytrader.domain import Fill, Order, OrderState
from raytrader.domain.bar import BarTuple
from raytrader.execution.exits import cancel_reduced_exits, sync_exits
from raytrader.execution.paper_broker import PaperBroker, PaperBrokerConfig
from raytrader.portfolio.planner import account_at
from raytrader.portfolio.rebalancer import AccountView
from raytrader.state.ledger import Ledger


class SessionBook:
    """Orders in, fills booked, the account out; the same broker and ledger as a backtest."""

    def __init__(
        self, initial_cash: float, broker: PaperBrokerConfig, symbols: Sequence[str]
    ) -> None:
        self.ledger = Ledger(initial_cash)
        self.broker = PaperBroker(broker, buying_power=lambda: self.ledger.cash)
        self.symbols = tuple(symbols)
        self.last_close: dict[str, float] = {}

    def account(self, prices: Mapping[str, float]) -> AccountView:
        return account_at(self.ledger, prices)

    def submit(
        self, cancel_symbols: Sequence[str], orders: Sequence[Order], ts: datetime
    ) -> list[OrderState]:
        """Cancel what rests for ``cancel_symbols`` (superseded; not the exits: they belong to
        the position), then submit ``orders``; an order that reduces a position cancels its
        exits first (``raytrader.execution.exits``). Returns the states of the cancels and of
        ``orders``; those exit cancels stay in the broker's journal only."""
        states = []
        broker = self.broker
        for symbol in cancel_symbols:
            for st in broker.open_orders(symbol):
                if not st.order.parent_id:
                    cid = st.order.client_order_id
                    states.append(broker.cancel(cid, ts, "superseded by a new signal"))
        for order in orders:
            if not order.parent_id:
                held = self.ledger.position(order.symbol).quantity
                cancel_reduced_exits(
                    broker, held, order.side, order.symbol, order.client_order_id, ts
                )
            states.append(broker.submit(order))
        return states

    def on_bar(self, ts: datetime, bars: Mapping[str, BarTuple]) -> list[Fill]:
        """Match open orders against this bar, book the fills, remember the closes."""
        fills: list[Fill] = []
        if self.broker.open_symbols:
            live = {s: bars[s] for s in self.broker.open_symbols if s in bars}
            for fill in self.broker.on_bars(ts, live):
                self.ledger.apply_fill(fill)
                fills.append(fill)
            if fills:
                held = {s: p.quantity for s, p in self.ledger.positions().items()}
                sync_exits(self.broker, held, dict.fromkeys(f.symbol for f in fills), ts)
        for symbol, bar in bars.items():
            self.last_close[symbol] = bar[3]
        return fills

    def cancel_all(self, ts: datetime, reason: str) -> list[OrderState]:
        return [
            self.broker.cancel(st.order.client_order_id, ts, reason)
            for st in self.broker.open_orders()
        ]

    def equity(self) -> float:
        return marked_equity(self.ledger, self.symbols, self.last_close)

    def at_close(self) -> AccountSnapshot:
        positions = {s: p.quantity for s, p in self.ledger.positions().items()}
        marks = {s: self.last_close[s] for s in positions if s in self.last_close}
        return AccountSnapshot(self.ledger.cash, self.ledger.equity(marks), positions)

    def snapshot(self) -> dict[str, Any]:
        return {
            "ledger": self.ledger.snapshot(),
            "broker": self.broker.snapshot(),
            "last_close": dict(self.last_close),
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        self.ledger = Ledger.from_snapshot(snapshot["ledger"])
        self.broker = PaperBroker(self.broker.config, buying_power=lambda: self.ledger.cash)
        self.broker.restore(snapshot["broker"])
        self.last_close = dict(snapshot["last_close"])


def marked_equity(ledger: Ledger, symbols: Sequence[str], last_close: Mapping[str, float]) -> float:
    """Cash plus holdings at their last close, summed in symbol order as a backtest does."""
    held = 0.0
    for symbol in symbols:
        pos = ledger.positions().get(symbol)
        if pos is not None:
            held += pos.quantity * last_close.get(symbol, 0.0)
    return ledger.cash + held
