"""Portfolio construction settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from raytrader.portfolio.allocation import CapitalWeights
from raytrader.portfolio.exits import ExitsConfig
from raytrader.risk.kill_switch import KillSwitchConfig
from raytrader.risk.limits import RiskLimits
from raytrader.risk.sizing import SizingConfig


class PortfolioConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lot_size: float = Field(1.0, ge=0, description="order quantity step; 0 = fractional")
    sizing: SizingConfig = SizingConfig()
    limits: RiskLimits = RiskLimits()
    kill_switch: KillSwitchConfig | None = Field(
        None, description="halt trading on a drawdown or a daily loss; None = off"
    )
    exits: ExitsConfig | None = Field(
        None,
        description=(
            "take-profit / stop-loss / trailing stop attached to every order that opens or "
            "increases a position (one OCO group per position, resized with it); None = off"
        ),
    )
    rebalance_band: float = Field(
        0.0,
        ge=0,
        lt=1,
        description=(
            "no-trade band, a fraction of equity: a target whose order would trade less than "
            "band x equity in notional sends none (closing a position to zero and opening one "
            "from zero always trade); 0 = every difference is traded"
        ),
    )
    capital: dict[str, float] | None = Field(
        None,
        min_length=1,
        description=(
            "agent (its name, or its index in `agents`) -> share of the account's equity "
            "(>= 0, summing to at most 1; the rest stays in cash). Every agent needs one. The "
            "agents' targets are netted into one account target per symbol; None = every agent "
            "trades the whole account and the latest signal of a symbol wins"
        ),
    )

    @field_validator("capital", mode="before")
    @classmethod
    def _keys_as_text(cls, v: object) -> object:
        # YAML reads `0: 0.6` with an integer key: an agent's index, spelled as text here.
        if isinstance(v, Mapping):
            return {str(k) if isinstance(k, int) else k: w for k, w in v.items()}
        return v

    @field_validator("capital")
    @classmethod
    def _shares(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is not None:
            try:
                CapitalWeights(weights=v)
            except ValidationError as exc:  # the reason: the agent and its weight, or the sum
                raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return v


@dataclass(frozen=True, slots=True)
class AgentCapital:
    """Capital weights resolved to agents: ``labels[k]`` names agent ``k`` in ``weights``."""

    labels: tuple[str, ...]
    weights: CapitalWeights

    @classmethod
    def resolve(cls, capital: Mapping[str, float], agents: Sequence[str]) -> AgentCapital:
        """Match the keys of ``capital`` (an agent's index, or a name only one agent has) to the
        agents named ``agents``; every agent needs exactly one key. The key is the label."""
        labels: list[str | None] = [None] * len(agents)
        for key in capital:
            if key.isascii() and key.isdigit():
                k = int(key)
                if k >= len(agents):
                    raise ValueError(
                        f"capital: agent index {k} is out of range (there are {len(agents)})"
                    )
            else:
                found = [j for j, name in enumerate(agents) if name == key]
                if not found:
                    raise ValueError(f"capital: no agent is named {key!r} (have {list(agents)})")
                if len(found) > 1:
                    raise ValueError(
                        f"capital: agents {found} are all named {key!r}; key them by index"
                    )
                k = found[0]
            if labels[k] is not None:
                raise ValueError(f"capital: agent {k} is given twice ({labels[k]!r}, {key!r})")
            labels[k] = key
        missing = [k for k, label in enumerate(labels) if label is None]
        if missing:
            names = [f"{k} ({agents[k]})" for k in missing]
            raise ValueError(f"capital: agents {', '.join(names)} have no capital weight")
        return cls(tuple(str(label) for label in labels), CapitalWeights(weights=dict(capital)))

    def of(self, agent: int) -> float:
        """The capital weight of agent ``agent`` (by index)."""
        return self.weights.weights[self.labels[agent]]
