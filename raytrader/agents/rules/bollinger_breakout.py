"""Bollinger band breakout."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from raytrader.agents.base import Agent, AgentParams
from raytrader.agents.context import BarContext
from raytrader.agents.registry import register
from raytrader.agents.rules._util import crossings
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
                direction = (weight > 0) - (weight < 0)
                out.append(Signal(symbol, ctx.ts, direction=direction, weight=weight, reason=why))
        return out
