"""The vectorized fast path: one symbol, market orders, weight targets, compiled with numba.

For agents whose decisions do not depend on anything but their indicators and the sign of the
position (``Agent.vectorizable``: sma_cross, rsi_reversion, bollinger_breakout), the whole
backtest is one compiled loop over the bars. It makes the same fills (bar, side, quantity and
price, bit for bit) and the same equity curve as ``BacktestEngine`` on the same data and config,
because it repeats the engine's arithmetic step by step, in the same order of float operations:

1. at bar ``t``'s open, the target decided at ``t - 1``'s close becomes an order, sized as
   ``Rebalancer.orders`` does it (weight x equity marked at this open / unit cost incl. slippage
   and commission, position-weight limit, lot rounding, cash net of the minimum commission and
   the gross-exposure cap) and checked as ``PreTradeRisk.check`` checks it; a new target
   cancels the rest of an older order; the broker rejects quantities off its lot grid;
2. the order fills at this open with slippage and commission, capped by the cash as
   ``PaperBroker`` caps it (a buy the cash cannot cover in full fills in part; its rest stays
   live and meets the next open, as a GTC market order would); the fill is booked as
   ``Ledger.apply_fill`` books it (dust positions snap to zero);
3. equity at the close is cash + position x close; then the agent's event of bar ``t`` (if
   any) becomes the pending target, unless it is an exit that only applies to a position of a
   given sign and the position has another sign.

Agent events are ``TargetEvents`` (``agent.target_events(data)``): per symbol row and bar, the
weight ``on_bar`` emits at that bar's close (NaN: no signal) and the sign the position must have
for it to be emitted (0: any; the exits of rsi_reversion and bollinger_breakout).

What the fast path cannot reproduce it refuses with ``FastPathUnsupported`` (a ``ValueError``
naming the reason), so a caller can fall back to the event engine: several symbols, a
participation cap, a kill switch or any of the optional pre-trade limits of ``RiskLimits``
(beyond position weight, gross exposure and shorting), exits attached to positions, a
rebalance band, bars the broker would not match (missing or invalid prices), an agent that is
not vectorizable or whose events are not weight targets for market orders.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from raytrader.agents.base import Agent
from raytrader.agents.events import TargetEvents
from raytrader.data.compiled import jit
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Fill, OrderType, Side
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import PortfolioConfig
from raytrader.state.ledger import Ledger, Trade
from raytrader.state.metric_kernels import position_exposure_stats
from raytrader.state.metrics import (
    ExposureStats,
    Metrics,
    TradeStats,
    compute_metrics,
    periods_per_year,
)

# Tolerances of the engine's components (the same literals, for the same results).
_LOT_EPS = 1e-9  # in lots: risk.sizing.round_to_lot and PaperBroker._floor_lot
_QTY_EPS = 1e-9  # PaperBroker._is_lot_multiple and OrderState.with_fill
_DUST = 1e-9  # Ledger: a reduction leaving less than this fraction of the position closes it
_RISK_TOL = 1e-9  # risk.checks: orders sized to a limit land on it up to float noise


class FastPathUnsupported(ValueError):
    """The fast path cannot reproduce the event engine for this data, agent or config."""


# ------------------------------------------------------------------------------ the kernel
# Each helper mirrors one function of the engine's components, operation for operation; the
# comments name the original. Python's max(a, b) keeps a unless b > a, min(a, b) keeps a
# unless b < a: the helpers spell that out so signed zeros come out the same.


@jit
def _commission(notional: float, bps: float, minimum: float) -> float:
    # CommissionModel.commission
    if notional == 0.0:
        return 0.0
    fee = abs(notional) * bps / 1e4
    return fee if fee > minimum else minimum


@jit
def _max_quantity(price: float, budget: float, bps: float, minimum: float) -> float:
    # CommissionModel.max_quantity
    if not (budget > 0.0 and price > 0.0):
        return 0.0
    rate = bps / 1e4
    a = (budget - minimum) / price
    b = budget / (price * (1.0 + rate))
    q = b if b < a else a
    for _ in range(64):
        if q <= 0.0 or q * price + _commission(q * price, bps, minimum) <= budget:
            break
        q -= q * 1e-15 + 1e-300
    return 0.0 if q < 0.0 else q


@jit
def _round_to_lot(quantity: float, lot: float) -> float:
    # risk.sizing.round_to_lot
    if lot <= 0.0:
        return quantity
    lots = math.floor(abs(quantity) / lot + _LOT_EPS)
    return math.copysign(lots * lot, quantity) if lots != 0 else 0.0


@jit
def _is_lot_multiple(quantity: float, lot: float) -> bool:
    # paper_broker._is_lot_multiple (round() is half-to-even, as np.rint)
    n = float(np.rint(quantity / lot))
    bound = lot if lot > quantity else quantity
    return n >= 1.0 and abs(n * lot - quantity) <= _QTY_EPS * bound


@jit
def _affordable(
    qty: float, price: float, budget: float, bps: float, minimum: float, lot: float
) -> float:
    # PaperBroker._affordable
    if qty * price + _commission(qty * price, bps, minimum) <= budget:
        return qty
    most = _max_quantity(price, budget, bps, minimum)
    if most < qty:
        qty = most
    if lot > 0.0:
        qty = math.floor(qty / lot + _LOT_EPS) * lot  # paper_broker._floor_lot
        if qty > 0.0 and qty * price + _commission(qty * price, bps, minimum) > budget:
            qty -= lot
    return 0.0 if qty < 0.0 else qty


@jit
def _gross_room(held: float, price: float, gross: float, cap: float) -> float:
    # portfolio.rebalancer._gross_room
    if held >= 0.0:
        free = cap - gross
        return (0.0 if free < 0.0 else free) / price
    without_short = gross + held * price
    free = cap - without_short
    return -held + (0.0 if free < 0.0 else free) / price


@jit
def _pre_trade_ok(
    qty: float,
    price: float,
    pos: float,
    equity: float,
    gross: float,
    max_position_weight: float,
    max_gross_exposure: float,
    allow_short: bool,
) -> bool:
    # risk.checks.PreTradeRisk.check, one order
    if not price > 0.0:
        return False
    after = pos + qty
    scale = pos if pos != 0.0 else 1.0  # `before or 1.0`
    if after < -_RISK_TOL * abs(scale) and not allow_short:
        return False
    if abs(after) > abs(pos) and abs(after) * price > max_position_weight * equity * (
        1.0 + _RISK_TOL
    ):
        return False
    new_gross = gross + (abs(after) - abs(pos)) * price
    return not (new_gross > gross and new_gross > max_gross_exposure * equity * (1.0 + _RISK_TOL))


@jit
def _order_quantity(
    weight: float,
    price: float,
    cash: float,
    pos: float,
    slippage_bps: float,
    commission_bps: float,
    commission_min: float,
    lot: float,
    max_position_weight: float,
    max_gross_exposure: float,
    allow_short: bool,
) -> float:
    """Signed quantity of the order a weight target sends to the broker (0: none)."""
    # planner.account_at: the account marked at this open (a flat book adds nothing).
    if pos != 0.0:
        equity = cash + pos * price
        gross = abs(pos) * price
    else:
        equity = cash
        gross = 0.0
    # Rebalancer.unit_cost(price, BUY): SlippageModel.adjust, then the proportional commission.
    unit = price * (1.0 + slippage_bps / 1e4) * (1.0 + commission_bps / 1e4)
    # Rebalancer.target_quantity -> risk.sizing.fixed_fractional
    units = 0.0 if unit <= 0.0 or not math.isfinite(unit) else equity * abs(weight) / unit
    wanted = math.copysign(units, weight)
    # risk.limits.clip_target
    if wanted < 0.0 and not allow_short:
        target = 0.0
    else:
        cap = max_position_weight * (0.0 if equity < 0.0 else equity) / price
        target = (cap if wanted > 0.0 else -cap) if abs(wanted) > cap else wanted
    target = _round_to_lot(target, lot)
    delta = target - pos
    if lot > 0.0:
        delta = _round_to_lot(delta, lot)
    if delta < 0.0:
        # Rebalancer.orders: a sell within the gross-exposure cap (selling a long frees room).
        room = _gross_room(-pos, price, gross, max_gross_exposure * equity)
        qty = delta
        if room < -qty:
            qty = -_round_to_lot(room, lot)
            if not qty < 0.0:
                return 0.0
    elif delta > 0.0:
        # Rebalancer.orders: buys within the cash net of the minimum commission and the
        # gross-exposure cap.
        free_cash = cash - commission_min
        affordable = (0.0 if free_cash < 0.0 else free_cash) / unit
        room = _gross_room(pos, price, gross, max_gross_exposure * equity)
        qty = delta
        if affordable < qty:
            qty = affordable
        if room < qty:
            qty = room
        qty = _round_to_lot(qty, lot)
        if not qty > 0.0:
            return 0.0
    else:
        return 0.0
    ok = _pre_trade_ok(
        qty, price, pos, equity, gross, max_position_weight, max_gross_exposure, allow_short
    )
    return qty if ok else 0.0


@jit
def simulate(
    open_: FloatArray,
    close: FloatArray,
    target: FloatArray,
    held: npt.NDArray[np.int8],
    initial_cash: float,
    slippage_bps: float,
    commission_bps: float,
    commission_min: float,
    lot: float,
    broker_lot: float,
    max_position_weight: float,
    max_gross_exposure: float,
    allow_short: bool,
    capacity: int,
) -> tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.int8],
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    FloatArray,
    int,
]:
    """Simulate one symbol; see the module docstring for the model.

    ``open_`` and ``close`` must be finite and positive (the caller checks). ``target`` and
    ``held`` are the two fields of the agent's events for the symbol. Returns the fills as
    arrays (bar, side +1 buy / -1 sell, quantity, price, commission), then equity and position
    after every bar, and the number of closed round trips; that number is -1 if there were
    more than ``capacity`` fills (there are at most as many fills as bars): run it again
    with more.
    """
    n = open_.shape[0]
    # Room for `capacity` fills, not n: n-sized arrays cost page faults on every run, and
    # growing them inside the loop would slow the whole loop down.
    fill_bar = np.empty(capacity, np.int64)
    fill_side = np.empty(capacity, np.int8)
    fill_qty = np.empty(capacity)
    fill_price = np.empty(capacity)
    fill_fee = np.empty(capacity)
    equity = np.empty(n)
    position = np.empty(n)
    buy_slip = 1.0 + slippage_bps / 1e4  # SlippageModel.adjust
    sell_slip = 1.0 - slippage_bps / 1e4
    cash = initial_cash
    pos = 0.0
    k = 0
    trades = 0
    pending = False
    pending_weight = 0.0
    live = False  # an order is working
    side = 0
    order_qty = 0.0
    filled = 0.0
    for i in range(n):
        o = open_[i]
        if pending:
            pending = False
            live = False  # a new target supersedes the rest of an older order
            qty = _order_quantity(
                pending_weight,
                o,
                cash,
                pos,
                slippage_bps,
                commission_bps,
                commission_min,
                lot,
                max_position_weight,
                max_gross_exposure,
                allow_short,
            )
            if qty != 0.0:
                side = 1 if qty > 0.0 else -1
                order_qty = abs(qty)
                filled = 0.0
                # PaperBroker.submit rejects quantities off its own lot grid.
                live = broker_lot <= 0.0 or _is_lot_multiple(order_qty, broker_lot)
        if live:
            # PaperBroker._match, market order at the open
            price = o * buy_slip if side > 0 else o * sell_slip
            remaining = order_qty - filled
            qty = remaining
            if side > 0:
                qty = _affordable(
                    qty, price, cash + 0.0, commission_bps, commission_min, broker_lot
                )
                if qty <= 0.0:
                    live = False  # rejected or, after a partial fill, cancelled for cash
            if live:
                if remaining < qty:
                    qty = remaining
                fee = _commission(qty * price, commission_bps, commission_min)
                if side < 0 and (cash + 0.0) + qty * price - fee < 0.0:
                    live = False  # a sell whose commission the cash cannot pay: refused
            if live:
                if k == capacity:
                    trades = -1
                    break
                fill_bar[k] = i
                fill_side[k] = side
                fill_qty[k] = qty
                fill_price[k] = price
                fill_fee[k] = fee
                k += 1
                # OrderState.with_fill
                total = filled + qty
                if total >= order_qty - _QTY_EPS * order_qty:
                    live = False
                else:
                    filled = total
                # Ledger.apply_fill
                q = qty if side > 0 else -qty
                if pos == 0.0 or (pos > 0.0) == (q > 0.0):
                    new_pos = pos + q
                else:
                    remainder = pos + q
                    if abs(remainder) <= _DUST * abs(pos):
                        new_pos = 0.0
                        trades += 1
                    else:
                        new_pos = remainder
                        if (remainder > 0.0) != (pos > 0.0):
                            trades += 1  # a flip closes the old trade
                cash += -q * price - fee
                pos = new_pos
        # BacktestResult.build: cash + position x close
        equity[i] = cash + pos * close[i] if pos != 0.0 else cash
        position[i] = pos
        # The agent decides at this close (BacktestEngine: on_bar after the fills).
        t = target[i]
        if t == t:
            h = held[i]
            if h == 0 or (h > 0 and pos > 0.0) or (h < 0 and pos < 0.0):
                pending = True
                pending_weight = t
    return (
        fill_bar[:k].copy(),
        fill_side[:k].copy(),
        fill_qty[:k].copy(),
        fill_price[:k].copy(),
        fill_fee[:k].copy(),
        equity,
        position,
        trades,
    )


@jit
def round_trip_stats(
    side: npt.NDArray[np.int8], quantity: FloatArray, price: FloatArray, commission: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``pnl`` and ``return_pct`` of the round trips the fills of one symbol close.

    The fills are arrays (side +1 buy / -1 sell, quantity, price, commission) in booking
    order; the numbers are those of the ``Trade`` objects ``Ledger.apply_fill`` books from
    them (no dividends or splits), with the ledger's float operations in the ledger's order.
    """
    n = side.shape[0]
    pnl = np.empty(n)
    ret = np.empty(n)
    k = 0
    qty = 0.0  # Position.quantity, Position.avg_cost
    avg = 0.0
    notional = 0.0  # the open trade (_OpenTrade): entry_notional, realized, commission
    realized = 0.0
    fees = 0.0
    for i in range(n):
        p, c = price[i], commission[i]
        q = quantity[i] if side[i] > 0 else -quantity[i]
        if qty == 0.0 or (qty > 0.0) == (q > 0.0):
            # Opening or adding.
            new_qty = qty + q
            new_avg = p if qty == 0.0 else (qty * avg + q * p) / new_qty
            if qty == 0.0:  # a flat position has no open trade: a new one starts
                notional = realized = fees = 0.0
            notional += abs(q) * p
            fees += c
        else:
            remainder = qty + q
            if abs(remainder) <= _DUST * abs(qty):
                # Full close (_close, then _OpenTrade.to_trade).
                realized += -q * p - qty * avg
                fees += c
                pnl[k] = realized - fees + 0.0 + 0.0  # + dividends + unrealized
                ret[k] = pnl[k] / notional
                k += 1
                new_qty, new_avg = 0.0, 0.0
            elif (remainder > 0.0) == (qty > 0.0):
                # Partial reduction.
                realized += -q * (p - avg)
                fees += c
                new_qty, new_avg = remainder, avg
            else:
                # Flip: close the old trade with its share of the commission, open the rest.
                close_c = c * abs(qty) / abs(q)
                realized += qty * (p - avg)
                fees += close_c
                pnl[k] = realized - fees + 0.0 + 0.0
                ret[k] = pnl[k] / notional
                k += 1
                new_qty, new_avg = remainder, p
                notional = abs(remainder) * p
                realized = 0.0
                fees = c - close_c
        qty, avg = new_qty, new_avg
    return pnl[:k].copy(), ret[:k].copy()


# ----------------------------------------------------------------------------- the wrapper

# periods_per_year of the last index it was asked for (a weak reference to the index, which is
# immutable): a sweep runs thousands of backtests on the same data.
_last_periods: tuple[weakref.ref[pd.DatetimeIndex], float] | None = None


def _periods_per_year(index: pd.DatetimeIndex) -> float:
    global _last_periods
    last = _last_periods
    if last is not None and last[0]() is index:
        return last[1]
    ppy = periods_per_year(index)
    _last_periods = (weakref.ref(index), ppy)
    return ppy


@dataclass(eq=False)
class FastResult:
    """What a fast-path run produced.

    ``fills`` has one row per fill: ``bar``, ``ts``, ``side`` (+1 buy, -1 sell), ``quantity``,
    ``price`` (after slippage) and ``commission``. ``equity`` and ``position`` are the values
    after every bar (cash + position x close, and the quantity held). ``n_trades`` counts
    closed round trips (the engine's ``len(result.trades)``); ``trades()`` books them as
    ``Trade`` objects, ``trade_stats()`` (what ``metrics()`` uses) only their pnl and return.
    """

    symbol: str
    initial_cash: float
    equity: pd.Series
    position: pd.Series
    n_trades: int
    final_equity: float
    _close: FloatArray = field(repr=False)
    # The fills as the kernel returns them: bar, side, quantity, price, commission.
    _fills: tuple[
        npt.NDArray[np.int64], npt.NDArray[np.int8], FloatArray, FloatArray, FloatArray
    ] = field(repr=False)
    _metrics: Metrics | None = field(default=None, repr=False)
    _fill_frame: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def fills(self) -> pd.DataFrame:
        """The fills, one row each (built on first use: sweeps that want metrics skip it)."""
        if self._fill_frame is None:
            bars, side, qty, price, fee = self._fills
            self._fill_frame = pd.DataFrame(
                {
                    "bar": bars,
                    "ts": self.equity.index[bars],
                    "side": side,
                    "quantity": qty,
                    "price": price,
                    "commission": fee,
                }
            )
        return self._fill_frame

    @property
    def gross_exposure(self) -> pd.Series:
        """|position x close| per bar, as ``BacktestResult.gross_exposure``."""
        return pd.Series(self._gross(), index=self.equity.index, name="gross_exposure")

    def _gross(self) -> FloatArray:
        # The close is finite (the data were checked), so a flat bar gives |0 x close| = 0.
        gross = self.position.to_numpy() * self._close
        return np.abs(gross, out=gross)

    def trades(self) -> list[Trade]:
        """Closed round trips, booked by a ``Ledger`` replaying the fills (as in the engine)."""
        ledger = Ledger(self.initial_cash)
        f = self.fills
        for ts, side, qty, price, fee in zip(
            f["ts"],
            f["side"].tolist(),
            f["quantity"].tolist(),
            f["price"].tolist(),
            f["commission"].tolist(),
            strict=True,
        ):
            side_ = Side.BUY if side > 0 else Side.SELL
            ledger.apply_fill(Fill("fast", self.symbol, side_, qty, price, fee, ts.to_pydatetime()))
        return list(ledger.trades)

    def trade_stats(self) -> TradeStats:
        """``pnl`` and ``return_pct`` of the closed round trips, as ``trades()`` has them."""
        _, side, qty, price, fee = self._fills
        return TradeStats(*round_trip_stats(side, qty, price, fee))

    def metrics(self, periods: float | None = None) -> Metrics:
        """``BacktestResult.metrics`` of this run: the same inputs, so the same numbers."""
        if self._metrics is not None and periods is None:
            return self._metrics
        index = cast(pd.DatetimeIndex, self.equity.index)  # the data's
        ppy = periods or _periods_per_year(index)
        # BacktestResult.metrics: (gross_exposure / equity).fillna(0.0), in one compiled pass.
        exposure = ExposureStats(
            *position_exposure_stats(self.position.to_numpy(), self._close, self.equity.to_numpy())
        )
        _, _, qty, price, _ = self._fills
        m = compute_metrics(
            self.equity,
            self.trade_stats(),
            periods_per_year=ppy,
            exposure=exposure,
            # The engine sums Fill.notional one fill after the other.
            traded_notional=float(sum((qty * price).tolist())),
        )
        if periods is None:
            self._metrics = m
        return m


@jit
def _first_bad_bar(
    open_: FloatArray, high: FloatArray, low: FloatArray, close: FloatArray
) -> tuple[int, int]:
    """First bar the engine would treat apart (no match or no mark) and how many there are."""
    good = 0  # a first pass without early exits (twice as fast): are all bars good?
    for i in range(open_.shape[0]):
        o, c = open_[i], close[i]
        good += (o > 0.0) & (o < np.inf) & (c > 0.0) & (c < np.inf) & (low[i] <= high[i])
    if good == open_.shape[0]:
        return -1, 0
    first, count = -1, 0
    for i in range(open_.shape[0]):
        o, c = open_[i], close[i]
        if not (0.0 < o < np.inf and 0.0 < c < np.inf and low[i] <= high[i]):
            count += 1
            if first < 0:
                first = i
    return first, count


@jit
def _scan_events(target: FloatArray, held: npt.NDArray[np.int8]) -> tuple[int, int]:
    """The first bad event (an infinite target or a held flag off -1, 0, 1; -1: none) and
    the number of signals."""
    bad = 0  # a first pass without early exits (ten times as fast): is any event bad?
    signals = 0
    for i in range(target.shape[0]):
        t, h = target[i], held[i]
        bad += ((t == np.inf) | (t == -np.inf)) | (h < -1) | (h > 1)
        signals += t == t
    if bad == 0:
        return -1, signals
    for i in range(target.shape[0]):
        t, h = target[i], held[i]
        if (t == t and not -np.inf < t < np.inf) or not -1 <= h <= 1:
            return i, signals
    return -1, signals


def _agent_reason(agent: Agent) -> str | None:
    if not getattr(agent, "vectorizable", False):
        return f"agent {agent.name!r} is not vectorizable"
    if not callable(getattr(agent, "target_events", None)):
        return f"agent {agent.name!r} has no target_events method"
    order_type = getattr(agent.params, "order_type", OrderType.MARKET)
    if order_type != OrderType.MARKET:
        return f"agent {agent.name!r} places {order_type} orders; the fast path places market"
    return None


def _config_reason(data: MarketData, broker: PaperBrokerConfig, initial_cash: float) -> str | None:
    if len(data.symbols) != 1:
        return f"the fast path simulates one symbol; the data has {len(data.symbols)}"
    if broker.participation_rate is not None:
        return "participation_rate is set: volume-capped fills need the event engine"
    if not (math.isfinite(initial_cash) and initial_cash > 0):
        return f"initial_cash must be a positive number, got {initial_cash}"
    return None


def _portfolio_reason(portfolio: PortfolioConfig) -> str | None:
    if portfolio.capital is not None:
        return "capital weights are set: netting the agents' targets needs the event engine"
    if portfolio.kill_switch is not None:
        return "a kill switch is configured: halting needs the event engine"
    if portfolio.exits is not None:
        return "exits are attached to positions: their bracket orders need the event engine"
    if portfolio.rebalance_band != 0.0:
        return "a rebalance band is set: the fast path trades every difference"
    extended = portfolio.limits.extended
    if extended:
        return f"pre-trade limits {', '.join(extended)} are set: they need the event engine"
    return None


# Verdicts on read-only data (a sweep's): the same arrays cannot change, so check them once.
_CHECKED: weakref.WeakKeyDictionary[MarketData, str | None] = weakref.WeakKeyDictionary()


def _data_reason(data: MarketData) -> str | None:
    frozen = not any(
        getattr(data, name).flags.writeable for name in ("open", "high", "low", "close")
    )
    if frozen and data in _CHECKED:
        return _CHECKED[data]
    reason = _check_data(data)
    if frozen:
        _CHECKED[data] = reason
    return reason


def _check_data(data: MarketData) -> str | None:
    if not data.index.is_monotonic_increasing:
        return "the data's timestamps are not in increasing order"
    first, count = _first_bad_bar(data.open[0], data.high[0], data.low[0], data.close[0])
    if count:
        return (
            f"{count} bar(s) with a missing or invalid open or close, or low above high "
            f"(first: bar {first}, {data.index[first]}); the event engine handles them"
        )
    return None


def _events_reason(events: TargetEvents, data: MarketData) -> str | None:
    if not isinstance(events, TargetEvents):
        return f"events must be TargetEvents, got {type(events).__name__}"
    expected = (len(data.symbols), data.n_bars)
    if events.shape != expected:
        return f"events have shape {events.shape}, expected {expected}"
    return None


def _row(a: npt.NDArray[Any], dtype: type[np.generic]) -> npt.NDArray[Any]:
    return np.ascontiguousarray(a[0], dtype=dtype)


def unsupported_reason(
    data: MarketData,
    broker: PaperBrokerConfig | None = None,
    *,
    agent: Agent | None = None,
    initial_cash: float = 100_000.0,
    portfolio: PortfolioConfig | None = None,
) -> str | None:
    """Why the fast path cannot reproduce the event engine here, or None if it can.

    Checks the agent (if given), the broker config, the portfolio config (if given) and the
    data; ``run_events`` also checks the events. Of the portfolio config, the lot size and the
    basic limits (position weight, gross exposure, shorting) are simulated; a kill switch or
    any optional pre-trade limit is refused. Its ``sizing`` settings size direction-only
    signals, which vectorizable agents do not emit (their signals carry weights).
    """
    return (
        (_agent_reason(agent) if agent is not None else None)
        or _config_reason(data, broker or PaperBrokerConfig(), initial_cash)
        or (_portfolio_reason(portfolio) if portfolio is not None else None)
        or _data_reason(data)
    )


def run_events(
    data: MarketData,
    events: TargetEvents,
    initial_cash: float = 100_000.0,
    broker: PaperBrokerConfig | None = None,
    portfolio: PortfolioConfig | None = None,
) -> FastResult:
    """Simulate precomputed agent ``events`` on one symbol.

    Raises ``FastPathUnsupported`` with the reason when the result could differ from the event
    engine's (see ``unsupported_reason``).
    """
    broker = broker or PaperBrokerConfig()
    portfolio = portfolio or PortfolioConfig()
    reason = (
        _config_reason(data, broker, initial_cash)
        or _portfolio_reason(portfolio)
        or _events_reason(events, data)
    )
    if reason is not None:
        raise FastPathUnsupported(reason)
    target, held = events.target[0], events.held[0]
    bad, signals = _scan_events(target, held)
    if bad >= 0:
        reason = f"events: bar {bad} has an infinite target or a held flag other than -1, 0, 1"
    reason = reason or _data_reason(data)
    if reason is not None:
        raise FastPathUnsupported(reason)
    limits = portfolio.limits
    args = (
        _row(data.open, np.float64),
        _row(data.close, np.float64),
        target,
        held,
        float(initial_cash),
        float(broker.slippage.bps),
        float(broker.commission.bps),
        float(broker.commission.minimum),
        float(portfolio.lot_size),
        float(broker.lot_size),
        float(limits.max_position_weight),
        float(limits.max_gross_exposure),
        bool(limits.allow_short),
    )
    # A signal makes one order; a buy the cash cannot cover fills in parts over several bars,
    # so a run may need more room than that: then it runs again with room for every bar.
    bars, sides, qty, price, fee, equity, position, n_trades = simulate(
        *args, min(data.n_bars, 2 * signals + 1024)
    )
    if n_trades < 0:
        bars, sides, qty, price, fee, equity, position, n_trades = simulate(*args, data.n_bars)
    close = args[1]
    index = data.index
    symbol = data.symbols[0]
    return FastResult(
        symbol=symbol,
        initial_cash=float(initial_cash),
        equity=pd.Series(equity, index=index, name="equity", copy=False),
        position=pd.Series(position, index=index, name=symbol, copy=False),
        n_trades=int(n_trades),
        final_equity=float(equity[-1]) if len(equity) else float(initial_cash),
        _close=close,
        _fills=(bars, sides, qty, price, fee),
    )


def run_fast(
    data: MarketData,
    agent: Agent,
    initial_cash: float = 100_000.0,
    broker: PaperBrokerConfig | None = None,
    portfolio: PortfolioConfig | None = None,
) -> FastResult:
    """Backtest one vectorizable ``agent`` on one symbol with the compiled kernel.

    The same fills and equity curve as ``BacktestEngine(initial_cash, broker,
    portfolio).run(data, [agent])``. Raises ``FastPathUnsupported`` (a ``ValueError``) naming
    the reason when that cannot be guaranteed, so the caller can run the event engine instead.
    """
    # The cheap checks first; run_events checks the data along with the events.
    reason = (
        _agent_reason(agent)
        or _config_reason(data, broker or PaperBrokerConfig(), initial_cash)
        or (_portfolio_reason(portfolio) if portfolio is not None else None)
    )
    if reason is not None:
        raise FastPathUnsupported(reason)
    events: TargetEvents = agent.target_events(data)  # type: ignore[attr-defined]
    return run_events(data, events, initial_cash, broker, portfolio)
