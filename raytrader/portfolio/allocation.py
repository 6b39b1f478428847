"""Several agents sharing one account: capital weights, one net target, attribution back.

Agent ``a`` gets the share ``c_a`` of the account's equity (``sum c_a <= 1``; the rest stays in
cash). Its target weight ``w_as`` (of its own capital) becomes the account weight
``c_a * w_as``, its *contribution*. The account target of a symbol is the sum of the
contributions: opposite targets of different agents *net* (only the difference is traded and
held; ``netted = gross - |net|`` is the part that crosses internally).

Attribution: agent ``a`` owns its contribution in units, ``t_as = c_a * w_as * equity / price``;
what the account holds beyond or short of the summed target, ``q_s - sum_a t_as`` (unfilled
orders, lots, limits, drift), is split by gross share ``|t_as| / sum_b |t_bs|``. With
contributions of one sign this is plain pro rata by share of the target (``q_s * t_as / T_s``);
with netting the agents keep their opposite positions, which cancel in the account. A holding
no agent targets goes to ``UNALLOCATED``. Attributed positions sum to the account's, so the
attributed PnL (positions times price changes) sums to the account's mark-to-market PnL.
Costs are not attributed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd
from pydantic import BaseModel, ConfigDict, field_validator

UNALLOCATED = "(unallocated)"
_EPS = 1e-9


class CapitalWeights(BaseModel):
    """Agent -> share of the account's equity; shares >= 0, summing to at most 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    weights: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        for agent, w in v.items():
            if not agent or agent == UNALLOCATED:
                raise ValueError(f"agent name {agent!r} is not allowed")
            if not (math.isfinite(w) and w >= 0):
                raise ValueError(f"agent {agent!r}: capital weight must be >= 0, got {w}")
        total = math.fsum(v.values())
        if total > 1 + _EPS:
            raise ValueError(f"capital weights sum to {total:.6g} > 1")
        return v

    @property
    def reserve(self) -> float:
        """The share of equity no agent gets (cash)."""
        return max(0.0, 1.0 - math.fsum(self.weights.values()))


@dataclass(frozen=True, slots=True)
class CombinedTargets:
    """Symbol -> agent -> contribution (account weight), and the net account target."""

    contributions: dict[str, dict[str, float]]

    @property
    def account(self) -> dict[str, float]:
        """Symbol -> net account weight."""
        return {s: math.fsum(c.values()) for s, c in self.contributions.items()}

    def gross(self, symbol: str) -> float:
        return math.fsum(abs(x) for x in self.contributions[symbol].values())

    def netted(self, symbol: str) -> float:
        """The weight that offsetting agents cross internally: gross - |net|."""
        return self.gross(symbol) - abs(math.fsum(self.contributions[symbol].values()))

    def to_frame(self) -> pd.DataFrame:
        """One row per symbol: a column per agent, then ``net``, ``gross``, ``netted``."""
        frame = pd.DataFrame.from_dict(self.contributions, orient="index").fillna(0.0)
        frame.index.name = "symbol"
        net = self.account
        frame["net"] = [net[s] for s in frame.index]
        frame["gross"] = [self.gross(s) for s in frame.index]
        frame["netted"] = [self.netted(s) for s in frame.index]
        return frame


def combine_targets(
    capital: CapitalWeights, targets: Mapping[str, Mapping[str, float]]
) -> CombinedTargets:
    """Each agent's target weights scaled by its capital weight, per symbol."""
    out: dict[str, dict[str, float]] = {}
    for agent, weights in targets.items():
        if agent not in capital.weights:
            raise ValueError(f"agent {agent!r} has targets but no capital weight")
        for symbol, w in weights.items():
            if not math.isfinite(w):
                raise ValueError(f"agent {agent!r}: target weight of {symbol!r} is {w}")
            out.setdefault(symbol, {})[agent] = capital.weights[agent] * w
    return CombinedTargets(out)


def attribute_positions(
    combined: CombinedTargets,
    positions: Mapping[str, float],
    prices: Mapping[str, float],
    equity: float,
) -> dict[str, dict[str, float]]:
    """Agent -> symbol -> attributed quantity (see the module for the method)."""
    out: dict[str, dict[str, float]] = {}
    for symbol, held in positions.items():
        contrib = combined.contributions.get(symbol, {})
        gross = math.fsum(abs(c) for c in contrib.values())
        if gross <= _EPS:
            if held:
                out.setdefault(UNALLOCATED, {})[symbol] = held
            continue
        price = prices.get(symbol, math.nan)
        if not (math.isfinite(price) and price > 0):
            raise ValueError(f"attribute_positions: no valid price for {symbol!r}: {price}")
        units = equity / price
        residual = held - math.fsum(contrib.values()) * units
        for agent, c in contrib.items():
            out.setdefault(agent, {})[symbol] = c * units + residual * abs(c) / gross
    return out


def attribute_pnl(
    attributed: Mapping[str, Mapping[str, float]],
    prev_prices: Mapping[str, float],
    prices: Mapping[str, float],
) -> dict[str, float]:
    """Agent -> PnL of its attributed positions from ``prev_prices`` to ``prices``."""
    return {
        agent: math.fsum(q * (prices[s] - prev_prices[s]) for s, q in held.items())
        for agent, held in attributed.items()
    }
