"""What the execution actor holds per session: a broker and its ledger behind one interface.

``PaperSession`` is the paper broker matching bars (the backtest's own broker and ledger);
``raytrader.orchestrator.live_session.LiveSession`` sends the orders to an exchange through
``CcxtBroker``. The execution actor and the session driver only see ``SessionBroker``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from raytrader.agents.host import AccountSnapshot
from raytrader.domain import Fill, Order, OrderState
from raytrader.domain.bar import BarTuple
from raytrader.execution.book import SessionBook

#: What a bar's step returns: the fills, the order changes since the last call, the equity at
#: the close, the account at the close, the book's snapshot when anything changed (else None)
#: and why the broker stopped sending orders ("" while it runs).
StepResult = tuple[list[Fill], list[OrderState], float, AccountSnapshot, dict[str, Any] | None, str]


class SessionBroker(Protocol):
    """One session's orders and ledger, as the execution actor drives them."""

    @property
    def symbols(self) -> tuple[str, ...]: ...

    async def step(
        self,
        ts: datetime,
        bars: Mapping[str, BarTuple],
        cancel_symbols: Sequence[str],
        orders: Sequence[Order],
    ) -> StepResult:
        """Submit this open's orders (after cancelling what rests for ``cancel_symbols``),
        learn this bar's fills and book them once."""
        ...

    async def stop(self, ts: datetime) -> tuple[list[OrderState], list[Fill]]:
        """Cancel every open order (the session stops); the order changes and the fills not
        reported yet (a live order filled between the last bar and the stop)."""
        ...

    async def halt(
        self, ts: datetime, reason: str, orders: Sequence[Order]
    ) -> tuple[list[OrderState], dict[str, Any]]:
        """Cancel every open order with ``reason``, submit ``orders``; changes and snapshot."""
        ...

    async def place(
        self, orders: Sequence[Order], ts: datetime
    ) -> tuple[list[OrderState], dict[str, Any]]:
        """Submit orders between two bars; their states and the snapshot."""
        ...

    async def cancel(
        self, client_order_id: str, ts: datetime, reason: str
    ) -> tuple[str, OrderState | None]:
        """``("cancelled", state)``, ``("terminal", state)`` or ``("unknown", None)``."""
        ...

    def resume(self) -> None:
        """Send orders again after a pause."""
        ...

    async def close(self) -> None:
        """Release connections (the session is dropped from the actor)."""
        ...

    def snapshot(self) -> dict[str, Any]: ...

    def orders(self) -> list[OrderState]: ...

    def order(self, client_order_id: str) -> OrderState | None: ...

    def positions(self) -> dict[str, Any]: ...

    def portfolio(self) -> dict[str, Any]: ...


class PaperSession:
    """The paper broker and ledger of a session (``SessionBook``): fills from the bars."""

    def __init__(self, book: SessionBook) -> None:
        self.book = book

    @property
    def symbols(self) -> tuple[str, ...]:
        return self.book.symbols

    async def step(
        self,
        ts: datetime,
        bars: Mapping[str, BarTuple],
        cancel_symbols: Sequence[str],
        orders: Sequence[Order],
    ) -> StepResult:
        book = self.book
        if cancel_symbols or orders:
            book.submit(cancel_symbols, orders, ts)
        fills = book.on_bar(ts, bars)
        changes = book.broker.drain_journal()
        snapshot = book.snapshot() if changes or fills else None
        return fills, changes, book.equity(), book.at_close(), snapshot, ""

    async def stop(self, ts: datetime) -> tuple[list[OrderState], list[Fill]]:
        self.book.cancel_all(ts, "session stopped")
        return self.book.broker.drain_journal(), []  # paper fills happen at bars only

    async def halt(
        self, ts: datetime, reason: str, orders: Sequence[Order]
    ) -> tuple[list[OrderState], dict[str, Any]]:
        book = self.book
        book.cancel_all(ts, reason)
        book.submit((), orders, ts)
        return book.broker.drain_journal(), book.snapshot()

    async def place(
        self, orders: Sequence[Order], ts: datetime
    ) -> tuple[list[OrderState], dict[str, Any]]:
        # The changes stay in the broker's journal for the driver's next step.
        states = self.book.submit((), orders, ts)
        return states, self.book.snapshot()

    async def cancel(
        self, client_order_id: str, ts: datetime, reason: str
    ) -> tuple[str, OrderState | None]:
        broker = self.book.broker
        try:
            state = broker.order(client_order_id)
        except KeyError:
            return "unknown", None
        if not state.is_open:
            return "terminal", state
        return "cancelled", broker.cancel(client_order_id, ts, reason)

    def resume(self) -> None:
        pass  # the paper broker never pauses

    async def close(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return self.book.snapshot()

    def orders(self) -> list[OrderState]:
        return self.book.broker.orders()

    def order(self, client_order_id: str) -> OrderState | None:
        try:
            return self.book.broker.order(client_order_id)
        except KeyError:
            return None

    def positions(self) -> dict[str, Any]:
        book = self.book
        return {
            s: {"quantity": p.quantity, "avg_cost": p.avg_cost, "last": book.last_close.get(s)}
            for s, p in book.ledger.positions().items()
        }

    def portfolio(self) -> dict[str, Any]:
        book = self.book
        return {
            "cash": book.ledger.cash,
            "positions": {
                s: {"quantity": p.quantity, "avg_cost": p.avg_cost, "realized_pnl": p.realized_pnl}
                for s, p in book.ledger.positions().items()
            },
            "last_close": dict(book.last_close),
        }
