"""The ledger: cash, positions, transactions, realized PnL, corporate actions and round trips.

Pure and synchronous; no pandas on the fill path (pandas only builds report frames).

Accounting identity (tested as a property)::

    cash + sum(qty * price) == initial_cash + deposits + dividends
                               + realized_pnl + unrealized_pnl(prices) - commission_paid

``realized_pnl`` is gross of commissions and excludes dividends; both are tracked apart.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from raytrader.domain import Fill, Position, ensure_utc

if TYPE_CHECKING:
    import pandas as pd

TransactionKind = Literal["fill", "split", "dividend", "deposit"]

# A reduction leaving less than this fraction of the position is a full close: float sums of
# fills (0.1 + 0.2 - 0.3) must not leave dust positions that open phantom trades.
_DUST = 1e-9

_SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class Transaction:
    """One ledger event.

    ``amount`` is the cash effect. Per kind:

    - ``fill``: ``quantity`` signed (+buy, -sell), ``price`` the fill price,
      ``amount = -quantity * price - commission``, ``realized_pnl`` gross of commission.
    - ``split``: ``quantity`` is the split ratio (2.0 for a 2-for-1), ``price`` 0, ``amount`` 0.
    - ``dividend``: ``quantity`` the position held, ``price`` the amount per share,
      ``amount = quantity * price`` (negative for a short, which pays it).
    - ``deposit``: ``symbol`` empty, ``amount`` the deposit (negative for a withdrawal).
    """

    ts: datetime
    kind: TransactionKind
    symbol: str
    quantity: float
    price: float
    amount: float
    commission: float = 0.0
    client_order_id: str = ""
    realized_pnl: float = 0.0
    fill_id: str = ""


@dataclass(frozen=True, slots=True)
class Trade:
    """A round trip: from a position leaving zero to its return to zero.

    ``entry_price``/``exit_price`` are quantity-weighted averages of the entry-side and exit-side
    fills; ``quantity`` is the largest absolute position held. ``pnl`` is realized PnL net of all
    the trade's commissions plus dividends received (or paid, short) while it was open;
    ``return_pct = pnl / entry cost`` where entry cost is the notional of all entry-side fills.
    A fill that flips the position is split between the two trades by quantity (commission
    pro rata). After a split, the trade's quantities and prices are in post-split units.

    For an open trade (``open_trades()``) ``exit_ts`` is None and ``exit_price`` is None until
    some of it has been closed.
    """

    symbol: str
    direction: int
    entry_ts: datetime
    exit_ts: datetime | None
    entry_price: float
    exit_price: float | None
    quantity: float
    pnl: float
    return_pct: float
    commission: float

    @property
    def is_open(self) -> bool:
        return self.exit_ts is None

    @property
    def duration(self) -> timedelta | None:
        return None if self.exit_ts is None else self.exit_ts - self.entry_ts


class _OpenTrade:
    """Mutable accumulator of the trade currently open in one symbol."""

    __slots__ = (
        "commission",
        "direction",
        "dividends",
        "entry_notional",
        "entry_qty",
        "entry_ts",
        "exit_notional",
        "exit_qty",
        "max_qty",
        "realized",
        "symbol",
    )

    def __init__(self, symbol: str, direction: int, entry_ts: datetime) -> None:
        self.symbol = symbol
        self.direction = direction
        self.entry_ts = entry_ts
        self.entry_qty = 0.0
        self.entry_notional = 0.0
        self.exit_qty = 0.0
        self.exit_notional = 0.0
        self.max_qty = 0.0
        self.realized = 0.0
        self.commission = 0.0
        self.dividends = 0.0

    def to_trade(self, exit_ts: datetime | None, unrealized: float = 0.0) -> Trade:
        pnl = self.realized - self.commission + self.dividends + unrealized
        return Trade(
            symbol=self.symbol,
            direction=self.direction,
            entry_ts=self.entry_ts,
            exit_ts=exit_ts,
            entry_price=self.entry_notional / self.entry_qty,
            exit_price=self.exit_notional / self.exit_qty if self.exit_qty > 0 else None,
            quantity=self.max_qty,
            pnl=pnl,
            return_pct=pnl / self.entry_notional,
            commission=self.commission,
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {name: getattr(self, name) for name in self.__slots__}
        out["entry_ts"] = self.entry_ts.isoformat()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _OpenTrade:
        trade = cls(data["symbol"], int(data["direction"]), _parse_ts(data["entry_ts"]))
        for name in cls.__slots__:
            if name not in ("symbol", "direction", "entry_ts"):
                setattr(trade, name, float(data[name]))
        return trade


class Ledger:
    """Cash, positions (average cost, long and short), transactions and round-trip trades."""

    def __init__(self, initial_cash: float) -> None:
        if not math.isfinite(initial_cash):
            raise ValueError(f"ledger: initial_cash must be finite, got {initial_cash}")
        self.initial_cash = float(initial_cash)
        self.cash = float(initial_cash)
        self.commission_paid = 0.0
        self.deposits = 0.0
        self.dividends = 0.0
        self.transactions: list[Transaction] = []
        self.trades: list[Trade] = []
        self._positions: dict[str, Position] = {}
        self._open: dict[str, _OpenTrade] = {}
        self._fill_ids: set[str] = set()

    # ---- reads -------------------------------------------------------------------------------

    def position(self, symbol: str) -> Position:
        """The position in ``symbol``; flat (keeping its realized PnL) if none is held."""
        pos = self._positions.get(symbol)
        return pos if pos is not None else Position(symbol)

    def positions(self) -> dict[str, Position]:
        """Non-zero positions by symbol."""
        return {s: p for s, p in self._positions.items() if p.quantity != 0.0}

    @property
    def realized_pnl(self) -> float:
        """Total realized trading PnL, gross of commissions, excluding dividends."""
        return sum(p.realized_pnl for p in self._positions.values())

    def market_value(self, prices: Mapping[str, float]) -> float:
        """Signed market value of all positions."""
        return sum(p.quantity * _price(prices, s) for s, p in self.positions().items())

    def equity(self, prices: Mapping[str, float]) -> float:
        """Cash plus the market value of all positions; ``prices`` must cover every holding."""
        return self.cash + self.market_value(prices)

    def unrealized_pnl(self, prices: Mapping[str, float]) -> float:
        return sum(p.unrealized_pnl(_price(prices, s)) for s, p in self.positions().items())

    def open_trades(self, prices: Mapping[str, float] | None = None) -> list[Trade]:
        """Trades still open. With ``prices``, their pnl includes the unrealized part."""
        out = []
        for symbol, acc in self._open.items():
            unrealized = 0.0
            if prices is not None and symbol in prices:
                unrealized = self._positions[symbol].unrealized_pnl(prices[symbol])
            out.append(acc.to_trade(None, unrealized))
        return out

    # ---- writes ------------------------------------------------------------------------------

    def apply_fill(self, fill: Fill) -> Transaction | None:
        """Book a fill. A fill whose non-empty ``fill_id`` was seen before is ignored (None)."""
        if fill.fill_id:
            if fill.fill_id in self._fill_ids:
                return None
            self._fill_ids.add(fill.fill_id)
        symbol, p, c, ts = fill.symbol, fill.price, fill.commission, fill.ts
        q = fill.signed_quantity
        pos = self._positions.get(symbol) or Position(symbol)
        qty, avg = pos.quantity, pos.avg_cost
        realized = 0.0
        acc = self._open.get(symbol)

        if qty == 0.0 or (qty > 0.0) == (q > 0.0):
            # Opening or adding: average cost, no PnL.
            new_qty = qty + q
            new_avg = p if qty == 0.0 else (qty * avg + q * p) / new_qty
            if acc is None:
                acc = self._open[symbol] = _OpenTrade(symbol, 1 if q > 0 else -1, ts)
            acc.entry_qty += abs(q)
            acc.entry_notional += abs(q) * p
            acc.commission += c
            acc.max_qty = max(acc.max_qty, abs(new_qty))
        else:
            assert acc is not None  # a non-zero position always has an open trade
            remainder = qty + q
            if abs(remainder) <= _DUST * abs(qty):
                # Full close. Realized = proceeds minus released basis, so any dust left by
                # float sums is booked as PnL and the accounting identity stays exact.
                realized = -q * p - qty * avg
                new_qty, new_avg = 0.0, 0.0
                self._close(acc, abs(q), p, c, realized, ts)
            elif (remainder > 0.0) == (qty > 0.0):
                # Partial reduction: average cost unchanged.
                realized = -q * (p - avg)
                new_qty, new_avg = remainder, avg
                acc.exit_qty += abs(q)
                acc.exit_notional += abs(q) * p
                acc.realized += realized
                acc.commission += c
            else:
                # Flip through zero: close the old trade, open the rest at the fill price.
                realized = qty * (p - avg)
                new_qty, new_avg = remainder, p
                close_c = c * abs(qty) / abs(q)
                self._close(acc, abs(qty), p, close_c, realized, ts)
                acc = self._open[symbol] = _OpenTrade(symbol, 1 if q > 0 else -1, ts)
                acc.entry_qty = acc.max_qty = abs(remainder)
                acc.entry_notional = abs(remainder) * p
                acc.commission = c - close_c

        amount = -q * p - c
        self.cash += amount
        self.commission_paid += c
        self._positions[symbol] = Position(symbol, new_qty, new_avg, pos.realized_pnl + realized)
        tx = Transaction(
            ts, "fill", symbol, q, p, amount, c, fill.client_order_id, realized, fill.fill_id
        )
        self.transactions.append(tx)
        return tx

    def apply_split(self, symbol: str, ratio: float, ts: datetime) -> Transaction:
        """Split ``symbol`` ``ratio``-for-1: quantity times ratio, average cost over ratio."""
        ensure_utc(ts, f"split {symbol} ts")
        if not (math.isfinite(ratio) and ratio > 0.0):
            raise ValueError(f"split {symbol}: ratio must be a positive number, got {ratio}")
        pos = self._positions.get(symbol)
        if pos is not None:
            self._positions[symbol] = Position(
                symbol, pos.quantity * ratio, pos.avg_cost / ratio, pos.realized_pnl
            )
        acc = self._open.get(symbol)
        if acc is not None:
            # Notionals are unchanged; quantities scale, so average prices scale inversely.
            acc.entry_qty *= ratio
            acc.exit_qty *= ratio
            acc.max_qty *= ratio
        tx = Transaction(ts, "split", symbol, ratio, 0.0, 0.0)
        self.transactions.append(tx)
        return tx

    def apply_dividend(self, symbol: str, amount_per_share: float, ts: datetime) -> Transaction:
        """Cash dividend on the held quantity; a short position pays it."""
        ensure_utc(ts, f"dividend {symbol} ts")
        if not math.isfinite(amount_per_share):
            raise ValueError(f"dividend {symbol}: amount must be finite, got {amount_per_share}")
        qty = self.position(symbol).quantity
        amount = qty * amount_per_share
        self.cash += amount
        self.dividends += amount
        acc = self._open.get(symbol)
        if acc is not None:
            acc.dividends += amount
        tx = Transaction(ts, "dividend", symbol, qty, amount_per_share, amount)
        self.transactions.append(tx)
        return tx

    def deposit(self, amount: float, ts: datetime) -> Transaction:
        """Add cash (negative: withdraw)."""
        ensure_utc(ts, "deposit ts")
        if not math.isfinite(amount):
            raise ValueError(f"deposit: amount must be finite, got {amount}")
        self.cash += amount
        self.deposits += amount
        tx = Transaction(ts, "deposit", "", 0.0, 0.0, amount)
        self.transactions.append(tx)
        return tx

    def _close(
        self,
        acc: _OpenTrade,
        qty: float,
        price: float,
        commission: float,
        realized: float,
        ts: datetime,
    ) -> None:
        acc.exit_qty += qty
        acc.exit_notional += qty * price
        acc.realized += realized
        acc.commission += commission
        del self._open[acc.symbol]
        self.trades.append(acc.to_trade(ts))

    # ---- persistence -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """A JSON-serializable copy of the whole state; ``from_snapshot`` restores it exactly."""
        return {
            "version": _SNAPSHOT_VERSION,
            "initial_cash": self.initial_cash,
            "cash": self.cash,
            "commission_paid": self.commission_paid,
            "deposits": self.deposits,
            "dividends": self.dividends,
            "positions": [asdict(p) for p in self._positions.values()],
            "open_trades": [acc.to_dict() for acc in self._open.values()],
            "transactions": [_with_iso(asdict(t), "ts") for t in self.transactions],
            "trades": [_with_iso(asdict(t), "entry_ts", "exit_ts") for t in self.trades],
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Ledger:
        version = data.get("version")
        if version != _SNAPSHOT_VERSION:
            raise ValueError(f"ledger snapshot: unsupported version {version!r}")
        ledger = cls(float(data["initial_cash"]))
        ledger.cash = float(data["cash"])
        ledger.commission_paid = float(data["commission_paid"])
        ledger.deposits = float(data["deposits"])
        ledger.dividends = float(data["dividends"])
        for p in data["positions"]:
            ledger._positions[p["symbol"]] = Position(**p)
        for t in data["open_trades"]:
            acc = _OpenTrade.from_dict(t)
            ledger._open[acc.symbol] = acc
        ledger.transactions = [
            Transaction(**{**t, "ts": _parse_ts(t["ts"])}) for t in data["transactions"]
        ]
        ledger.trades = [
            Trade(
                **{
                    **t,
                    "entry_ts": _parse_ts(t["entry_ts"]),
                    "exit_ts": _parse_ts(t["exit_ts"]) if t["exit_ts"] is not None else None,
                }
            )
            for t in data["trades"]
        ]
        ledger._fill_ids = {t.fill_id for t in ledger.transactions if t.fill_id}
        return ledger

    # ---- reports -----------------------------------------------------------------------------

    def transactions_frame(self) -> pd.DataFrame:
        """All transactions, one row each, in booking order."""
        import pandas as pd

        columns = list(Transaction.__dataclass_fields__)
        frame = pd.DataFrame([asdict(t) for t in self.transactions], columns=columns)
        frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
        return frame

    def trades_frame(self) -> pd.DataFrame:
        """Closed trades, one row each, with a ``duration`` column."""
        import pandas as pd

        columns = list(Trade.__dataclass_fields__)
        frame = pd.DataFrame([asdict(t) for t in self.trades], columns=columns)
        frame["entry_ts"] = pd.to_datetime(frame["entry_ts"], utc=True)
        frame["exit_ts"] = pd.to_datetime(frame["exit_ts"], utc=True)
        frame["duration"] = frame["exit_ts"] - frame["entry_ts"]
        return frame


def _price(prices: Mapping[str, float], symbol: str) -> float:
    try:
        return prices[symbol]
    except KeyError:
        raise KeyError(f"ledger: no price for held symbol {symbol!r}") from None


def _parse_ts(value: str) -> datetime:
    return ensure_utc(datetime.fromisoformat(value), "ledger snapshot ts")


def _with_iso(row: dict[str, Any], *keys: str) -> dict[str, Any]:
    for key in keys:
        if row[key] is not None:
            row[key] = row[key].isoformat()
    return row
