"""Paper broker: matches resting orders against OHLCV bars, with fees, slippage and caps.

Pure and synchronous, so the backtest engine calls it in-process and a paper session
calls the very same class inside an actor: both produce the same fills from the same bars.

Contingent orders
-----------------
A bar only tells its open, high, low and close; the open is its first trade, but whether the
high came before the low is unknown. Where that matters the broker assumes the worse order.

* Trailing stops (``OrderType.TRAILING_STOP``). The best price so far starts at the open of
  the order's first live bar (for a bracket child: at its parent's average fill price). In
  each bar, in this order: (1) if the open is already beyond the stop of the best price so
  far, the order triggers and fills at the open (a gap); (2) the open becomes the best
  price if it is better (it is the bar's first trade); (3) the order triggers and fills at
  the stop if the bar's low (a sell) or high (a buy) reaches it; (4) only when it did not
  trigger does the high (a sell) or low (a buy) become the best price, for the next bar. So
  a bar's extreme never both raises the stop and triggers it: the bar may have made its low
  before its high. Once triggered it is a market order, like a stop (slippage applies).
* OCO groups (``Order.oco_group``). The first fill of any member, complete or partial,
  cancels every other open member, reason ``oco: <group> filled``; the filled member keeps
  working its remainder. (The one-cancels-other rule of e.g. QuantConnect's LEAN; a broker
  that instead shrinks the others by partial fills lets both legs fill.) When several
  members of a group could fill in the same bar, one the open fills (a gap, a market or a
  triggered stop) goes first, then stops, then limits: with the open known and the rest of
  the path not, a take-profit and a stop-loss both inside one bar's range exit at the stop.
  A new member of a group that has had a fill is rejected.
* Brackets (``Order.parent_id``, see ``raytrader.domain.bracket``). A child is held (status
  NEW, listed by ``held_orders``, not by ``open_orders``) until its parent's first fill.
  That fill activates it (ACCEPTED) with the parent's filled quantity, and every later fill
  of the parent resizes it to the new filled quantity. A child activated in a bar matches
  from the next bar on: the entry may have filled after the bar's high or low (a limit
  entry fills somewhere inside the bar), so the bar cannot tell whether an exit level was
  reached after the entry; a level the entry bar crossed fills at the next open. The first
  fill of a child cancels the rest of its parent (``bracket: exit <id> filled``), so the
  exits never exceed the entry's fills. A parent that ends without any fill (cancelled,
  rejected, expired) cancels its held children (``bracket: entry <id> <status>``); one that
  ends after some fills leaves its children working for the filled quantity. Cancelling a
  child cancels only that child.

Every state change above (hold, activation, resize, cancel) is a journal entry. The best
price of a trailing stop and a child's activation bar are matching memory, like a stop's
trigger: they are in ``snapshot``, not in the journal.
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
from raytrader.domain.time import to_utc
from raytrader.execution.costs import CommissionModel, SlippageModel

INSUFFICIENT_CASH = "insufficient cash"
IOC_REMAINDER = "IOC remainder"
DAY_EXPIRED = "DAY order expired"

_BUY = Side.BUY
_MARKET = OrderType.MARKET
_LIMIT = OrderType.LIMIT
_STOP = OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_TRAIL = OrderType.TRAILING_STOP
_NEW = OrderStatus.NEW
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

    __slots__ = ("activated", "fills", "peak", "state", "triggered")

    def __init__(self, state: OrderState) -> None:
        self.state = state
        # Stop and stop-limit orders remember a trigger across bars; OrderState has no field
        # for it, so it lives here.
        self.triggered = False
        self.fills = 0
        # Trailing stops: the best price so far (highest for a sell, lowest for a buy).
        self.peak: float | None = None
        # Bracket children: the bar that activated them; they match later bars only.
        self.activated: datetime | None = None


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
        self._held: dict[str, _Working] = {}  # bracket children waiting for a parent fill
        self._children: dict[str, list[_Working]] = {}  # parent id -> children
        self._groups: dict[str, list[_Working]] = {}  # OCO group -> members
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
        """Working orders, of ``symbol`` if given, in submission order.

        Held bracket children are not listed (see ``held_orders``): cancelling their parent
        cancels them, so a caller that cancels every open order one by one never meets one.
        """
        if symbol is None:
            return [w.state for w in self._open.values()]
        book = self._book.get(symbol)
        return [] if book is None else [w.state for w in book.values()]

    def held_orders(self) -> list[OrderState]:
        """Bracket children waiting for their parent's first fill, in submission order."""
        return [w.state for w in self._held.values()]

    def trailing_stop(self, client_order_id: str) -> float | None:
        """Current stop price of a trailing stop; None before it has seen a price."""
        w = self._get(client_order_id)
        if w.peak is None:
            return None
        return w.state.order.trail_stop(w.peak)

    def drain_journal(self) -> list[OrderState]:
        """Return and clear the journal (a store calls this after persisting it)."""
        out = self.journal
        self.journal = []
        return out

    def snapshot(self) -> dict[str, Any]:
        """Every order's latest state plus the matching memory a restart needs."""
        orders = self._orders
        return {
            "orders": [state_to_dict(w.state) for w in orders.values()],
            "triggered": [cid for cid, w in orders.items() if w.triggered],
            "fills": {cid: w.fills for cid, w in orders.items() if w.fills},
            "peaks": {cid: w.peak for cid, w in orders.items() if w.peak is not None},
            "activated": {
                cid: w.activated.isoformat() for cid, w in orders.items() if w.activated is not None
            },
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Load what ``snapshot`` returned into an empty broker (after a restart)."""
        if self._orders:
            raise RuntimeError("restore needs an empty broker")
        triggered = set(snapshot.get("triggered", ()))
        fills = dict(snapshot.get("fills", {}))
        peaks = dict(snapshot.get("peaks", {}))
        activated = dict(snapshot.get("activated", {}))
        for raw in snapshot["orders"]:
            state = state_from_dict(raw)
            cid = state.order.client_order_id
            w = _Working(state)
            w.triggered = cid in triggered
            w.fills = int(fills.get(cid, 0))
            if cid in peaks:
                w.peak = float(peaks[cid])
            if cid in activated:
                w.activated = to_utc(activated[cid])
            self._orders[cid] = w
            self._link(w)
            if state.status is _NEW:
                self._held[cid] = w
            elif state.is_open:
                self._add_open(w)

    # ------------------------------------------------------------------ commands

    def submit(self, order: Order) -> OrderState:
        """Accept ``order`` (NEW -> ACCEPTED) or reject it with a reason."""
        cid = order.client_order_id
        new = OrderState(order)
        if cid in self._orders:
            # Idempotent client ids: the original stays untouched and the duplicate is neither
            # stored nor journaled, since a journal replay keyed by id would clobber the original.
            return new.to(OrderStatus.REJECTED, order.ts, f"duplicate client order id {cid!r}")
        reason = self._refusal(order)
        if reason:
            w = _Working(new.to(OrderStatus.REJECTED, order.ts, reason))
            self._orders[cid] = w
            self._link(w)
            self._record(w.state)
            return w.state
        parent = self._orders[order.parent_id].state if order.parent_id else None
        if parent is not None and parent.filled_quantity == 0.0:
            held = OrderState(
                order, _NEW, reason=f"bracket: held until {order.parent_id} fills", updated=order.ts
            )
            w = _Working(held)
            self._orders[cid] = w
            self._link(w)
            self._held[cid] = w
            self._record(held)
            return held
        state = new.to(OrderStatus.ACCEPTED, order.ts)
        w = _Working(state)
        if parent is not None:
            # The parent has filled in part already: the child works now, at that size.
            why = f"bracket: entry {order.parent_id} filled {parent.filled_quantity}"
            w.state = state.with_quantity(parent.filled_quantity, order.ts, why)
            if order.type is _TRAIL:
                w.peak = parent.avg_fill_price
        self._orders[cid] = w
        self._link(w)
        self._add_open(w)
        self._record(w.state)
        return w.state

    def cancel(self, client_order_id: str, ts: datetime, reason: str = "") -> OrderState:
        """Cancel an open order; ``IllegalTransition`` if it is already terminal."""
        ensure_utc(ts, "cancel ts")
        w = self._get(client_order_id)
        self._set(w, w.state.to(OrderStatus.CANCELLED, ts, reason or "cancelled"))
        return w.state

    def resize(
        self, client_order_id: str, quantity: float, ts: datetime, reason: str = ""
    ) -> OrderState:
        """Resize an open (not held) order to ``quantity``, above its filled quantity; its
        matching memory (a trailing stop's best price, a trigger) is kept."""
        ensure_utc(ts, "resize ts")
        w = self._get(client_order_id)
        if client_order_id in self._held:
            raise ValueError(f"order {client_order_id!r} is held until its parent fills")
        self._set(w, w.state.with_quantity(quantity, ts, reason))
        return w.state

    def cancel_all(self, ts: datetime, symbol: str | None = None) -> list[OrderState]:
        """Cancel every open order (of ``symbol`` if given); return their new states."""
        ensure_utc(ts, "cancel ts")
        if symbol is None:
            targets = list(self._open.values())
        else:
            targets = list(self._book.get(symbol, {}).values())
        start = len(self.journal)
        for w in targets:
            if w.state.is_open:
                self._set(w, w.state.to(OrderStatus.CANCELLED, ts, "cancel all"))
        # Also the held bracket children their parents' cancellation cancelled.
        return self.journal[start:]

    def expire_day(self, ts: datetime) -> list[OrderState]:
        """Expire DAY orders of every symbol placed on a UTC date before ``ts``'s date."""
        ensure_utc(ts, "expiry ts")
        day = ts.date()
        out = []
        for w in list(self._open.values()):
            o = w.state.order
            if o.time_in_force is _DAY and o.ts.date() < day and w.state.is_open:
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
        # Only OCO groups and brackets close or activate orders during a call.
        contingent = bool(self._groups or self._children)
        if self._groups and len(work) > 1:
            _oco_priority(work)
        for w, (open_, high, low, _close, volume) in work:
            # An OCO sibling's or a bracket child's fill earlier in this call may have closed
            # it; a child activated in a bar matches from the next bar on.
            if contingent and (
                w.state.status.is_terminal or (w.activated is not None and ts <= w.activated)
            ):
                continue
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
                    if order.side is not _BUY and self.buying_power is not None:
                        if cash is None:
                            cash = float(self.buying_power())
                        if (cash + cash_delta) + notional - fee < 0.0:
                            # A minimum commission above the proceeds would overdraw the cash.
                            self._refuse_for_cash(w, ts)
                            continue
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
        if kind is _TRAIL:
            if w.triggered:  # triggered on an earlier bar: now a market order
                return self._slippage.adjust(open_, order.side)
            trigger = _trail(w, order, buy, open_, high, low)
            return None if trigger is None else self._slippage.adjust(trigger, order.side)
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
        if order.oco_group or order.parent_id or order.client_order_id in self._children:
            self._after_contingent_fill(w, ts)
        return fill

    def _after_contingent_fill(self, w: _Working, ts: datetime) -> None:
        """The OCO and bracket consequences of a fill of ``w`` (see the module docstring)."""
        order = w.state.order
        cid = order.client_order_id
        group = order.oco_group
        if group:
            why = f"oco: {group} filled"
            for m in self._groups[group]:
                if m is not w and m.state.is_open:
                    self._set(m, m.state.to(OrderStatus.CANCELLED, ts, why))
        if order.parent_id:
            parent = self._orders[order.parent_id]
            if parent.state.is_open:
                why = f"bracket: exit {cid} filled"
                self._set(parent, parent.state.to(OrderStatus.CANCELLED, ts, why))
        children = self._children.get(cid)
        if children:
            filled = w.state.filled_quantity
            why = f"bracket: entry {cid} filled {filled}"
            for k in children:
                st = k.state
                if st.status is _NEW:
                    del self._held[st.order.client_order_id]
                    k.state = st.with_quantity(filled, ts).to(OrderStatus.ACCEPTED, ts, why)
                    k.activated = ts
                    if st.order.type is _TRAIL:
                        k.peak = w.state.avg_fill_price
                    self._add_open(k)
                    self._record(k.state)
                elif st.is_open and st.filled_quantity == 0.0 and st.order.quantity != filled:
                    self._set(k, st.with_quantity(filled, ts, why))

    # ------------------------------------------------------------------ internals

    def _get(self, client_order_id: str) -> _Working:
        w = self._orders.get(client_order_id)
        if w is None:
            raise KeyError(f"unknown client order id {client_order_id!r}")
        return w

    def _refusal(self, order: Order) -> str:
        """Why ``order`` cannot be accepted, or "" if it can."""
        lot = self._lot
        if lot > 0.0 and not _is_lot_multiple(order.quantity, lot):
            return f"quantity {order.quantity} is not a multiple of the lot size {lot}"
        pid = order.parent_id
        if pid:
            p = self._orders.get(pid)
            if p is None:
                return f"bracket: parent order {pid!r} is unknown"
            parent = p.state.order
            if parent.parent_id:
                return f"bracket: parent order {pid!r} is itself a child"
            if not p.state.is_open:
                return f"bracket: parent order {pid!r} is {p.state.status}"
            if order.symbol != parent.symbol:
                return f"bracket: symbol must be the parent's {parent.symbol!r}"
            if order.side is parent.side:
                return f"bracket: side must be opposite to the parent's {parent.side}"
            if abs(order.quantity - parent.quantity) > _QTY_EPS * parent.quantity:
                return f"bracket: quantity must equal the parent's {parent.quantity}"
        group = order.oco_group
        if group and any(m.state.filled_quantity > 0.0 for m in self._groups.get(group, ())):
            return f"oco: {group} already filled"
        return ""

    def _link(self, w: _Working) -> None:
        """Register ``w`` with its OCO group and its bracket parent."""
        order = w.state.order
        if order.oco_group:
            self._groups.setdefault(order.oco_group, []).append(w)
        if order.parent_id:
            self._children.setdefault(order.parent_id, []).append(w)

    def _add_open(self, w: _Working) -> None:
        order = w.state.order
        self._open[order.client_order_id] = w
        book = self._book.get(order.symbol)
        if book is None:
            book = self._book[order.symbol] = {}
            self.open_symbols.add(order.symbol)
        book[order.client_order_id] = w

    def _set(self, w: _Working, state: OrderState) -> None:
        w.state = state
        if not state.status.is_terminal:
            self._record(state)
            return
        cid = state.order.client_order_id
        if self._open.pop(cid, None) is None:
            del self._held[cid]  # a held bracket child
        else:
            symbol = state.order.symbol
            book = self._book[symbol]
            del book[cid]
            if not book:
                del self._book[symbol]
                self.open_symbols.discard(symbol)
        self._record(state)
        if state.filled_quantity == 0.0 and cid in self._children:
            # A parent that ends without a fill takes its held children with it.
            ts = state.updated or state.order.ts
            why = f"bracket: entry {cid} {state.status}"
            for k in self._children[cid]:
                if k.state.status is _NEW:
                    self._set(k, k.state.to(OrderStatus.CANCELLED, ts, why))

    def _record(self, state: OrderState) -> None:
        self.journal.append(state)
        if self.on_update is not None:
            self.on_update(state)


def _trail(
    w: _Working, order: Order, buy: bool, open_: float, high: float, low: float
) -> float | None:
    """Trigger price of a trailing stop in this bar (the open on a gap, else the stop), or
    None; moves its best price as the module docstring says."""
    best = w.peak
    if best is None:
        best = open_  # the first price the order sees
    else:
        stop = order.trail_stop(best)
        if open_ >= stop if buy else open_ <= stop:
            w.triggered = True
            return open_
        best = min(best, open_) if buy else max(best, open_)
    stop = order.trail_stop(best)
    w.peak = best
    if high >= stop if buy else low <= stop:
        w.triggered = True
        return stop
    w.peak = min(best, low) if buy else max(best, high)
    return None


def _intrabar_rank(item: tuple[_Working, BarTuple]) -> int:
    """0: fills at the open if at all; 1: a stop inside the bar; 2: a limit inside the bar."""
    w, bar = item
    order = w.state.order
    open_ = bar[0]
    kind = order.type
    buy = order.side is _BUY
    if kind is _MARKET or (w.triggered and kind is not _STOP_LIMIT):
        return 0
    if kind is _LIMIT or w.triggered:  # a triggered stop-limit is a limit order
        limit = order.limit_price
        assert limit is not None
        return 0 if (open_ <= limit if buy else open_ >= limit) else 2
    if kind is _TRAIL:
        if w.peak is None:
            return 1
        stop = order.trail_stop(w.peak)
    else:
        assert order.stop_price is not None
        stop = order.stop_price
    return 0 if (open_ >= stop if buy else open_ <= stop) else 1


def _oco_priority(work: list[tuple[_Working, BarTuple]]) -> None:
    """Reorder, in place, the members of each OCO group (and side) among their own slots:
    fills at the open first, then stops, then limits, else submission order."""
    slots: dict[tuple[str, Side], list[int]] = {}
    for i, (w, _bar) in enumerate(work):
        order = w.state.order
        if order.oco_group:
            slots.setdefault((order.oco_group, order.side), []).append(i)
    for idx in slots.values():
        if len(idx) > 1:
            members = sorted((work[i] for i in idx), key=_intrabar_rank)
            for i, item in zip(idx, members, strict=True):
                work[i] = item


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
