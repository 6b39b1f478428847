"""Signals -> target positions -> the orders that move the account there."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from raytrader.domain import Order, OrderType, Side, Signal
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.portfolio.config import PortfolioConfig
from raytrader.risk.limits import clip_target
from raytrader.risk.sizing import atr_risk_unit, fixed_fractional, round_to_lot


@dataclass(frozen=True, slots=True)
class AccountView:
    """What the rebalancer needs to know about the account at order time."""

    cash: float
    equity: float
    positions: Mapping[str, float]
    gross_exposure: float


@dataclass(frozen=True, slots=True)
class Adjustment:
    """A target the rebalancer could not honour in full, and why (for the journal)."""

    symbol: str
    wanted: float
    got: float
    reason: str


class Rebalancer:
    """Turns the latest signals into orders, honouring limits and the cash on hand.

    Sells come first so their proceeds fund the buys; buys are served in signal order (agents
    emit them by priority) until cash runs out. Nothing buys with cash the account does not have.
    With ``rebalance_band`` a held position whose target differs by less than band x equity in
    notional is left as it is (prices drifting under constant weights would otherwise send a
    small order at every rebalance); opening, closing and flipping always trade.
    """

    def __init__(
        self,
        config: PortfolioConfig,
        commission: CommissionModel,
        slippage: SlippageModel,
    ) -> None:
        self.config = config
        self.commission = commission
        self.slippage = slippage
        self.adjustments: list[Adjustment] = []

    def unit_cost(self, price: float, side: Side) -> float:
        """Cash per unit including slippage and proportional commission."""
        fill = self.slippage.adjust(price, side)
        rate = self.commission.bps / 1e4
        return fill * (1 + rate) if side is Side.BUY else fill * (1 - rate)

    def target_quantity(
        self, signal: Signal, price: float, equity: float, atr: Callable[[str], float] | None
    ) -> float:
        """Signed units the signal asks for, before limits."""
        if signal.quantity is not None:
            return signal.quantity
        buy_cost = self.unit_cost(price, Side.BUY)
        if signal.weight is not None:
            return math.copysign(
                fixed_fractional(equity, abs(signal.weight), buy_cost), signal.weight
            )
        if signal.direction == 0:
            return 0.0
        sizing = self.config.sizing
        if sizing.method == "atr_risk":
            if atr is None:
                raise ValueError("atr_risk sizing needs ATR values")
            units = atr_risk_unit(equity, sizing.risk_factor, atr(signal.symbol))
        else:
            units = fixed_fractional(equity, sizing.fraction, buy_cost)
        return signal.direction * units

    def orders(
        self,
        signals: Sequence[Signal],
        prices: Mapping[str, float],
        account: AccountView,
        ts: datetime,
        next_id: Callable[[], str],
        atr: Callable[[str], float] | None = None,
    ) -> list[Order]:
        """Orders moving ``account`` to the targets of ``signals`` (the last per symbol wins)."""
        latest: dict[str, Signal] = {}
        for sig in signals:
            latest.pop(sig.symbol, None)  # re-insert so priority follows the latest signal
            latest[sig.symbol] = sig
        limits, lot = self.config.limits, self.config.lot_size
        band = self.config.rebalance_band * account.equity

        deltas: list[tuple[Signal, float, float]] = []
        for sig in latest.values():
            price = prices.get(sig.symbol, math.nan)
            if not (price > 0 and math.isfinite(price)):
                self.adjustments.append(Adjustment(sig.symbol, 0.0, 0.0, "no price"))
                continue
            wanted = self.target_quantity(sig, price, account.equity, atr)
            target, why = clip_target(wanted, price, account.equity, limits)
            target = round_to_lot(target, lot)
            if why:
                self.adjustments.append(Adjustment(sig.symbol, wanted, target, why))
            held = account.positions.get(sig.symbol, 0.0)
            delta = target - held
            if lot > 0:
                delta = round_to_lot(delta, lot)
            if delta != 0.0 and not (band and _within_band(held, target, delta * price, band)):
                deltas.append((sig, delta, price))

        cash = account.cash
        gross = account.gross_exposure
        out: list[Order] = []
        gross_cap = limits.max_gross_exposure * account.equity
        for sig, delta, price in (d for d in deltas if d[1] < 0):
            held = account.positions.get(sig.symbol, 0.0)
            qty = -delta
            room = _gross_room(-held, price, gross, gross_cap)  # a short mirrors a long
            if room < qty:
                qty = round_to_lot(room, lot)
                self.adjustments.append(
                    Adjustment(sig.symbol, held + delta, held - qty, "max_gross_exposure")
                )
                if qty <= 0:
                    continue
            out.append(self._order(sig, Side.SELL, qty, ts, next_id))
            cash += qty * self.unit_cost(price, Side.SELL)
            gross += (abs(held - qty) - abs(held)) * price
        for sig, delta, price in (d for d in deltas if d[1] > 0):
            held = account.positions.get(sig.symbol, 0.0)
            unit = self.unit_cost(price, Side.BUY)
            affordable = max(cash - self.commission.minimum, 0.0) / unit
            room = _gross_room(held, price, gross, gross_cap)
            qty, reason = delta, ""
            if affordable < qty:
                qty, reason = affordable, "insufficient cash"
            if room < qty:
                qty, reason = room, "max_gross_exposure"
            qty = round_to_lot(qty, lot)
            if reason:
                self.adjustments.append(Adjustment(sig.symbol, held + delta, held + qty, reason))
            if qty <= 0:
                continue
            out.append(self._order(sig, Side.BUY, qty, ts, next_id))
            cash -= qty * unit + self.commission.minimum
            gross += (abs(held + qty) - abs(held)) * price
        return out

    @staticmethod
    def _order(
        sig: Signal, side: Side, qty: float, ts: datetime, next_id: Callable[[], str]
    ) -> Order:
        typed = sig.order_type is not OrderType.MARKET
        return Order(
            client_order_id=next_id(),
            symbol=sig.symbol,
            side=side,
            quantity=qty,
            ts=ts,
            type=sig.order_type,
            limit_price=sig.limit_price if typed else None,
            stop_price=sig.stop_price if typed else None,
            time_in_force=sig.time_in_force,
            tag=sig.reason,
        )


def _within_band(held: float, target: float, notional: float, band: float) -> bool:
    """Whether a trade of ``notional`` is too small to send: inside the no-trade band, and
    neither opening a position from zero nor closing or flipping one."""
    if held == 0.0 or target == 0.0 or (held > 0) != (target > 0):
        return False
    return abs(notional) < band


def _gross_room(held: float, price: float, gross: float, cap: float) -> float:
    """Units a buy may add before gross exposure passes ``cap`` (covering a short frees room).

    For a sell, pass ``-held``: selling a long frees room as covering a short does.
    """
    if held >= 0:
        return max(cap - gross, 0.0) / price
    without_short = gross + held * price
    return -held + max(cap - without_short, 0.0) / price
