"""Pre-trade checks: every order passes here before it reaches a broker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from raytrader.domain import Order
from raytrader.portfolio.rebalancer import AccountView
from raytrader.risk.limits import RiskLimits

# Orders sized to a limit at the same prices land on it up to float noise.
_TOL = 1e-9


class PreTradeRisk:
    """Checks orders against the limits; returns those that pass and those refused, with why."""

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits

    def check(
        self, orders: Sequence[Order], account: AccountView, prices: Mapping[str, float]
    ) -> tuple[list[Order], list[tuple[Order, str]]]:
        limits = self.limits
        held = dict(account.positions)
        gross = account.gross_exposure
        equity = account.equity
        passed: list[Order] = []
        refused: list[tuple[Order, str]] = []
        for order in orders:
            price = prices.get(order.symbol, float("nan"))
            before = held.get(order.symbol, 0.0)
            after = before + order.signed_quantity
            reason = ""
            if not price > 0:
                reason = f"no price for {order.symbol}"
            elif after < -_TOL * abs(before or 1.0) and not limits.allow_short:
                reason = "short selling not allowed"
            elif abs(after) > abs(before) and abs(after) * price > (
                limits.max_position_weight * equity * (1 + _TOL)
            ):
                reason = "max_position_weight"
            else:
                new_gross = gross + (abs(after) - abs(before)) * price
                if new_gross > gross and new_gross > limits.max_gross_exposure * equity * (
                    1 + _TOL
                ):
                    reason = "max_gross_exposure"
            if reason:
                refused.append((order, reason))
                continue
            passed.append(order)
            held[order.symbol] = after
            if price > 0:
                gross += (abs(after) - abs(before)) * price
        return passed, refused
