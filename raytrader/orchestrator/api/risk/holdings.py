"""A session's holdings as the portfolio-risk and stress-test endpoints report them, and the
returns of the held symbols."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
from pydantic import (
    BaseModel,
    Field,
)

from raytrader.orchestrator import control
from raytrader.orchestrator.api.risk.returns import Returns


class PositionRisk(BaseModel):
    symbol: str
    quantity: float
    price: float
    market_value: float
    weight: float | None


class ReturnsUsed(BaseModel):
    source: str
    start: datetime | None = Field(description="the first bar return used")
    end: datetime | None = Field(description="the last bar return used")
    bars: int = Field(description="bar returns (rows) used")


def all_finite(value: Any) -> bool:
    """No NaN or infinity anywhere in a dumped model (JSON has no place for them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(all_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(all_finite(v) for v in value)
    return True


def held_exposures(held: control.Portfolio) -> dict[str, float]:
    """Signed market value of each open position."""
    return {h.symbol: h.quantity * held.mark(h) for h in held.holdings if h.quantity != 0}


def position_rows(held: control.Portfolio) -> list[PositionRisk]:
    equity = held.equity
    rows = []
    for h in held.holdings:
        price = held.mark(h)
        value = h.quantity * price
        rows.append(
            PositionRisk(
                symbol=h.symbol,
                quantity=h.quantity,
                price=price,
                market_value=value,
                weight=value / equity if equity > 0 else None,
            )
        )
    return rows


def returns_used(frame: pd.DataFrame, source: str) -> ReturnsUsed:
    index = frame.index
    return ReturnsUsed(
        source=source,
        start=index[0] if len(index) else None,
        end=index[-1] if len(index) else None,
        bars=len(index),
    )


def held_returns(
    returns: Returns, exposures: Mapping[str, float]
) -> tuple[pd.DataFrame | None, str | None]:
    """The returns of the held symbols, or why there are none."""
    if not exposures:
        return None, "no open positions: nothing is at risk"
    missing = [s for s in exposures if s not in returns.frame.columns]
    if missing:
        return None, f"no returns of {', '.join(missing)} in {returns.source}"
    return returns.frame[list(exposures)], None
