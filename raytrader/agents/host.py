"""Agents of one live or paper session, fed one bar at a time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from raytrader.agents.base import Agent
from raytrader.agents.context import BarContext
from raytrader.data.market_data import OHLCV, FloatArray, MarketData
from raytrader.domain import Signal
from raytrader.domain.bar import BarTuple


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """The account as of the bar's close (a ``PortfolioView`` for agents in a session)."""

    cash: float
    equity_value: float
    positions: Mapping[str, float]

    def position(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def equity(self) -> float:
        return self.equity_value


class AgentHost:
    """Keeps a session's bar history and asks its agents for decisions bar by bar.

    Indicators are recomputed over the whole history at every bar. Because they are causal,
    the value at the last bar is exactly what a backtest over the full data computes there, so
    a session replaying a data set decides exactly as the backtest does. ``max_history`` bounds
    the cost; beyond it the oldest half is dropped (EMA-type indicators then differ from a
    full-history backtest in the last digits).
    """

    def __init__(
        self, agents: Sequence[Agent], symbols: Sequence[str], max_history: int = 20_000
    ) -> None:
        if not agents:
            raise ValueError("a session needs at least one agent")
        if max_history < 2 * max(a.warmup for a in agents):
            raise ValueError("max_history must hold at least twice the longest warm-up")
        self.agents = list(agents)
        self.symbols = tuple(symbols)
        self.max_history = max_history
        self._ts: list[datetime] = []
        self._arrays = {name: np.full((len(self.symbols), 256), np.nan) for name in OHLCV}
        self.bars_seen = 0  # all bars ever appended, including dropped ones

    @property
    def warmup(self) -> int:
        """Bars before the first decision: the longest warm-up, as in a backtest."""
        return max(a.warmup for a in self.agents)

    @property
    def n(self) -> int:
        return len(self._ts)

    def append(self, ts: datetime, bars: Mapping[str, BarTuple]) -> None:
        """Add the bar of every symbol at ``ts`` (symbols absent from ``bars`` get NaN)."""
        if self._ts and ts <= self._ts[-1]:
            raise ValueError(f"bar at {ts} is not after the last bar {self._ts[-1]}")
        unknown = set(bars) - set(self.symbols)
        if unknown:
            raise ValueError(f"bars for unknown symbols {sorted(unknown)}")
        if self.n >= self.max_history:
            keep, n = self.max_history // 2, self.n
            self._ts = self._ts[n - keep :]
            for arr in self._arrays.values():
                arr[:, :keep] = arr[:, n - keep : n].copy()
                arr[:, keep:] = np.nan
        i = self.n
        if i >= self._arrays["open"].shape[1]:
            for name, arr in self._arrays.items():
                grown = np.full((arr.shape[0], arr.shape[1] * 2), np.nan)
                grown[:, : arr.shape[1]] = arr
                self._arrays[name] = grown
        for j, symbol in enumerate(self.symbols):
            row = bars.get(symbol)
            for f, name in enumerate(OHLCV):
                self._arrays[name][j, i] = row[f] if row is not None else np.nan
        self._ts.append(ts)
        self.bars_seen += 1

    def extend(self, data: MarketData) -> None:
        """Append many bars at once (reloading a session's history after a restart)."""
        if data.symbols != self.symbols:
            raise ValueError(f"history symbols {data.symbols} differ from {self.symbols}")
        for i in range(data.n_bars):
            bars = {
                s: (
                    float(data.open[j, i]),
                    float(data.high[j, i]),
                    float(data.low[j, i]),
                    float(data.close[j, i]),
                    float(data.volume[j, i]),
                )
                for j, s in enumerate(self.symbols)
                if data.open[j, i] == data.open[j, i]
            }
            self.append(data.ts(i), bars)

    def data(self) -> MarketData:
        n = self.n
        arrays: dict[str, FloatArray] = {name: arr[:, :n] for name, arr in self._arrays.items()}
        index = pd.DatetimeIndex(self._ts, tz="UTC") if self._ts else pd.DatetimeIndex([], tz="UTC")
        return MarketData(index=index, symbols=self.symbols, **arrays)

    def decide(self, account: AccountSnapshot) -> list[tuple[int, Signal]]:
        """Signals of every agent at the last bar (none during warm-up)."""
        i = self.n - 1
        if i < 0:
            return []
        data = self.data()
        out: list[tuple[int, Signal]] = []
        if self.bars_seen - 1 < self.warmup:
            return []
        for k, agent in enumerate(self.agents):
            ctx = BarContext(data, agent.indicators(data), account)
            ctx.i = i
            for sig in agent.on_bar(ctx) or ():
                out.append((k, sig))
        return out

    def tail(self, n: int) -> list[tuple[str, dict[str, list[float]]]]:
        """The last ``n`` bars as JSON-ready ``(ts, {symbol: [o, h, l, c, v]})`` pairs."""
        out = []
        for i in range(max(0, self.n - n), self.n):
            bars = {
                s: [float(self._arrays[f][j, i]) for f in OHLCV]
                for j, s in enumerate(self.symbols)
                if self._arrays["open"][j, i] == self._arrays["open"][j, i]
            }
            out.append((self._ts[i].isoformat(), bars))
        return out

    def state(self) -> dict[str, Any]:
        return {"agents": [a.get_state() for a in self.agents], "bars_seen": self.bars_seen}

    def restore(self, state: Mapping[str, Any]) -> None:
        for agent, st in zip(self.agents, state.get("agents", []), strict=False):
            agent.set_state(st)
