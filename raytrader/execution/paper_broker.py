"""Paper broker: matches resting orders against OHLCV bars, with fees, slippage and caps.

Pure and synchronous, so the backtest engine calls it in-process and a paper session
calls the very same class inside an actor: both produce the same fills from the same bars.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from raytrader.domain import (
    Fill,
    Order,
    OrderState,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    ensure_utc,
)
from raytrader.domain.bar import BarTuple
from raytrader.domain.codec import state_from_dict, state_to_dict
from raytrader.execution.costs import CommissionModel, SlippageModel

INSUFFICIENT_CASH = "insufficient cash"
IOC_REMAINDER = "IOC remainder"
DAY_EXPIRED = "DAY order expired"

_BUY = Side.BUY
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP = OrderType.STOP
_DAY = TimeInForce.DAY
_IOC = TimeInForce.IOC
# (open, high, low, close, volume) of one bar, as on_bars takes it.
# Relative tolerance on quantities, the same as OrderState.with_fill uses.
_QTY_EPS = 1e-9


class PaperBrokerConfig(BaseModel):
    """Costs and fill limits of the paper broker."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    commission: CommissionModel = Field(default_factory=CommissionModel)
    slippage: SlippageModel = Field(default_factory=SlippageModel)
    # Max fraction of a bar's volume one order may fill in that bar; None = unlimited.
    participation_rate: float | None = Field(default=None, gt=0.0, le=1.0)
    # 0 = any quantity; else order quantities and fills are multiples of it.
    lot_size: float = Field(default=0.0, ge=0.0)


class _Working:
    """Mutable book entry of one order: its latest state plus matching memory."""

    __slots__ = ("fills", "state", "triggered")

    def __init__(self, state: OrderState) -> None:
        self.state = state
        # Stop and stop-limit orders remember a trigger across bars; OrderState has no field
        # for it, so it lives here.
        self.triggered = False
        self.fills = 0


def _is_lot_multiple(quantity: float, lot: float) -> bool:
    n = round(quantity / lot)
    return n >= 1 and abs(n * lot - quantity) <= _QTY_EPS * max(quantity, lot)


def _floor_lot(quantity: float, lot: float) -> float:
    # The small tolerance keeps 0.3/0.1 = 2.9999999999999996 from losing a whole lot.
    return math.floor(quantity / lot + 1e-9) * lot


class PaperBroker:
    """Simulated broker for backtests and paper sessions.

    ``on_bar`` (one symbol) or ``on_bars`` (several symbols at one timestamp) is called with
    a bar during which the orders are live: a market order fills at that bar's open.
    ``buying_power`` (optional) returns the cash available for buys; it is read at most once
    per call, and the cash effect of the fills made earlier in the same call is netted by the
    broker, since the caller books the returned fills only after the call. Every state change
    is appended to ``journal`` and passed to ``on_update`` (which must not raise: the change
    is already booked when it is called).
    """

    def __init__(
        self,
        config: PaperBrokerConfig | None = None,
        buying_power: Callable[[], float] | None = None,
        on_update: Callable[[OrderState], None] | None = None,
    ) -> None:
        self.config = config if config is not None else PaperBrokerConfig()
        self.buying_power = buying_power
        self.on_update = on_update
        self.journal: list[OrderState] = []
        # Symbols with at least one open order; read-only for callers (hot-path skip test).
        self.open_symbols: set[str] = set()
        self._orders: dict[str, _Working] = {}  # every accepted or rejected order, by id
        self._open: dict[str, _Working] = {}  # open orders, submission order
        self._book: dict[str, dict[str, _Working]] = {}  # open orders by symbol
        self._commission = self.config.commission
        self._slippage = self.config.slippage
        self._rate = self.config.participation_rate
        self._lot = self.config.lot_size

    # ----------------------------------------------------------------- accessors

    def order(self, client_order_id: str) -> OrderState:
        """Latest state of an order; ``KeyError`` if the id is unknown."""
        return self._get(client_order_id).state

    def orders(self) -> list[OrderState]:
        """All orders (accepted or rejected) in submission order."""
        return [w.state for w in self._orders.values()]

    def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        """Open orders, of ``symbol`` if given, in submission order."""
        if symbol is None:
            return [w.state for w in self._open.values()]
        book = self._book.get(symbol)
        return [] if book is None else [w.state for w in book.values()]

    def drain_journal(self) -> list[OrderState]:
        """Return and clear the journal (a store calls this after persisting it)."""
        out = self.journal
        self.journal = []
        return out

    def snapshot(self) -> dict[str, Any]:
        """Every order's latest state plus the matching memory a restart needs."""
        return {
            "orders": [state_to_dict(w.state) for w in self._orders.values()],
            "triggered": [cid for cid, w in self._orders.items() if w.triggered],
            "fills": {cid: w.fills for cid, w in self._orders.items() if w.fills},
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Load what ``snapshot`` returned into an empty broker (after a restart)."""
        if self._orders:
            raise RuntimeError("restore needs an empty broker")
        triggered = set(snapshot.get("triggered", ()))
        fills = dict(snapshot.get("fills", {}))
        for raw in snapshot["orders"]:
            state = state_from_dict(raw)
            cid = state.order.client_order_id
            w = _Working(state)
            w.triggered = cid in triggered
            w.fills = int(fills.get(cid, 0))
            self._orders[cid] = w
            if state.is_open:
                self._open[cid] = w
                self._book.setdefault(state.order.symbol, {})[cid] = w
                self.open_symbols.add(state.order.symbol)

    # ------------------------------------------------------------------ commands

    def submit(self, order: Order) -> OrderState:
        """Accept ``order`` (NEW -> ACCEPTED) or reject it with a reason."""
        cid = order.client_order_id
        new = OrderState(order)
        if cid in self._orders:
            # Idempotent client ids: the original stays untouched and the duplicate is neither
            # stored nor journaled, since a journal replay keyed by id would clobber the original.
            return new.to(OrderStatus.REJECTED, order.ts, f"duplicate client order id {cid!r}")
        lot = self._lot
        if lot > 0.0 and not _is_lot_multiple(order.quantity, lot):
            reason = f"quantity {order.quantity} is not a multiple of the lot size {lot}"
            w = _Working(new.to(OrderStatus.REJECTED, order.ts, reason))
            self._orders[cid] = w
            self._record(w.state)
            return w.state
        w = _Working(new.to(OrderStatus.ACCEPTED, order.ts))
        self._orders[cid] = w
        self._open[cid] = w
        book = self._book.get(order.symbol)
        if book is None:
            book = self._book[order.symbol] = {}
            self.open_symbols.add(order.symbol)
        book[cid] = w
        self._record(w.state)
        return w.state

    def cancel(self, client_order_id: str, ts: datetime, reason: str = "") -> OrderState:
        """Cancel an open order; ``IllegalTransition`` if it is already terminal."""
        ensure_utc(ts, "cancel ts")
        w = self._get(client_order_id)
        self._set(w, w.state.to(OrderStatus.CANCELLED, ts, reason or "cancelled"))
        return w.state

    def cancel_all(self, ts: datetime, symbol: str | None = None) -> list[OrderState]:
        """Cancel every open order (of ``symbol`` if given); return their new states."""
        ensure_utc(ts, "cancel ts")
        if symbol is None:
            targets = list(self._open.values())
        else:
            targets = list(self._book.get(symbol, {}).values())
        out = []
        for w in targets:
            self._set(w, w.state.to(OrderStatus.CANCELLED, ts, "cancel all"))
            out.append(w.state)
        return out

    def expire_day(self, ts: datetime) -> list[OrderState]:
        """Expire DAY orders of every symbol placed on a UTC date before ``ts``'s date."""
        ensure_utc(ts, "expiry ts")
        day = ts.date()
        out = []
        for w in list(self._open.values()):
            o = w.state.order
            if o.time_in_force is _DAY and o.ts.date() < day:
                self._set(w, w.state.to(OrderStatus.EXPIRED, ts, DAY_EXPIRED))
                out.append(w.state)
        return out

    # ------------------------------------------------------------------ matching

    def on_bar(
        self,
        symbol: str,
        ts: datetime,
        open: float,
        high: float,
        low: float,
        close: float,
        volume: float,
    ) -> list[Fill]:
        """Match ``symbol``'s open orders against one bar; return the fills in match order.

        Sells are matched before buys: the bar's sells and buys trade at the same time, so
        cash a sell frees can pay for a buy of the same bar (a rebalance that sells to buy
        must not depend on the order in which its orders were submitted). Within a side,
        orders keep submission (time) priority. ``close`` is unused: fills happen at the
        open, a limit or a stop price, all of which the bar reaches before it closes.
        """
        book = self._book.get(symbol)
        if book is None:
            return []
        ensure_utc(ts, "bar ts")
        bar = (open, high, low, close, volume)
        if len(book) == 1:
            return self._match(ts, [(w, bar) for w in book.values()])
        work = list(book.values())
        ordered = [(w, bar) for w in work if w.state.order.side is not _BUY]
        ordered += [(w, bar) for w in work if w.state.order.side is _BUY]
        return self._match(ts, ordered)

    def on_bars(self, ts: datetime, bars: Mapping[str, BarTuple]) -> list[Fill]:
        """Match the bars of several symbols at one timestamp: all sells before all buys.

        ``bars`` maps a symbol to ``(open, high, low, close, volume)``. Use it when one bar
        can both sell some symbols and buy others, so the proceeds of every sell (not only
        of the same symbol's) can fund the buys, as in a portfolio rebalance.
        """
        ensure_utc(ts, "bars ts")
        sells: list[tuple[_Working, BarTuple]] = []
        buys: list[tuple[_Working, BarTuple]] = []
        # Submission order, not the order of ``bars``: which buy gets the cash first must not
        # depend on how a caller happened to build the mapping (set order varies by process).
        for w in list(self._open.values()):
            bar = bars.get(w.state.order.symbol)
            if bar is not None:
                (buys if w.state.order.side is _BUY else sells).append((w, bar))
        return self._match(ts, sells + buys)

    def _match(self, ts: datetime, work: list[tuple[_Working, BarTuple]]) -> list[Fill]:
        """Match orders, each against its symbol's bar, in the given order."""
        fills: list[Fill] = []
        day: date | None = None
        cash: float | None = None  # buying power, read at the first buy of this call
        cash_delta = 0.0  # net cash of the fills made earlier in this call
        rate = self._rate
        lot = self._lot
        for w, (open_, high, low, _close, volume) in work:
            order = w.state.order
            if order.time_in_force is _DAY:
                if day is None:
                    day = ts.date()
                if day > order.ts.date():
                    self._set(w, w.state.to(OrderStatus.EXPIRED, ts, DAY_EXPIRED))
                    continue
            # NaN prices (a missing bar in an aligned panel) match nothing, and a bar older
            # than the order was over before the order existed.
            if not (0.0 < open_ < math.inf and low <= high) or ts < order.ts:
                continue
            price = self._match_price(w, order, open_, high, low)
            if price is not None:
                remaining = w.state.remaining
                qty = remaining
                if rate is not None:
                    cap = rate * volume
                    if not cap > 0.0:  # zero or NaN volume under a cap: no fill this bar
                        qty = 0.0
                    elif cap < qty:
                        qty = cap
                if lot > 0.0 and qty < remaining * (1.0 - _QTY_EPS):
                    qty = _floor_lot(qty, lot)
                if qty > 0.0 and order.side is _BUY and self.buying_power is not None:
                    if cash is None:
                        cash = float(self.buying_power())
                    qty = self._affordable(qty, price, cash + cash_delta)
                    if qty <= 0.0:
                        self._refuse_for_cash(w, ts)
                        continue
                if qty > 0.0:
                    qty = min(qty, remaining)
                    notional = qty * price
                    fee = self._commission.commission(notional)
                    cash_delta += (-notional - fee) if order.side is _BUY else (notional - fee)
                    fills.append(self._fill(w, qty, price, fee, ts))
            if order.time_in_force is _IOC and w.state.is_open:
                self._set(w, w.state.to(OrderStatus.CANCELLED, ts, IOC_REMAINDER))
        return fills

    def _match_price(
        self, w: _Working, order: Order, open_: float, high: float, low: float
    ) -> float | None:
        """Fill price of ``order`` in this bar, or None if the bar does not reach it."""
        kind = order.type
        buy = order.side is _BUY
        if kind is _MARKET:
            return self._slippage.adjust(open_, order.side)
        if kind is _LIMIT:
            return _limit_fill(buy, order.limit_price, open_, high, low)
        stop = order.stop_price
        assert stop is not None  # Order guarantees it for stop and stop-limit types
        if kind is _STOP:
            if w.triggered:  # triggered on an earlier bar: now a market order
                return self._slippage.adjust(open_, order.side)
            if buy and high >= stop:
                w.triggered = True
                return self._slippage.adjust(max(open_, stop), order.side)
            if not buy and low <= stop:
                w.triggered = True
                return self._slippage.adjust(min(open_, stop), order.side)
            return None
        # Stop-limit: a limit order once triggered; on the trigger bar it fills only at the
        # trigger price (stop, or the open on a gap), and only if that is within the limit,
        # since the bar does not tell whether the price came back to the limit afterwards.
        limit = order.limit_price
        assert limit is not None
        if w.triggered:
            return _limit_fill(buy, limit, open_, high, low)
        if buy:
            if high < stop:
                return None
            w.triggered = True
            trigger = max(open_, stop)
            return trigger if trigger <= limit else None
        if low > stop:
            return None
        w.triggered = True
        trigger = min(open_, stop)
        return trigger if trigger >= limit else None

    def _affordable(self, qty: float, price: float, budget: float) -> float:
        """``qty`` capped so its cost with commission fits ``budget``, in whole lots."""
        commission = self._commission
        if qty * price + commission.commission(qty * price) <= budget:
            return qty
        qty = min(qty, commission.max_quantity(price, budget))
        lot = self._lot
        if lot > 0.0:
            qty = _floor_lot(qty, lot)
            # The flooring tolerance can round up by a hair; then one lot fewer fits.
            if qty > 0.0 and qty * price + commission.commission(qty * price) > budget:
                qty -= lot
        return max(qty, 0.0)

    def _refuse_for_cash(self, w: _Working, ts: datetime) -> None:
        # Nothing filled yet: the order is rejected; otherwise its remainder is cancelled
        # (the state machine has no partially-filled -> rejected move, and fills stand).
        if w.state.filled_quantity > 0.0:
            self._set(w, w.state.to(OrderStatus.CANCELLED, ts, INSUFFICIENT_CASH))
        else:
            self._set(w, w.state.to(OrderStatus.REJECTED, ts, INSUFFICIENT_CASH))

    def _fill(self, w: _Working, qty: float, price: float, fee: float, ts: datetime) -> Fill:
        order = w.state.order
        w.fills += 1
        fill = Fill(
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            quantity=qty,
            price=price,
            commission=fee,
            ts=ts,
            fill_id=f"{order.client_order_id}-{w.fills}",
        )
        self._set(w, w.state.with_fill(qty, price, ts))
        return fill

    # ------------------------------------------------------------------ internals

    def _get(self, client_order_id: str) -> _Working:
        w = self._orders.get(client_order_id)
        if w is None:
            raise KeyError(f"unknown client order id {client_order_id!r}")
        return w

    def _set(self, w: _Working, state: OrderState) -> None:
        w.state = state
        if state.status.is_terminal:
            cid = state.order.client_order_id
            del self._open[cid]
            symbol = state.order.symbol
            book = self._book[symbol]
            del book[cid]
            if not book:
                del self._book[symbol]
                self.open_symbols.discard(symbol)
        self._record(state)

    def _record(self, state: OrderState) -> None:
        self.journal.append(state)
        if self.on_update is not None:
            self.on_update(state)


def _limit_fill(
    buy: bool, limit: float | None, open_: float, high: float, low: float
) -> float | None:
    """Limit fill price: the open when the bar gaps through the limit, else the limit."""
    assert limit is not None  # Order guarantees it for limit and stop-limit types
    if buy:
        if open_ <= limit:
            return open_
        return limit if low <= limit else None
    if open_ >= limit:
        return open_
    return limit if high >= limit else None
