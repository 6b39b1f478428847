"""A live session's execution: its orders go to an exchange through ``CcxtBroker``.

The broker journals its own orders and fills under ``<session id>.live`` in the store (with
the exchange's ids), and that journal is the truth this adapter books from:

* the ledger is rebuilt from the broker's fill journal on every load, so a fill is booked in
  it exactly once whatever crashed where (the store skips a fill key it already has);
* on load the broker reconciles with the exchange (``CcxtBroker.start``) before the session's
  first bar: an order the exchange filled while the orchestrator was down is booked then;
* fills and order changes the session's own journal does not have yet (reconciled ones, or
  ones a crash kept from the driver) are handed to the driver at the next bar;
* every bar, each order the journal has open is fetched from the exchange (``fetch_order``)
  and what changed is booked.

A broker that pauses (an account-level error, or retries running out) is reported by
``step``; the driver then halts the session with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from raytrader.agents.host import AccountSnapshot
from raytrader.domain import Fill, Order, OrderState, OrderStatus
from raytrader.domain.bar import BarTuple
from raytrader.domain.codec import from_dict
from raytrader.execution.book import marked_equity
from raytrader.execution.ccxt_broker import (
    BrokerError,
    BrokerPaused,
    CcxtBroker,
    make_trading_exchange,
)
from raytrader.orchestrator.config import LiveSpec, SessionConfig
from raytrader.orchestrator.session_broker import StepResult
from raytrader.secrets import DIR_VAR, CredentialsError, env_prefix, load_credentials
from raytrader.state.ledger import Ledger
from raytrader.state.stores.base import StateStore

log = structlog.get_logger("raytrader.live_session")


def live_account(sid: str) -> str:
    """The journal id of a live session's broker (its orders with the exchange's ids)."""
    return f"{sid}.live"


def _seen(state: OrderState) -> tuple[str, float]:
    return state.status.value, state.filled_quantity


class LiveSession:
    """One live session's broker, ledger and last closes."""

    def __init__(
        self,
        sid: str,
        broker: CcxtBroker,
        ledger: Ledger,
        symbols: Sequence[str],
        last_close: Mapping[str, float],
    ) -> None:
        self.sid = sid
        self.broker = broker
        self.ledger = ledger
        self._symbols = tuple(symbols)
        self.last_close = dict(last_close)
        self._unreported: list[Fill] = []  # booked, not yet handed to the driver
        self._reported: dict[str, tuple[str, float]] = {}  # what the driver has of each order
        self._refused: dict[str, OrderState] = {}  # refused here, never reached the broker

    @classmethod
    async def open(
        cls,
        sid: str,
        config: SessionConfig,
        checkpoint: Mapping[str, Any] | None,
        store: StateStore,
    ) -> LiveSession:
        """Connect to the exchange, reconcile, and rebuild the ledger from the journal."""
        assert config.symbols is not None and config.feed.exchange is not None
        exchange_id = config.feed.exchange
        spec = config.live or LiveSpec()
        credentials = load_credentials(exchange_id)
        if credentials is None:
            prefix = env_prefix(exchange_id)
            raise CredentialsError(
                f"live mode needs {exchange_id} credentials: set {prefix}API_KEY and "
                f"{prefix}SECRET (or their _FILE variants, or files of those names in "
                f"the directory of {DIR_VAR})"
            )
        exchange = make_trading_exchange(
            exchange_id,
            credentials,
            sandbox=spec.sandbox,
            api_urls={k: str(v).rstrip("/") for k, v in (spec.api_urls or {}).items()} or None,
            timeout_ms=spec.timeout_ms,
            rate_limit=spec.rate_limit,
        )
        account = live_account(sid)
        broker = CcxtBroker(
            exchange,
            store,
            account,
            secrets=credentials.values(),
            config=spec.retry,
            taker_fee=spec.taker_fee,
        )
        try:
            found = await broker.start()
        except BaseException:
            await broker.close()
            raise
        if found.unknown:
            log.warning("exchange has orders this session does not know", ids=found.unknown)
        # The broker's fill journal is the ledger's truth: each fill in it once, in order.
        ledger = Ledger(config.initial_cash)
        fills = [from_dict(Fill, e.payload) for e in await store.read_journal(account, "fill")]
        for fill in fills:
            ledger.apply_fill(fill)
        broker.drain_fills()  # already in the ledger, from the journal
        book = (checkpoint or {}).get("book") or {}
        live = cls(sid, broker, ledger, config.symbols, book.get("last_close") or {})
        booked = {e.key for e in await store.read_journal(sid, "fill")}
        live._unreported = [f for f in fills if f.fill_id not in booked]
        for entry in await store.read_journal(sid, "order"):
            live._reported[entry.key] = (
                str(entry.payload["status"]),
                float(entry.payload["filled_quantity"]),
            )
        return live

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._symbols

    # ---- the bar -------------------------------------------------------------------------

    async def step(
        self,
        ts: datetime,
        bars: Mapping[str, BarTuple],
        cancel_symbols: Sequence[str],
        orders: Sequence[Order],
    ) -> StepResult:
        for symbol in cancel_symbols:
            for st in self.broker.open_orders(symbol):
                await self._cancel(st.order.client_order_id, "superseded by a new signal")
        await self._submit(orders, {s: b[0] for s, b in bars.items()})
        await self._poll()
        for symbol, bar in bars.items():
            self.last_close[symbol] = bar[3]
        fills, changes = self._drain()
        snapshot = self.snapshot() if fills or changes else None
        return fills, changes, self.equity(), self.at_close(), snapshot, self.broker.paused

    async def _submit(self, orders: Sequence[Order], opens: Mapping[str, float]) -> None:
        for order in orders:
            cid = order.client_order_id
            if self._known(cid):
                continue  # a replayed bar: it was sent (or refused) already
            refusal = ""
            if order.parent_id:
                refusal = "exit orders (brackets) are not supported in live mode"
            elif self.broker.paused:
                refusal = f"broker paused: {self.broker.paused}"
            if not refusal:
                try:
                    await self.broker.submit(order, opens.get(order.symbol))
                    continue
                except (BrokerPaused, BrokerError) as exc:
                    refusal = str(exc)
            self._refused[cid] = OrderState(order).to(OrderStatus.REJECTED, order.ts, refusal)

    async def _poll(self) -> None:
        """Fetch every open order from the exchange and book what changed."""
        for st in self.broker.open_orders():
            try:
                await self.broker.refresh(st.order.client_order_id)
            except (BrokerPaused, BrokerError) as exc:
                # The next bar asks again; a pause is reported by ``step``.
                log.warning("order poll failed", order=st.order.client_order_id, error=str(exc))

    async def _cancel(self, cid: str, reason: str) -> OrderState:
        try:
            return await self.broker.cancel(cid, reason)
        except (BrokerPaused, BrokerError) as exc:
            log.warning("cancel failed", order=cid, error=str(exc))
            return self.broker.order(cid)

    def _known(self, cid: str) -> bool:
        return cid in self._refused or self.order(cid) is not None

    def _drain(self) -> tuple[list[Fill], list[OrderState]]:
        """Fills and order changes the driver has not had yet; the fills go to the ledger."""
        fills = self._unreported
        self._unreported = []
        for fill in self.broker.drain_fills():
            self.ledger.apply_fill(fill)
            fills.append(fill)
        changes = []
        for st in [*self.broker.orders(), *self._refused.values()]:
            cid = st.order.client_order_id
            if self._reported.get(cid) != _seen(st):
                self._reported[cid] = _seen(st)
                changes.append(st)
        return fills, changes

    # ---- commands between bars -----------------------------------------------------------

    async def stop(self, ts: datetime) -> tuple[list[OrderState], list[Fill]]:
        for st in self.broker.open_orders():
            await self._cancel(st.order.client_order_id, "session stopped")
        fills, changes = self._drain()
        return changes, fills

    async def halt(
        self, ts: datetime, reason: str, orders: Sequence[Order]
    ) -> tuple[list[OrderState], dict[str, Any]]:
        for st in self.broker.open_orders():
            await self._cancel(st.order.client_order_id, reason)
        await self._submit(orders, self.last_close)
        fills, changes = self._drain()
        self._unreported = fills  # the driver books fills at its next bar
        return changes, self.snapshot()

    async def place(
        self, orders: Sequence[Order], ts: datetime
    ) -> tuple[list[OrderState], dict[str, Any]]:
        await self._submit(orders, self.last_close)
        states = [st for o in orders if (st := self.order(o.client_order_id)) is not None]
        # Fills and changes stay for the driver's next step (the paper broker's way too).
        for fill in self.broker.drain_fills():
            self.ledger.apply_fill(fill)
            self._unreported.append(fill)
        return states, self.snapshot()

    async def cancel(
        self, client_order_id: str, ts: datetime, reason: str
    ) -> tuple[str, OrderState | None]:
        state = self.order(client_order_id)
        if state is None:
            return "unknown", None
        if not state.is_open:
            return "terminal", state
        return "cancelled", await self._cancel(client_order_id, reason)

    def resume(self) -> None:
        self.broker.resume()

    async def close(self) -> None:
        await self.broker.close()

    # ---- reads ---------------------------------------------------------------------------

    def equity(self) -> float:
        """Cash plus holdings at their last close (the session's own fills only)."""
        return marked_equity(self.ledger, self._symbols, self.last_close)

    def at_close(self) -> AccountSnapshot:
        positions = {s: p.quantity for s, p in self.ledger.positions().items()}
        return AccountSnapshot(self.ledger.cash, self.equity(), positions)

    def snapshot(self) -> dict[str, Any]:
        # No "broker" entry: the live broker's state is its journal, not the checkpoint.
        return {
            "ledger": self.ledger.snapshot(),
            "live": {
                "account": live_account(self.sid),
                "paused": self.broker.paused,
            },
            "last_close": dict(self.last_close),
        }

    def orders(self) -> list[OrderState]:
        return [*self.broker.orders(), *self._refused.values()]

    def order(self, client_order_id: str) -> OrderState | None:
        if client_order_id in self._refused:
            return self._refused[client_order_id]
        try:
            return self.broker.order(client_order_id)
        except KeyError:
            return None

    def positions(self) -> dict[str, Any]:
        return {
            s: {"quantity": p.quantity, "avg_cost": p.avg_cost, "last": self.last_close.get(s)}
            for s, p in self.ledger.positions().items()
        }

    def portfolio(self) -> dict[str, Any]:
        return {
            "cash": self.ledger.cash,
            "positions": {
                s: {"quantity": p.quantity, "avg_cost": p.avg_cost, "realized_pnl": p.realized_pnl}
                for s, p in self.ledger.positions().items()
            },
            "last_close": dict(self.last_close),
        }
