"""Exits attached to positions: take-profit, stop-loss and trailing stop on every entry.

With ``PortfolioConfig.exits`` every order that opens or increases a position is sent as a
bracket (``raytrader.domain.bracket``): its exit children are one OCO group, held by the
broker until the entry fills and sized to its fills. Their prices are set from the entry's
price when it is planned (its limit or stop price, else the open it is sent at). The broker
side (``raytrader.execution.exits``) then keeps one exit group per position, as large as the
position: an increase resizes it, a reduction or a close cancels it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.domain import Order, OrderType, Side
from raytrader.domain.bracket import bracket


class ExitsConfig(BaseModel):
    """Exit distances from the entry price, as fractions (0.05 = 5%); give at least one."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    take_profit_pct: float | None = Field(
        None,
        gt=0,
        le=10,
        description="take-profit limit this fraction beyond the entry price (above for a "
        "long, below for a short; a short's is left out from 1 on)",
    )
    stop_loss_pct: float | None = Field(
        None, gt=0, lt=1, description="stop-loss this fraction against the entry price"
    )
    trailing_pct: float | None = Field(
        None, gt=0, lt=1, description="trailing stop this fraction behind the best price"
    )

    @model_validator(mode="after")
    def _some_exit(self) -> ExitsConfig:
        if (
            self.take_profit_pct is None
            and self.stop_loss_pct is None
            and self.trailing_pct is None
        ):
            raise ValueError("give at least one of take_profit_pct, stop_loss_pct, trailing_pct")
        return self


def entry_price(order: Order, price: float) -> float:
    """The price an entry is expected to fill near: its limit or stop price, else ``price``."""
    if order.type in (OrderType.LIMIT, OrderType.STOP_LIMIT) and order.limit_price is not None:
        return order.limit_price
    if order.type is OrderType.STOP and order.stop_price is not None:
        return order.stop_price
    return price


def attach_exits(
    orders: Sequence[Order],
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    config: ExitsConfig,
) -> dict[str, tuple[Order, ...]]:
    """The exit children of each order of ``orders`` that opens or increases a position
    (starting from ``positions``, each order in turn), by the entry's client order id."""
    held = dict(positions)
    out: dict[str, tuple[Order, ...]] = {}
    for order in orders:
        before = held.get(order.symbol, 0.0)
        after = before + order.signed_quantity
        held[order.symbol] = after
        opens = after != 0.0 and (abs(after) > abs(before) or (after > 0) != (before > 0))
        if not opens or order.parent_id:
            continue
        ref = entry_price(order, prices.get(order.symbol, float("nan")))
        if not ref > 0:
            continue
        buy = order.side is Side.BUY
        tp = sl = None
        if config.take_profit_pct is not None and (buy or config.take_profit_pct < 1):
            tp = ref * (1 + config.take_profit_pct) if buy else ref * (1 - config.take_profit_pct)
        if config.stop_loss_pct is not None:
            sl = ref * (1 - config.stop_loss_pct) if buy else ref * (1 + config.stop_loss_pct)
        if tp is None and sl is None and config.trailing_pct is None:
            continue  # a short's only exit was a take-profit it can never reach
        out[order.client_order_id] = tuple(bracket(order, tp, sl, config.trailing_pct)[1:])
    return out
