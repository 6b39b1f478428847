"""What an agent may see at one bar: the past and present, never the future."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Protocol

import numpy as np

from raytrader.data.market_data import FloatArray, MarketData


class PortfolioView(Protocol):
    """Read-only account state an agent may consult."""

    def position(self, symbol: str) -> float: ...

    def equity(self) -> float: ...

    @property
    def cash(self) -> float: ...


def read_only(arrays: Mapping[str, FloatArray]) -> dict[str, FloatArray]:
    """Freeze precomputed arrays so an agent cannot write into shared indicator data."""
    frozen = {}
    for name, arr in arrays.items():
        view = arr.view()
        view.flags.writeable = False
        frozen[name] = view
    return frozen


class BarContext:
    """The cursor through which an agent reads data and indicators at bar ``i``.

    Indicators are computed vectorized up front (causal functions of the data), and revealed
    one bar at a time: every accessor reads at or before the cursor.
    """

    __slots__ = ("_data", "_ind", "_portfolio", "_sym_idx", "i")

    def __init__(
        self,
        data: MarketData,
        indicators: Mapping[str, FloatArray],
        portfolio: PortfolioView,
    ) -> None:
        self._data = data
        self._ind = read_only(indicators)
        self._portfolio = portfolio
        self._sym_idx = {s: j for j, s in enumerate(data.symbols)}
        self.i = 0

    @property
    def symbols(self) -> tuple[str, ...]:
        return self._data.symbols

    @property
    def ts(self) -> datetime:
        return self._data.ts(self.i)

    def sym(self, symbol: str) -> int:
        """Row of ``symbol`` in the data arrays."""
        return self._sym_idx[symbol]

    def value(self, name: str, j: int = 0) -> float:
        """Indicator ``name`` of symbol row ``j`` at the current bar."""
        return float(self._ind[name][j, self.i])

    def values(self, name: str) -> FloatArray:
        """Indicator ``name`` of every symbol at the current bar."""
        return np.array(self._ind[name][:, self.i])

    def history(self, name: str, j: int = 0, n: int = 1) -> FloatArray:
        """The last ``n`` values of indicator ``name`` of symbol row ``j``, ending now."""
        return self._ind[name][j, max(0, self.i - n + 1) : self.i + 1]

    def close(self, j: int = 0) -> float:
        return float(self._data.close[j, self.i])

    def closes(self) -> FloatArray:
        return np.array(self._data.close[:, self.i])

    def price_history(self, field: str, j: int = 0, n: int = 1) -> FloatArray:
        """The last ``n`` values of an OHLCV ``field`` of symbol row ``j``, ending now."""
        arr: FloatArray = getattr(self._data, field)
        out = arr[j, max(0, self.i - n + 1) : self.i + 1].view()
        out.flags.writeable = False
        return out

    def position(self, symbol: str) -> float:
        return self._portfolio.position(symbol)

    def equity(self) -> float:
        return self._portfolio.equity()

    @property
    def cash(self) -> float:
        return self._portfolio.cash
