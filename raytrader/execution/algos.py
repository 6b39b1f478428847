"""Execution algorithms: a parent order sliced into child orders over time (pure).

* TWAP: equal slices at equal intervals between ``start`` and ``end``.
* VWAP: slices in proportion to a bar volume profile (one slice per bar, at the bar's time).

Slices are rounded down to the lot size by cumulative target (``floor(Q * share so far)``), so
the rounding never drifts: the children always add up to the parent's quantity exactly when that
quantity is a lot multiple, and slices that round to nothing are dropped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from raytrader.domain import Order, OrderType
from raytrader.domain.time import ensure_utc

# Relative tolerance of the lot rounding (0.3 / 0.1 = 2.9999999999999996 is 3 lots).
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class ChildSlice:
    """One child of a parent order: its number, when it is due and its quantity."""

    index: int
    due: datetime
    quantity: float


def _floor_lot(quantity: float, lot: float) -> float:
    if lot <= 0:
        return quantity
    return math.floor(quantity / lot + _EPS) * lot


def _check(quantity: float, lot_size: float) -> None:
    if not (math.isfinite(quantity) and quantity > 0):
        raise ValueError(f"parent quantity must be a positive number, got {quantity}")
    if not (math.isfinite(lot_size) and lot_size >= 0):
        raise ValueError(f"lot_size must be >= 0, got {lot_size}")


def _by_weights(
    quantity: float, dues: Sequence[datetime], weights: Sequence[float], lot_size: float
) -> list[ChildSlice]:
    total = math.fsum(weights)
    out: list[ChildSlice] = []
    done = 0.0
    cum = 0.0
    target = _floor_lot(quantity, lot_size)
    for i, (due, w) in enumerate(zip(dues, weights, strict=True)):
        cum += w
        last = i == len(weights) - 1
        upto = target if last else min(target, _floor_lot(quantity * cum / total, lot_size))
        qty = upto - done
        if qty > _EPS * max(quantity, 1.0):
            out.append(ChildSlice(len(out), due, qty))
            done = upto
    return out


def twap_schedule(
    quantity: float, start: datetime, end: datetime, slices: int, lot_size: float = 0.0
) -> list[ChildSlice]:
    """``slices`` equal children, the first at ``start`` and the others every
    ``(end - start) / slices`` after it (the last is due one interval before ``end``)."""
    _check(quantity, lot_size)
    ensure_utc(start, "twap start")
    ensure_utc(end, "twap end")
    if slices < 1:
        raise ValueError(f"slices must be >= 1, got {slices}")
    if end <= start:
        raise ValueError(f"twap end {end.isoformat()} must be after start {start.isoformat()}")
    step = (end - start) / slices
    dues = [start + i * step for i in range(slices)]
    return _by_weights(quantity, dues, [1.0] * slices, lot_size)


def vwap_schedule(
    quantity: float,
    profile: Sequence[tuple[datetime, float]],
    lot_size: float = 0.0,
) -> list[ChildSlice]:
    """One child per ``(time, volume)`` of the profile (e.g. the same bars of past days), sized by
    that bar's share of the profile's total volume."""
    _check(quantity, lot_size)
    if not profile:
        raise ValueError("a vwap schedule needs a volume profile of at least one bar")
    dues = [ensure_utc(ts, "vwap profile time") for ts, _ in profile]
    if any(b <= a for a, b in itertools.pairwise(dues)):
        raise ValueError("vwap profile times must be strictly increasing")
    volumes = [float(v) for _, v in profile]
    if any(not (math.isfinite(v) and v >= 0) for v in volumes):
        raise ValueError("vwap profile volumes must be numbers >= 0")
    if not math.fsum(volumes) > 0:
        raise ValueError("vwap profile has no volume")
    return _by_weights(quantity, dues, volumes, lot_size)


def child_orders(parent: Order, schedule: Sequence[ChildSlice]) -> list[Order]:
    """The children of ``parent`` (same symbol, side, type and prices), with client ids
    ``<parent id>-<n>`` so a restart re-creates the same ids (idempotent at the broker)."""
    if parent.type not in (OrderType.MARKET, OrderType.LIMIT):
        raise ValueError(f"parent order {parent.client_order_id!r}: algos slice market or limit")
    return [
        replace(
            parent,
            client_order_id=f"{parent.client_order_id}-{s.index}",
            quantity=s.quantity,
            ts=max(parent.ts, s.due),
            tag=parent.tag or "algo",
        )
        for s in schedule
    ]
