"""The kill switch: halts trading when equity falls too far. Pure: no I/O.

``KillSwitch.update`` books the equity at each bar's close. It trips, once, when

- the equity is more than ``max_drawdown`` below its high-water mark (the highest equity seen,
  the initial equity included), or
- the equity is more than ``daily_loss`` below the day's starting equity (the equity at the
  last close of the previous UTC day; the initial equity on the first day).

What a trip means is up to the caller (the backtest engine and the session driver do the same):
open orders are cancelled, positions optionally flattened with market orders at the next
open, and every later order is refused (``RiskContext.halted``) until a person resumes the
session (``resume``). Resuming rebases the drawdown's high-water mark and the daily loss's
base to the last equity: the limits count from the point of resumption.

The switch also tracks the day's starting equity for the ``daily_loss_limit`` pre-trade check
(``day_start_for``), whether a kill switch is configured or not; resuming does not move it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.domain import Order, Side


class KillSwitchConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_drawdown: float | None = Field(
        None, gt=0, lt=1, description="halt below this fraction under the equity high-water mark"
    )
    daily_loss: float | None = Field(
        None, gt=0, lt=1, description="halt below this fraction under the day's starting equity"
    )
    flatten: bool = Field(False, description="close every position at the next open on a halt")

    @model_validator(mode="after")
    def _a_threshold(self) -> KillSwitchConfig:
        if self.max_drawdown is None and self.daily_loss is None:
            raise ValueError("a kill switch needs max_drawdown or daily_loss")
        return self


def _day(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


class KillSwitch:
    """Equity high-water mark, the day's start and, with a config, the trip."""

    def __init__(self, config: KillSwitchConfig | None, equity: float) -> None:
        self.config = config
        self.high_water = equity
        self.last_equity = equity
        self.day: date | None = None
        self.day_start = equity
        self.daily_base = equity  # the day's start, or the equity when the session resumed
        self.reason = ""

    @property
    def halted(self) -> bool:
        return bool(self.reason)

    def day_start_for(self, ts: datetime) -> float:
        """The starting equity of the day of ``ts``, before the bar at ``ts`` is booked."""
        return self.day_start if self.day == _day(ts) else self.last_equity

    def update(self, ts: datetime, equity: float) -> str:
        """Book the equity at the close of the bar at ``ts``; the reason if it trips now."""
        day = _day(ts)
        if day != self.day:
            self.day = day
            self.day_start = self.daily_base = self.last_equity
        if equity > self.high_water:
            self.high_water = equity
        self.last_equity = equity
        if self.reason or self.config is None:
            return ""
        self.reason = self._breach(equity)
        return self.reason

    def _breach(self, equity: float) -> str:
        config = self.config
        assert config is not None
        if config.max_drawdown is not None and self.high_water > 0:
            drawdown = 1.0 - equity / self.high_water
            if drawdown > config.max_drawdown:
                return (
                    f"max_drawdown: {drawdown:.4f} > {config.max_drawdown:.4f} "
                    f"(equity {equity:,.2f}, high-water mark {self.high_water:,.2f})"
                )
        if config.daily_loss is not None and self.daily_base > 0:
            loss = 1.0 - equity / self.daily_base
            if loss > config.daily_loss:
                return (
                    f"daily_loss: {loss:.4f} > {config.daily_loss:.4f} "
                    f"(equity {equity:,.2f}, day start {self.daily_base:,.2f})"
                )
        return ""

    def resume(self) -> None:
        """Clear the trip; the limits count from the last equity on."""
        self.reason = ""
        self.high_water = self.daily_base = self.last_equity

    def state(self) -> dict[str, Any]:
        """What a checkpoint keeps (JSON-ready)."""
        return {
            "high_water": self.high_water,
            "last_equity": self.last_equity,
            "day": self.day.isoformat() if self.day is not None else None,
            "day_start": self.day_start,
            "daily_base": self.daily_base,
            "reason": self.reason,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.high_water = float(state["high_water"])
        self.last_equity = float(state["last_equity"])
        self.day = date.fromisoformat(state["day"]) if state["day"] else None
        self.day_start = float(state["day_start"])
        self.daily_base = float(state["daily_base"])
        self.reason = str(state["reason"])


def flatten_orders(
    positions: Mapping[str, float], symbols: Sequence[str], id_prefix: str, ts: datetime
) -> list[Order]:
    """Market orders at ``ts`` that close every position, in ``symbols`` order; client order
    ids ``{id_prefix}-1``, ``-2``, ... (the same on a replay of the same bar)."""
    out: list[Order] = []
    for symbol in symbols:
        quantity = positions.get(symbol, 0.0)
        if quantity == 0.0:
            continue
        side = Side.SELL if quantity > 0 else Side.BUY
        cid = f"{id_prefix}-{len(out) + 1}"
        out.append(Order(cid, symbol, side, abs(quantity), ts, tag="kill switch: flatten"))
    return out
