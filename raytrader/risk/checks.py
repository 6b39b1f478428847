"""Pre-trade checks: every order passes here before it reaches a broker.

``PreTradeRisk.check`` takes the orders of one moment (one bar's open, or one manual order) in
order; each order that passes counts toward the next one's exposure, open orders and rate.
A refused order comes back with a reason that names the limit and the numbers, e.g.
``"max_order_notional: 12,500.00 > 10,000.00"``; callers journal it as the order's rejection.

The checks, in the order they are tried (the first that fails gives the reason):

- ``halted: <why>``: the session's kill switch tripped; nothing passes until it is resumed.
- ``no price for <symbol>``; ``short selling not allowed`` (counting the sells already resting
  on the symbol, ``RiskContext.resting``: the worst case is that they all fill, so two resting
  sells cannot together take a long position short).
- ``max_order_notional``: quantity x price, at the order's limit price (else its stop price,
  else the reference price) against the limit.
- ``price_band``: a limit or stop price further than the band (a fraction) from the
  reference price, the last price the caller knows for the symbol. Market orders carry no
  price of their own (the market prices them), so the band does not apply to them; a
  fat-fingered market order is caught by its size (``max_order_notional``).
- ``max_open_orders``: orders working at the broker (``RiskContext.open_orders``), those
  passed earlier in the batch and this one.
- ``max_orders_per_minute``: orders sent within the 60 s up to the order's time
  (``RiskContext.order_times`` and those passed earlier in the batch) and this one. Times are
  the caller's clock: bar times in backtests and sessions.
- ``max_position_weight``, ``max_gross_exposure``, ``max_net_exposure``: exposure after the
  order / equity, for orders that increase it; the position weight counts the orders resting
  on the symbol in the order's direction as filled.
- ``daily_loss_limit``: once the account lost more than the limit of the day's starting
  equity (``RiskContext.day_start_equity``), orders that open or increase a position.
- ``max_correlation``: an order that opens or increases a position whose bar returns, over
  the last ``risk_lookback`` bars, correlate above the limit with another holding's. The
  correlation is signed by the sides (a long and a short of two assets that move together
  hedge each other: their signed correlation is negative).
- ``max_var``: the one-bar historical VaR at 95% of the positions after the order (their
  value today times each of the last ``risk_lookback`` bars' returns), over equity, when it
  exceeds the limit and the order increases it.

Checks that need context the caller did not give (no ``RiskContext``, no day-start equity,
fewer than ``MIN_OBSERVATIONS`` complete bars of returns) let the order through.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from raytrader.domain import Order, OrderState, Side
from raytrader.portfolio.rebalancer import AccountView
from raytrader.risk.limits import RiskLimits

# Orders sized to a limit at the same prices land on it up to float noise.
_TOL = 1e-9
#: Complete bars of returns max_correlation and max_var need; with fewer they pass orders.
MIN_OBSERVATIONS = 10
#: Confidence of the max_var check.
VAR_CONFIDENCE = 0.95
_MINUTE = timedelta(seconds=60)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the checks need besides the account and the prices; every field is optional.

    ``now``: the time the orders are sent (each order's ``ts`` when None). ``open_orders``:
    orders working at the broker now (after any cancels of this moment). ``order_times``: when
    earlier orders were sent (only the last minute matters). ``day_start_equity``: the
    account's equity at the start of the day. ``returns``: recent bar returns by symbol, oldest
    first, aligned on the same bars (the last value is the last bar's). ``halted``: the kill
    switch's reason when the session is halted. ``resting``: by symbol, the quantities still to
    fill of the orders working at the broker, ``(buys, sells)`` (see ``resting_quantities``).
    """

    now: datetime | None = None
    open_orders: int = 0
    order_times: Sequence[datetime] = ()
    day_start_equity: float | None = None
    returns: Mapping[str, Sequence[float] | FloatArray] | None = None
    halted: str = ""
    resting: Mapping[str, tuple[float, float]] = field(default_factory=dict)


def resting_quantities(
    states: Iterable[OrderState], but: Iterable[str] = ()
) -> dict[str, tuple[float, float]]:
    """``(buys, sells)`` still to fill by symbol of the open orders among ``states`` (not of
    the symbols ``but``), as ``RiskContext.resting`` takes them.

    Exits (orders with a parent) are left out: they only close what their entry opened and
    are cancelled when an order reduces the position. An OCO group counts once, at its
    largest member: one fill cancels the others.
    """
    skip = set(but)
    grouped: dict[tuple[str, str, Side], float] = {}
    out: dict[str, tuple[float, float]] = {}
    for st in states:
        o = st.order
        if not st.is_open or o.parent_id or o.symbol in skip:
            continue
        qty = st.remaining
        if o.oco_group:
            key = (o.oco_group, o.symbol, o.side)
            before = grouped.get(key, 0.0)
            grouped[key] = max(before, qty)
            qty = grouped[key] - before
        buys, sells = out.get(o.symbol, (0.0, 0.0))
        out[o.symbol] = (buys + qty, sells) if o.side is Side.BUY else (buys, sells + qty)
    return out


def bar_returns(symbols: Sequence[str], closes: FloatArray) -> dict[str, FloatArray]:
    """Close-to-close returns by symbol of ``closes`` (shape: symbols x bars, oldest first)."""
    closes = np.asarray(closes, dtype=float)
    if closes.ndim != 2 or closes.shape[1] < 2:
        return {s: np.empty(0) for s in symbols}
    with np.errstate(divide="ignore", invalid="ignore"):
        r = closes[:, 1:] / closes[:, :-1] - 1.0
    return {s: r[j] for j, s in enumerate(symbols)}


def order_price(order: Order, reference: float) -> float:
    """The price an order is valued at: its limit price, else its stop price, else the
    reference price."""
    if order.limit_price is not None:
        return order.limit_price
    if order.stop_price is not None:
        return order.stop_price
    return reference


def _recent(
    returns: Mapping[str, Sequence[float] | FloatArray], symbols: Sequence[str], lookback: int
) -> FloatArray | None:
    """The last ``lookback`` bars on which all ``symbols`` have a finite return
    (symbols x bars), or None when some symbol has none or there are too few such bars."""
    rows = []
    for s in symbols:
        r = returns.get(s)
        if r is None:
            return None
        rows.append(np.asarray(r, dtype=float))
    n = min(len(r) for r in rows)
    if n < MIN_OBSERVATIONS:
        return None
    m = np.vstack([r[len(r) - n :] for r in rows])[:, -lookback:]
    m = m[:, np.isfinite(m).all(axis=0)]
    return m if m.shape[1] >= MIN_OBSERVATIONS else None


def _correlation(a: FloatArray, b: FloatArray) -> float | None:
    sa, sb = float(a.std()), float(b.std())
    if not (sa > 0 and sb > 0):
        return None
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def historical_var(
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    returns: Mapping[str, Sequence[float] | FloatArray],
    lookback: int,
    confidence: float = VAR_CONFIDENCE,
) -> float | None:
    """One-bar historical VaR (a loss, >= 0, in currency) of ``positions`` valued at
    ``prices``: each of the last ``lookback`` bars' returns applied to today's values. None
    when some position has too few returns."""
    held = [(s, q) for s, q in positions.items() if q != 0.0]
    if not held:
        return 0.0
    m = _recent(returns, [s for s, _ in held], lookback)
    if m is None:
        return None
    values = np.array([q * prices.get(s, math.nan) for s, q in held])
    if not np.isfinite(values).all():
        return None
    pnl = values @ m
    return max(-float(np.quantile(pnl, 1.0 - confidence)), 0.0)


class PreTradeRisk:
    """Checks orders against the limits; returns those that pass and those refused, with why."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits

    def check(
        self,
        orders: Sequence[Order],
        account: AccountView,
        prices: Mapping[str, float],
        context: RiskContext | None = None,
    ) -> tuple[list[Order], list[tuple[Order, str]]]:
        limits = self.limits
        ctx = context or RiskContext()
        held = dict(account.positions)
        gross = account.gross_exposure
        equity = account.equity
        net = 0.0
        if limits.max_net_exposure is not None:
            for s, q in held.items():
                p = prices.get(s, math.nan)
                if p == p:
                    net += q * p
        open_orders = ctx.open_orders
        sent = list(ctx.order_times)
        passed: list[Order] = []
        refused: list[tuple[Order, str]] = []
        for order in orders:
            price = prices.get(order.symbol, float("nan"))
            before = held.get(order.symbol, 0.0)
            after = before + order.signed_quantity
            # What rests in the order's direction fills first in the worst case.
            buys, sells = ctx.resting.get(order.symbol, (0.0, 0.0))
            ahead = buys if order.side is Side.BUY else -sells
            reason = ""
            if ctx.halted:
                reason = f"halted: {ctx.halted}"
            elif not price > 0:
                reason = f"no price for {order.symbol}"
            elif after + ahead < -_TOL * abs(before or 1.0) and not limits.allow_short:
                reason = "short selling not allowed"
                if ahead:
                    reason += (
                        f": position {before:g} - resting sells {sells:g} - this sell "
                        f"{order.quantity:g} = {after + ahead:g}"
                    )
            else:
                reason = self._order_limits(order, price, open_orders, sent, ctx)
                if not reason:
                    reason = self._exposure_limits(
                        order, price, before, after, ahead, equity, gross, net, held, prices, ctx
                    )
            if reason:
                refused.append((order, reason))
                continue
            passed.append(order)
            held[order.symbol] = after
            open_orders += 1
            sent.append(ctx.now or order.ts)
            gross += (abs(after) - abs(before)) * price
            net += order.signed_quantity * price
        return passed, refused

    def _order_limits(
        self,
        order: Order,
        price: float,
        open_orders: int,
        sent: Sequence[datetime],
        ctx: RiskContext,
    ) -> str:
        """The limits of the order itself: its size, its price, how many orders and how fast."""
        limits = self.limits
        if limits.max_order_notional is not None:
            notional = order.quantity * order_price(order, price)
            if notional > limits.max_order_notional * (1 + _TOL):
                return f"max_order_notional: {notional:,.2f} > {limits.max_order_notional:,.2f}"
        if limits.price_band is not None:
            for kind, p in (("limit", order.limit_price), ("stop", order.stop_price)):
                if p is None:
                    continue
                off = abs(p / price - 1.0)
                if off > limits.price_band * (1 + _TOL):
                    return (
                        f"price_band: {kind} {p:,.2f} vs last {price:,.2f} is "
                        f"{off:.4f} > {limits.price_band:.4f}"
                    )
        if limits.max_open_orders is not None and open_orders + 1 > limits.max_open_orders:
            return f"max_open_orders: {open_orders + 1} > {limits.max_open_orders}"
        if limits.max_orders_per_minute is not None:
            now = ctx.now or order.ts
            recent = sum(1 for t in sent if now - _MINUTE < t <= now) + 1
            if recent > limits.max_orders_per_minute:
                return f"max_orders_per_minute: {recent} > {limits.max_orders_per_minute}"
        return ""

    def _exposure_limits(
        self,
        order: Order,
        price: float,
        before: float,
        after: float,
        ahead: float,
        equity: float,
        gross: float,
        net: float,
        held: Mapping[str, float],
        prices: Mapping[str, float],
        ctx: RiskContext,
    ) -> str:
        """The limits on the account after the order: exposures, the day's loss, risk."""
        limits = self.limits
        increases = abs(after) > abs(before)
        size = abs(after + ahead)  # with the resting orders of the same direction filled
        if increases and size * price > limits.max_position_weight * equity * (1 + _TOL):
            weight = _ratio(size * price, equity)
            why = f"max_position_weight: {weight:.4f} > {limits.max_position_weight:.4f}"
            return f"{why} (with {abs(ahead):g} resting)" if ahead else why
        new_gross = gross + (abs(after) - abs(before)) * price
        if new_gross > gross and new_gross > limits.max_gross_exposure * equity * (1 + _TOL):
            return (
                f"max_gross_exposure: {_ratio(new_gross, equity):.4f} > "
                f"{limits.max_gross_exposure:.4f}"
            )
        if limits.max_net_exposure is not None:
            new_net = net + order.signed_quantity * price
            if abs(new_net) > abs(net) and abs(new_net) > limits.max_net_exposure * equity * (
                1 + _TOL
            ):
                return (
                    f"max_net_exposure: {_ratio(abs(new_net), equity):.4f} > "
                    f"{limits.max_net_exposure:.4f}"
                )
        if not increases:
            return ""  # the rest refuse only orders that add risk
        start = ctx.day_start_equity
        if limits.daily_loss_limit is not None and start is not None and start > 0:
            loss = (start - equity) / start
            if loss > limits.daily_loss_limit:
                return (
                    f"daily_loss_limit: {loss:.4f} > {limits.daily_loss_limit:.4f} "
                    f"(equity {equity:,.2f}, day start {start:,.2f})"
                )
        if ctx.returns is not None and limits.max_correlation is not None:
            worst = self._worst_correlation(order.symbol, after, held, ctx.returns)
            if worst is not None and worst[1] > limits.max_correlation:
                return (
                    f"max_correlation: {order.symbol} with {worst[0]} {worst[1]:.4f} > "
                    f"{limits.max_correlation:.4f}"
                )
        if ctx.returns is not None and limits.max_var is not None:
            lookback = limits.risk_lookback
            later = {**held, order.symbol: after}
            var_after = historical_var(later, prices, ctx.returns, lookback)
            if var_after is not None:
                frac = _ratio(var_after, equity)
                if frac > limits.max_var:
                    var_before = historical_var(held, prices, ctx.returns, lookback)
                    if var_before is None or var_after > var_before * (1 + _TOL):
                        return f"max_var: {frac:.4f} > {limits.max_var:.4f}"
        return ""

    def _worst_correlation(
        self,
        symbol: str,
        after: float,
        held: Mapping[str, float],
        returns: Mapping[str, Sequence[float] | FloatArray],
    ) -> tuple[str, float] | None:
        """The holding whose returns correlate most with ``symbol``'s, signed by the sides."""
        worst: tuple[str, float] | None = None
        for other in _holdings(held, symbol):
            m = _recent(returns, [symbol, other], self.limits.risk_lookback)
            if m is None:
                continue
            corr = _correlation(m[0], m[1])
            if corr is None:
                continue
            signed = corr * math.copysign(1.0, after) * math.copysign(1.0, held[other])
            if worst is None or signed > worst[1]:
                worst = (other, signed)
        return worst


def _holdings(held: Mapping[str, float], but: str) -> Iterable[str]:
    return (s for s, q in held.items() if q != 0.0 and s != but)


def _ratio(amount: float, equity: float) -> float:
    return amount / equity if equity > 0 else math.inf
