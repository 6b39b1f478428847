"""An exchange market's order limits, checked before an order is sent (pure).

The exchange adapter rounds amount and price to the market's precision (ccxt's
``amount_to_precision`` / ``price_to_precision``) and then asks ``limit_refusal`` whether the
rounded order passes the market's minimum and maximum amount, price and cost (notional). A
refusal is the reason the order is rejected with, before anything reaches the exchange.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MarketLimits:
    """Bounds of one market; None = no bound."""

    symbol: str
    min_amount: float | None = None
    max_amount: float | None = None
    min_price: float | None = None
    max_price: float | None = None
    min_cost: float | None = None
    max_cost: float | None = None

    @classmethod
    def from_ccxt(cls, market: Mapping[str, Any]) -> MarketLimits:
        """From a ccxt unified market (``market['limits']``)."""
        limits = market.get("limits") or {}

        def bound(kind: str, end: str) -> float | None:
            value = (limits.get(kind) or {}).get(end)
            return None if value is None else float(value)

        return cls(
            symbol=str(market["symbol"]),
            min_amount=bound("amount", "min"),
            max_amount=bound("amount", "max"),
            min_price=bound("price", "min"),
            max_price=bound("price", "max"),
            min_cost=bound("cost", "min"),
            max_cost=bound("cost", "max"),
        )


def limit_refusal(limits: MarketLimits, amount: float, price: float | None) -> str:
    """Why an order of ``amount`` at ``price`` (a limit, or a reference price for a market
    order; None skips the price and cost checks) breaks the market's limits; "" if it does not.
    """
    sym = limits.symbol
    if not (math.isfinite(amount) and amount > 0):
        return f"{sym}: amount {amount} rounds to nothing at the market's precision"
    if limits.min_amount is not None and amount < limits.min_amount:
        return f"{sym}: amount {amount} is below the market's minimum amount {limits.min_amount}"
    if limits.max_amount is not None and amount > limits.max_amount:
        return f"{sym}: amount {amount} is above the market's maximum amount {limits.max_amount}"
    if price is None:
        return ""
    if limits.min_price is not None and price < limits.min_price:
        return f"{sym}: price {price} is below the market's minimum price {limits.min_price}"
    if limits.max_price is not None and price > limits.max_price:
        return f"{sym}: price {price} is above the market's maximum price {limits.max_price}"
    cost = amount * price
    if limits.min_cost is not None and cost < limits.min_cost:
        return f"{sym}: order value {cost:g} is below the market's minimum cost {limits.min_cost}"
    if limits.max_cost is not None and cost > limits.max_cost:
        return f"{sym}: order value {cost:g} is above the market's maximum cost {limits.max_cost}"
    return ""


_CLIENT_ID_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/")


def exchange_client_id(client_order_id: str, max_len: int = 36) -> str:
    """The client order id to send: ours when the exchange accepts it (Binance: 1-36 of
    ``[.A-Za-z0-9:/_-]``), else a stable digest of it, so a retry sends the same id."""
    if len(client_order_id) <= max_len and set(client_order_id) <= _CLIENT_ID_OK:
        return client_order_id
    return "rt-" + hashlib.sha256(client_order_id.encode()).hexdigest()[: max_len - 3]
