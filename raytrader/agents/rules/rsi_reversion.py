"""RSI mean reversion."""

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
from raytrader.agents.rules._util import crossings, per_symbol, weight_signal
from raytrader.data.indicators import rsi
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Signal


class RsiReversionParams(AgentParams):
    period: int = Field(14, ge=2, le=1000)
    oversold: float = Field(30.0, gt=0, lt=100)
    overbought: float = Field(70.0, gt=0, lt=100)
    exit_level: float = Field(50.0, gt=0, lt=100, description="RSI level that closes a position")
    weight: float = Field(1.0, gt=0, le=1)
    allow_short: bool = False

    @model_validator(mode="after")
    def _ordered_levels(self) -> RsiReversionParams:
        if not self.oversold < self.exit_level < self.overbought:
            raise ValueError("levels must satisfy oversold < exit_level < overbought")
        return self


@register
class RsiReversion(Agent):
    """Buy when RSI falls through ``oversold``, exit when it rises through ``exit_level``.

    With shorts allowed, the mirror image: short through ``overbought``, cover through
    ``exit_level``.
    """

    name = "rsi_reversion"
    Params = RsiReversionParams
    params: RsiReversionParams
    vectorizable: ClassVar[bool] = True

    @property
    def warmup(self) -> int:
        return self.params.period + 1

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        p = self.params
        r = per_symbol(lambda c: rsi(c, p.period), data.close)

        def level(x: float) -> FloatArray:
            return r * 0.0 + x

        return {
            "rsi": r,
            "vs_oversold": crossings(r, level(p.oversold)),
            "vs_overbought": crossings(r, level(p.overbought)),
            "vs_exit": crossings(r, level(p.exit_level)),
        }

    def active_bars(
        self, data: MarketData, indicators: Mapping[str, FloatArray]
    ) -> npt.NDArray[np.bool_]:
        """Only the bars where RSI crosses one of its levels."""
        active = (indicators["vs_oversold"] < 0) | (indicators["vs_exit"] != 0)
        if self.params.allow_short:
            active |= indicators["vs_overbought"] > 0
        return np.asarray(active.any(axis=0))

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        p = self.params
        out: list[Signal] | None = None
        for j, symbol in enumerate(ctx.symbols):
            weight: float | None = None
            if ctx.value("vs_oversold", j) < 0:
                weight, why = p.weight, "rsi oversold"
            elif p.allow_short and ctx.value("vs_overbought", j) > 0:
                weight, why = -p.weight, "rsi overbought"
            else:
                exit_cross = ctx.value("vs_exit", j)
                held = ctx.position(symbol)
                if (exit_cross > 0 and held > 0) or (exit_cross < 0 and held < 0):
                    weight, why = 0.0, "rsi back to exit level"
            if weight is not None:
                out = out or []
                out.append(weight_signal(symbol, ctx.ts, weight, why))
        return out

    def target_events(self, data: MarketData) -> TargetEvents:
        """What ``on_bar`` emits, for every symbol row and bar at once (the fast path's input).

        ``target`` is the signal's weight (NaN: no signal; none before ``warmup``). The exit
        through ``exit_level`` is only emitted while a position is held on the side it closes:
        ``held`` is +1 for an exit of a long (RSI rising through the level), -1 for an exit of
        a short, 0 for the entries, which do not depend on the position.
        """
        p = self.params
        ind = self.indicators(data)
        oversold, overbought, exit_cross = ind["vs_oversold"], ind["vs_overbought"], ind["vs_exit"]
        target = np.full(oversold.shape, np.nan)
        held = np.zeros(oversold.shape, dtype=np.int8)
        # on_bar's branches from the last to the first, so that the first that applies wins.
        exit_long, exit_short = exit_cross > 0, exit_cross < 0
        target[exit_long | exit_short] = 0.0
        held[exit_long] = 1
        held[exit_short] = -1
        if p.allow_short:
            short = overbought > 0
            target[short] = -p.weight
            held[short] = 0
        long = oversold < 0
        target[long] = p.weight
        held[long] = 0
        target[:, : self.warmup] = np.nan
        held[:, : self.warmup] = 0
        return TargetEvents(target, held)
