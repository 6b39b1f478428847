"""``TargetEvents``: what a vectorizable agent's ``on_bar`` would emit, for all bars at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from raytrader.data.market_data import FloatArray


@dataclass(frozen=True, slots=True)
class TargetEvents:
    """Weight targets per symbol row and bar, arrays of shape ``(n_symbols, n_bars)``.

    ``target`` is the weight emitted at that bar's close (NaN: no signal); ``held`` is 0 when
    the signal is emitted whatever the position, +1 only while long, -1 only while short (the
    exits of rsi_reversion and bollinger_breakout). Both are C-contiguous, so a symbol's row
    is a contiguous view for the compiled kernels.
    """

    target: FloatArray
    held: npt.NDArray[np.int8]

    def __post_init__(self) -> None:
        object.__setattr__(self, "target", np.ascontiguousarray(self.target, dtype=np.float64))
        object.__setattr__(self, "held", np.ascontiguousarray(self.held, dtype=np.int8))
        if self.target.ndim != 2 or self.target.shape != self.held.shape:
            raise ValueError(
                f"TargetEvents: target and held need the same (n_symbols, n_bars) shape, got "
                f"{self.target.shape} and {self.held.shape}"
            )

    @property
    def shape(self) -> tuple[int, int]:
        rows, bars = self.target.shape
        return rows, bars

    @classmethod
    def unconditional(cls, target: FloatArray) -> TargetEvents:
        """Events whose signals do not depend on the position (``held`` all 0)."""
        return cls(target, np.zeros(np.shape(target), dtype=np.int8))
