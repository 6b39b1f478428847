"""Desired state vs actual: targets against holdings and the orders still working.

Per symbol: ``gap = target - held - in_flight``, the signed quantity still to order once every
working order fills. ``target`` is the desired quantity; a symbol that is held or has working
orders but no desired quantity gets ``target = 0`` (``missing="flat"``) or ``target = held``
(``missing="keep"``). Quantities are signed (short < 0); ``in_flight`` is the signed remaining
quantity of open orders (buys > 0, sells < 0).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import pandas as pd

from raytrader.domain import OrderState
from raytrader.risk.sizing import round_to_lot


class Flag(StrEnum):
    """What a reconciliation row needs."""

    UNDER = "under"  # gap > 0: below the target even after the working orders fill (buy)
    OVER = "over"  # gap < 0: above the target even after the working orders fill (sell)
    ORPHAN = "orphan"  # working orders on a symbol that is no longer desired
    AGAINST = "against"  # working orders move away from the target (or none is needed)
    OVERSHOOT = "overshoot"  # working orders go the right way but past the target


@dataclass(frozen=True, slots=True)
class ReconcileRow:
    symbol: str
    desired: float | None  # None: not desired
    target: float
    held: float
    in_flight: float
    gap: float
    flags: frozenset[Flag]


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Rows sorted by symbol."""

    rows: tuple[ReconcileRow, ...]

    def row(self, symbol: str) -> ReconcileRow:
        for r in self.rows:
            if r.symbol == symbol:
                return r
        raise KeyError(symbol)

    def gaps(self) -> dict[str, float]:
        """Symbol -> gap, for the symbols flagged under or over."""
        return {r.symbol: r.gap for r in self.rows if r.flags & {Flag.UNDER, Flag.OVER}}

    def flagged(self, flag: Flag) -> list[str]:
        return [r.symbol for r in self.rows if flag in r.flags]

    def to_frame(self) -> pd.DataFrame:
        """One row per symbol; ``desired`` NaN when not desired, ``flags`` comma-joined."""
        cols = ["desired", "target", "held", "in_flight", "gap", "flags"]
        data = [
            (
                math.nan if r.desired is None else r.desired,
                r.target,
                r.held,
                r.in_flight,
                r.gap,
                ",".join(sorted(r.flags)),
            )
            for r in self.rows
        ]
        index = pd.Index([r.symbol for r in self.rows], name="symbol")
        return pd.DataFrame(data, index=index, columns=cols)


def in_flight_quantities(orders: Iterable[OrderState]) -> dict[str, float]:
    """Symbol -> signed remaining quantity of the open orders."""
    out: dict[str, float] = {}
    for state in orders:
        if state.is_open and state.remaining > 0:
            sym = state.order.symbol
            out[sym] = out.get(sym, 0.0) + state.order.side.sign * state.remaining
    return out


def target_quantities(
    weights: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    lot_size: float = 0.0,
) -> dict[str, float]:
    """Signed weights of ``equity`` -> quantities at ``prices``, toward zero to lots."""
    out = {}
    for symbol, w in weights.items():
        price = prices.get(symbol, math.nan)
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"target_quantities: no valid price for {symbol!r}: {price}")
        out[symbol] = round_to_lot(w * equity / price, lot_size)
    return out


def _flags(
    desired: float | None, target: float, held: float, flight: float, tol: float
) -> set[Flag]:
    gap = target - held - flight
    need = target - held
    flags = set()
    if gap > tol:
        flags.add(Flag.UNDER)
    elif gap < -tol:
        flags.add(Flag.OVER)
    if abs(flight) > tol:
        if desired is None:
            flags.add(Flag.ORPHAN)
        if abs(need) <= tol or flight * need < 0:
            flags.add(Flag.AGAINST)
        elif abs(flight) > abs(need) + tol:
            flags.add(Flag.OVERSHOOT)
    return flags


def reconcile(
    desired: Mapping[str, float],
    held: Mapping[str, float],
    in_flight: Mapping[str, float] | None = None,
    missing: Literal["flat", "keep"] = "flat",
    tol: float = 1e-9,
) -> Reconciliation:
    """Desired quantities vs held positions and working orders, per symbol (see the module)."""
    flight = in_flight or {}
    rows = []
    for symbol in sorted(set(desired) | set(held) | set(flight)):
        want = desired.get(symbol)
        have = held.get(symbol, 0.0)
        f = flight.get(symbol, 0.0)
        if want is None and abs(have) <= tol and abs(f) <= tol:
            continue
        target = want if want is not None else (have if missing == "keep" else 0.0)
        flags = frozenset(_flags(want, target, have, f, tol))
        rows.append(ReconcileRow(symbol, want, target, have, f, target - have - f, flags))
    return Reconciliation(tuple(rows))


def reconcile_weights(
    weights: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
    held: Mapping[str, float],
    in_flight: Mapping[str, float] | None = None,
    lot_size: float = 0.0,
    missing: Literal["flat", "keep"] = "flat",
    tol: float = 1e-9,
) -> Reconciliation:
    """``reconcile`` with targets given as weights of ``equity`` at ``prices``."""
    desired = target_quantities(weights, prices, equity, lot_size)
    return reconcile(desired, held, in_flight, missing, tol)
