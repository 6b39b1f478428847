"""Moving-average crossover."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from raytrader.agents.base import Agent, AgentParams
from raytrader.agents.context import BarContext
from raytrader.agents.events import TargetEvents
from raytrader.agents.registry import register
from raytrader.agents.rules._util import cross_values, crossings, per_symbol
from raytrader.data.indicators import sma
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Signal


class SmaCrossParams(AgentParams):
    fast: int = Field(10, ge=1, le=5000, description="fast SMA length (bars)")
    slow: int = Field(30, ge=2, le=20000, description="slow SMA length (bars)")
    weight: float = Field(1.0, gt=0, le=1, description="share of equity per position")
    allow_short: bool = Field(False, description="go short on a downward cross")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


@register
class SmaCross(Agent):
    """Long when the fast SMA crosses above the slow one; flat (or short) on the cross down."""

    name = "sma_cross"
    Params = SmaCrossParams
    params: SmaCrossParams
    vectorizable: ClassVar[bool] = True

    @property
    def warmup(self) -> int:
        return self.params.slow

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        p = self.params
        fast = per_symbol(lambda c: sma(c, p.fast), data.close)
        slow = per_symbol(lambda c: sma(c, p.slow), data.close)
        return {"sma_fast": fast, "sma_slow": slow, "cross": crossings(fast, slow)}

    def active_bars(
        self, data: MarketData, indicators: Mapping[str, FloatArray]
    ) -> npt.NDArray[np.bool_]:
        """Only the bars where the averages cross."""
        return np.asarray((indicators["cross"] != 0).any(axis=0))

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        out: list[Signal] | None = None
        for j, symbol in enumerate(ctx.symbols):
            cross = ctx.value("cross", j)
            if cross == 0.0:
                continue
            w = self.params.weight
            target = w if cross > 0 else (-w if self.params.allow_short else 0.0)
            out = out or []
            out.append(
                Signal(
                    symbol,
                    ctx.ts,
                    direction=int(cross),
                    weight=target,
                    reason="cross up" if cross > 0 else "cross down",
                )
            )
        return out

    def target_events(self, data: MarketData) -> TargetEvents:
        """What ``on_bar`` emits, for every symbol row and bar at once (the fast path's input).

        ``target`` is the signal's weight at the bars where the SMAs cross (NaN elsewhere and
        before ``warmup``); ``held`` is 0: the signal does not depend on the position.
        """
        p = self.params
        fast = per_symbol(lambda c: sma(c, p.fast), data.close)
        slow = per_symbol(lambda c: sma(c, p.slow), data.close)
        down = -p.weight if p.allow_short else 0.0
        target = cross_values(fast, slow, p.weight, down, np.nan, start=self.warmup)
        return TargetEvents.unconditional(target)
