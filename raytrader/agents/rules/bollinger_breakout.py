"""Bollinger band breakout."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from raytrader.agents.base import Agent, AgentParams
from raytrader.agents.context import BarContext
from raytrader.agents.events import TargetEvents
from raytrader.agents.registry import register
from raytrader.agents.rules._util import crossings, weight_signal
from raytrader.data.indicators import bollinger
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Signal


class BollingerBreakoutParams(AgentParams):
    period: int = Field(20, ge=2, le=5000)
    k: float = Field(2.0, gt=0, le=10, description="band width in standard deviations")
    weight: float = Field(1.0, gt=0, le=1)
    allow_short: bool = False


@register
class BollingerBreakout(Agent):
    """Long when the close breaks above the upper band; exit when it falls back below the middle.

    With shorts allowed: short below the lower band, cover above the middle.
    """

    name = "bollinger_breakout"
    Params = BollingerBreakoutParams
    params: BollingerBreakoutParams
    vectorizable: ClassVar[bool] = True

    @property
    def warmup(self) -> int:
        return self.params.period

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        rows = [bollinger(c, self.params.period, self.params.k) for c in data.close]
        upper = np.vstack([r[0] for r in rows])
        middle = np.vstack([r[1] for r in rows])
        lower = np.vstack([r[2] for r in rows])
        close = data.close
        return {
            "bb_upper": upper,
            "bb_middle": middle,
            "bb_lower": lower,
            "vs_upper": crossings(close, upper),
            "vs_middle": crossings(close, middle),
            "vs_lower": crossings(close, lower),
        }

    def active_bars(
        self, data: MarketData, indicators: Mapping[str, FloatArray]
    ) -> npt.NDArray[np.bool_]:
        """Only the bars where the close crosses a band."""
        active = (indicators["vs_upper"] > 0) | (indicators["vs_middle"] != 0)
        if self.params.allow_short:
            active |= indicators["vs_lower"] < 0
        return np.asarray(active.any(axis=0))

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        p = self.params
        out: list[Signal] | None = None
        for j, symbol in enumerate(ctx.symbols):
            weight: float | None = None
            if ctx.value("vs_upper", j) > 0:
                weight, why = p.weight, "close above upper band"
            elif p.allow_short and ctx.value("vs_lower", j) < 0:
                weight, why = -p.weight, "close below lower band"
            else:
                mid = ctx.value("vs_middle", j)
                held = ctx.position(symbol)
                if (mid < 0 and held > 0) or (mid > 0 and held < 0):
                    weight, why = 0.0, "close back through middle band"
            if weight is not None:
                out = out or []
                out.append(weight_signal(symbol, ctx.ts, weight, why))
        return out

    def target_events(self, data: MarketData) -> TargetEvents:
        """What ``on_bar`` emits, for every symbol row and bar at once (the fast path's input).

        ``target`` is the signal's weight (NaN: no signal; none before ``warmup``). The exit
        through the middle band is only emitted while a position is held on the side it
        closes: ``held`` is +1 for an exit of a long (close falling through the middle), -1 for
        an exit of a short, 0 for the breakouts, which do not depend on the position.
        """
        p = self.params
        ind = self.indicators(data)
        upper, lower, middle = ind["vs_upper"], ind["vs_lower"], ind["vs_middle"]
        target = np.full(upper.shape, np.nan)
        held = np.zeros(upper.shape, dtype=np.int8)
        # on_bar's branches from the last to the first, so that the first that applies wins.
        exit_long, exit_short = middle < 0, middle > 0
        target[exit_long | exit_short] = 0.0
        held[exit_long] = 1
        held[exit_short] = -1
        if p.allow_short:
            short = lower < 0
            target[short] = -p.weight
            held[short] = 0
        long = upper > 0
        target[long] = p.weight
        held[long] = 0
        target[:, : self.warmup] = np.nan
        held[:, : self.warmup] = 0
        return TargetEvents(target, held)
