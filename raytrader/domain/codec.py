"""JSON-ready dicts for the domain values (journal, events, API), and back."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from raytrader.domain.enums import OrderStatus, OrderType, Side, TimeInForce
from raytrader.domain.fill import Fill, Position
from raytrader.domain.order import Order, OrderState
from raytrader.domain.signal import Signal
from raytrader.domain.time import to_utc

T = TypeVar("T", Order, Fill, Signal, Position)

_ENUMS: dict[str, type[Enum]] = {
    "side": Side,
    "type": OrderType,
    "order_type": OrderType,
    "time_in_force": TimeInForce,
    "status": OrderStatus,
}
_TIMES = frozenset({"ts", "updated"})


def to_dict(value: Order | Fill | Signal | Position) -> dict[str, Any]:
    """Flat dict with enums as strings and timestamps as ISO-8601 UTC."""
    out: dict[str, Any] = {}
    for f in fields(value):
        v = getattr(value, f.name)
        if isinstance(v, Enum):
            v = v.value
        elif isinstance(v, datetime):
            v = v.isoformat()
        out[f.name] = v
    return out


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Inverse of ``to_dict``; unknown keys are an error (``TypeError`` naming them)."""
    kwargs: dict[str, Any] = {}
    for key, v in data.items():
        if key in _ENUMS and v is not None:
            v = _ENUMS[key](v)
        elif key in _TIMES and v is not None:
            v = to_utc(v)
        kwargs[key] = v
    return cls(**kwargs)


def state_to_dict(state: OrderState) -> dict[str, Any]:
    return {
        "order": to_dict(state.order),
        "status": state.status.value,
        "filled_quantity": state.filled_quantity,
        "avg_fill_price": state.avg_fill_price,
        "reason": state.reason,
        "updated": state.updated.isoformat() if state.updated else None,
    }


def state_from_dict(data: dict[str, Any]) -> OrderState:
    return OrderState(
        order=from_dict(Order, data["order"]),
        status=OrderStatus(data["status"]),
        filled_quantity=float(data["filled_quantity"]),
        avg_fill_price=float(data["avg_fill_price"]),
        reason=str(data.get("reason", "")),
        updated=to_utc(data["updated"]) if data.get("updated") else None,
    )
