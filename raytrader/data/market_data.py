"""Aligned multi-symbol OHLCV arrays: what the engine and agents read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property

import numpy as np
import numpy.typing as npt
import pandas as pd

from raytrader.domain.bar import Bar

FloatArray = npt.NDArray[np.float64]
OHLCV = ("open", "high", "low", "close", "volume")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, eq=False)
class MarketData:
    """OHLCV of several symbols on one shared UTC timeline.

    Arrays have shape ``(n_symbols, n_bars)`` so that one symbol's series is contiguous. A symbol
    with no bar at a timestamp holds NaN there.
    """

    index: pd.DatetimeIndex
    symbols: tuple[str, ...]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __post_init__(self) -> None:
        if self.index.tz is None or str(self.index.tz) != "UTC":
            raise ValueError("MarketData index must be tz-aware UTC")
        shape = (len(self.symbols), len(self.index))
        for name in OHLCV:
            if getattr(self, name).shape != shape:
                raise ValueError(
                    f"MarketData.{name} has shape {getattr(self, name).shape}, expected {shape}"
                )

    @classmethod
    def from_frames(cls, frames: Mapping[str, pd.DataFrame]) -> MarketData:
        """Align OHLCV frames (UTC ``DatetimeIndex``) on the union of their timestamps."""
        if not frames:
            raise ValueError("MarketData needs at least one symbol")
        index = frames[next(iter(frames))].index
        for frame in frames.values():
            if not frame.index.equals(index):
                index = index.union(frame.index)
        index = pd.DatetimeIndex(index)
        arrays = {name: np.full((len(frames), len(index)), np.nan) for name in OHLCV}
        for row, frame in enumerate(frames.values()):
            aligned = frame if frame.index.equals(index) else frame.reindex(index)
            for name in OHLCV:
                arrays[name][row] = aligned[name].to_numpy(dtype=np.float64)
        return cls(index=index, symbols=tuple(frames), **arrays)

    @property
    def n_bars(self) -> int:
        return len(self.index)

    @cached_property
    def _epoch_us(self) -> list[int]:
        # Microseconds since the epoch per bar: turning one into a datetime is ~20x cheaper
        # than indexing the DatetimeIndex (the engine does it at every event).
        return self.index.as_unit("us").asi8.tolist()

    def ts(self, i: int) -> datetime:
        """Timestamp of bar ``i`` as an aware UTC datetime."""
        return _EPOCH + timedelta(microseconds=self._epoch_us[i])

    def symbol_index(self, symbol: str) -> int:
        try:
            return self.symbols.index(symbol)
        except ValueError:
            raise KeyError(f"unknown symbol {symbol!r}; have {list(self.symbols)}") from None

    def frame(self, symbol: str) -> pd.DataFrame:
        """One symbol as an OHLCV frame (rows where it has no bar dropped)."""
        j = self.symbol_index(symbol)
        df = pd.DataFrame({name: getattr(self, name)[j] for name in OHLCV}, index=self.index)
        return df.dropna(subset=["close"])

    def bar(self, symbol: str, i: int) -> Bar:
        j = self.symbol_index(symbol)
        ts = self.ts(i)
        return Bar(
            symbol,
            ts,
            float(self.open[j, i]),
            float(self.high[j, i]),
            float(self.low[j, i]),
            float(self.close[j, i]),
            float(self.volume[j, i]),
        )

    def slice(self, start: int, stop: int) -> MarketData:
        """Bars ``[start, stop)`` as a new ``MarketData`` (views, no copy)."""
        return MarketData(
            index=self.index[start:stop],
            symbols=self.symbols,
            **{name: getattr(self, name)[:, start:stop] for name in OHLCV},
        )
