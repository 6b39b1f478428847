"""Small typed values shared by every component. Pure: no I/O, no frameworks."""

from raytrader.domain.bar import Bar, BarTuple
from raytrader.domain.bracket import bracket
from raytrader.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from raytrader.domain.fill import Fill, Position
from raytrader.domain.order import IllegalTransition, Order, OrderState
from raytrader.domain.signal import Signal
from raytrader.domain.time import ensure_utc, to_utc

__all__ = [
    "Bar",
    "BarTuple",
    "Fill",
    "IllegalTransition",
    "Order",
    "OrderState",
    "OrderStatus",
    "OrderType",
    "Position",
    "Side",
    "Signal",
    "TimeInForce",
    "bracket",
    "ensure_utc",
    "to_utc",
]
