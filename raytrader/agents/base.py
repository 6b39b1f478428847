"""The agent contract shared by rule-based, ML and RL agents."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from raytrader.agents.context import BarContext
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Fill, Signal

#: Bumped when the contract changes in a way third-party agents must follow.
API_VERSION = 1


class AgentParams(BaseModel):
    """Base of every agent's parameter schema: frozen, unknown keys rejected.

    Bounds declared with ``Field(ge=..., le=...)`` are what the API validates and sweeps search.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")


class Agent(ABC):
    """A trading agent: data in, signals out.

    Life cycle in a backtest or a session: ``fit`` (once, for agents that learn) ->
    ``indicators`` (vectorized, causal) -> ``on_bar`` at every bar from ``warmup`` on, with a
    ``BarContext`` that reveals data up to the current bar only -> ``on_fill`` for its fills.
    ``get_state``/``set_state`` carry per-session state across a restart.
    """

    name: ClassVar[str]
    Params: ClassVar[type[AgentParams]] = AgentParams
    api_version: ClassVar[int] = API_VERSION
    vectorizable: ClassVar[bool] = False

    def __init__(self, params: AgentParams | None = None, **overrides: Any) -> None:
        if params is None:
            params = self.Params(**overrides)
        elif overrides:
            params = params.model_copy(update=overrides)
        if not isinstance(params, self.Params):
            raise TypeError(f"{self.name}: params must be {self.Params.__name__}")
        self.params = params

    @property
    def warmup(self) -> int:
        """Bars needed before the first decision."""
        return 0

    @property
    def needs_fit(self) -> bool:
        """True for agents that must be fitted before ``indicators``/``on_bar``."""
        return False

    def fit(self, data: MarketData) -> None:  # noqa: B027 - optional hook
        """Train on ``data`` (learning agents); rule agents ignore it."""

    def indicators(self, data: MarketData) -> dict[str, FloatArray]:
        """Causal arrays of shape ``(n_symbols, n_bars)`` read through the context."""
        return {}

    def active_bars(
        self, data: MarketData, indicators: Mapping[str, FloatArray]
    ) -> npt.NDArray[np.bool_] | None:
        """Bars at which ``on_bar`` may emit signals, or None for every bar.

        A promise, computed causally from the same indicators: at other bars ``on_bar``
        returns None and changes nothing, so the engine may skip calling it there.
        """
        return None

    @abstractmethod
    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        """Decide at the close of bar ``ctx.i``; return the signals, or None."""

    def on_fill(self, fill: Fill) -> None:  # noqa: B027 - optional hook
        """Observe a fill of an order that came from this agent's signals."""

    def get_state(self) -> dict[str, Any]:
        """JSON-serializable per-session state."""
        return {}

    def set_state(self, state: dict[str, Any]) -> None:  # noqa: B027 - optional hook
        """Restore what ``get_state`` returned."""
