"""The reference strategy: cross-sectional momentum with a market-regime filter.

Every Wednesday, rank the universe by momentum (annualized exponential-regression slope over
``lookback_period`` bars times its R^2). Sell holdings that left the top ``top_percentage``, fell
below their ``exit_ma_period`` moving average, or got an explicit sell. Resize holdings whose
target size changed by more than ``resize_threshold`` (upward only while the index filter is on).
Open new positions from the top, in rank order, only while the index closes above its
``index_ma_period`` moving average. Target size = equity x ``risk_factor`` / ATR(``atr_period``).
On the second Wednesday of each month, every holding is set to its exact target size whatever
the index does. The days are ``RebalanceSchedule``s (weekly, and monthly on the second
``rebalance_weekday``, both skipping a day without bars); on intraday data the agent decides
once a day, at the first bar it sees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from raytrader.agents.base import Agent, AgentParams
from raytrader.agents.context import BarContext
from raytrader.agents.registry import register
from raytrader.agents.rules._util import per_symbol
from raytrader.data.indicators import atr, exp_regression_momentum, sma
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Signal
from raytrader.portfolio.schedule import RebalanceSchedule

WEDNESDAY = 2


class MomentumParams(AgentParams):
    lookback_period: int = Field(90, ge=10, le=1000, description="bars of the regression")
    top_percentage: float = Field(0.2, gt=0, le=1, description="share of the universe held")
    exit_ma_period: int = Field(100, ge=2, le=1000, description="holdings below this MA are sold")
    index_ma_period: int = Field(200, ge=2, le=2000, description="index filter MA")
    atr_period: int = Field(20, ge=2, le=500)
    risk_factor: float = Field(0.001, gt=0, le=0.1, description="target = equity x rf / ATR")
    index_symbol: str = Field("INDEX", min_length=1, description="market index, not traded")
    periods_per_year: float = Field(252, gt=0, description="annualizes the regression slope")
    resize_threshold: float = Field(
        0.0, ge=0, le=1, description="weekly resize only when |target/held - 1| exceeds this"
    )
    rebalance_weekday: int = Field(WEDNESDAY, ge=0, le=6, description="0 = Monday")


def is_second_weekday_of_month(day: date) -> bool:
    """True for the second occurrence of ``day``'s weekday in its month (days 8 to 14)."""
    return 8 <= day.day <= 14


@register
class Momentum(Agent):
    """Cross-sectional momentum (see the module docstring for the rules)."""

    name = "momentum"
    Params = MomentumParams
    params: MomentumParams

    def __init__(self, params: AgentParams | None = None, **overrides: Any) -> None:
        super().__init__(params, **overrides)
        p = self.params
        # Updates on the rebalance weekday; the full rebalance on its second one of the month.
        self._weekly = RebalanceSchedule(
            kind="weekly", weekday=p.rebalance_weekday, on_missed="skip"
        )
        self._monthly = RebalanceSchedule(
            kind="monthly", weekday=p.rebalance_weekday, nth=2, on_missed="skip"
        )
        self._last_update: date | None = None
        self._sell_requests: set[str] = set()

    @property
    def warmup(self) -> int:
        p = self.params
        return max(p.lookback_period, p.exit_ma_period, p.index_ma_period, p.atr_period + 1)

    def request_sell(self, symbol: str) -> None:
        """An explicit sell: ``symbol`` is sold at the next update."""
        self._sell_requests.add(symbol)

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        p = self.params
        if p.index_symbol not in data.symbols:
            raise ValueError(
                f"momentum: index symbol {p.index_symbol!r} is not in the data {list(data.symbols)}"
            )
        return {
            "momentum": per_symbol(
                lambda c: exp_regression_momentum(c, p.lookback_period, p.periods_per_year),
                data.close,
            ),
            "exit_ma": per_symbol(lambda c: sma(c, p.exit_ma_period), data.close),
            "index_ma": per_symbol(lambda c: sma(c, p.index_ma_period), data.close),
            "atr": per_symbol(
                lambda h, lo, c: atr(h, lo, c, p.atr_period), data.high, data.low, data.close
            ),
        }

    def _ranked(self, ctx: BarContext, universe: list[int]) -> list[int]:
        score = ctx.values("momentum")
        risk = ctx.values("atr")
        ok = [j for j in universe if np.isfinite(score[j]) and risk[j] > 0]
        return sorted(ok, key=lambda j: (-score[j], ctx.symbols[j]))

    def active_bars(
        self, data: MarketData, indicators: Mapping[str, FloatArray]
    ) -> npt.NDArray[np.bool_]:
        """Every bar of the days the weekly schedule is due on (on daily data, its due bars).

        ``on_bar`` decides at the first of a day's bars it is called on: the day's first bar,
        unless the warm-up ends later that day. Marking the whole day keeps that exact.
        """
        index = data.index
        due = self._weekly.due_bars(index)
        local = index.tz_localize(None) if index.tz is not None else index
        days = local.normalize().to_numpy().astype("datetime64[D]")
        return np.isin(days, days[due])

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        p = self.params
        ts = ctx.ts
        day = ts.date()
        if not self._weekly.is_scheduled(day) or day == self._last_update:
            return None
        self._last_update = day
        full_rebalance = self._monthly.is_scheduled(day)

        idx = ctx.sym(p.index_symbol)
        index_ma = ctx.value("index_ma", idx)
        index_on = bool(ctx.close(idx) > index_ma)  # NaN MA (warm-up) keeps the filter off
        universe = [j for j, s in enumerate(ctx.symbols) if s != p.index_symbol]
        ranked = self._ranked(ctx, universe)
        n_top = max(1, int(len(ranked) * p.top_percentage + 1e-9)) if ranked else 0
        top = set(ranked[:n_top])
        equity = ctx.equity()
        risk = ctx.values("atr")

        def target(j: int) -> float:
            return math.floor(equity * p.risk_factor / risk[j]) if risk[j] > 0 else 0.0

        signals: list[Signal] = []
        held_kept: set[int] = set()
        for j in universe:
            symbol = ctx.symbols[j]
            held = ctx.position(symbol)
            if held <= 0:
                continue
            why = ""
            if symbol in self._sell_requests:
                why = "explicit sell"
            elif j not in top:
                why = "left the top"
            elif ctx.close(j) < ctx.value("exit_ma", j):
                why = "below exit MA"
            if why:
                signals.append(Signal(symbol, ts, direction=0, quantity=0.0, reason=why))
                continue
            held_kept.add(j)
            size = target(j)
            if size == held:
                continue
            if full_rebalance:
                signals.append(Signal(symbol, ts, direction=1, quantity=size, reason="rebalance"))
            elif abs(size / held - 1) > p.resize_threshold and (size < held or index_on):
                signals.append(Signal(symbol, ts, direction=1, quantity=size, reason="resize"))
        self._sell_requests.clear()

        if index_on:
            for j in ranked[:n_top]:
                if j in held_kept or ctx.position(ctx.symbols[j]) > 0:
                    continue
                if not ctx.close(j) > ctx.value("exit_ma", j):
                    continue  # it would be sold again at the next update
                size = target(j)
                if size > 0:
                    signals.append(
                        Signal(ctx.symbols[j], ts, direction=1, quantity=size, reason="entry")
                    )
        return signals or None

    def get_state(self) -> dict[str, Any]:
        last = self._last_update.isoformat() if self._last_update else None
        return {"last_update": last, "sell_requests": sorted(self._sell_requests)}

    def set_state(self, state: dict[str, Any]) -> None:
        last = state.get("last_update")
        self._last_update = date.fromisoformat(last) if last else None
        self._sell_requests = set(state.get("sell_requests", []))
