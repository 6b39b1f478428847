"""What an RL environment is made of, and the pure pieces the env and the RL agent share.

The observation builder and the action decoder live here, free of gymnasium and torch, so the
RL agent computes in a backtest exactly what the environment computed during training.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from raytrader.data.market_data import MarketData
from raytrader.domain import Signal
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.ml.features import FeatureConfig, build_features, feature_names
from raytrader.portfolio.config import PortfolioConfig

__all__ = [
    "ActionKind",
    "TradingEnvConfig",
    "decode_action",
    "feature_tensor",
    "observation",
    "target_signals",
]

ActionKind = Literal["long_flat", "short_flat_long", "continuous"]
Float32Array = npt.NDArray[np.float32]
Float64Array = npt.NDArray[np.float64]

#: Features of the default observation: returns, oscillators and volatility, all scale-free.
DEFAULT_COLUMNS = ("ret_1", "ret_5", "rsi", "bb_pct_b", "macd_hist", "volatility")


class TradingEnvConfig(BaseModel):
    """An environment: the account and its costs, the observation, the actions and the reward."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    initial_cash: float = Field(100_000.0, gt=0, le=1e15)
    broker: PaperBrokerConfig = Field(default_factory=PaperBrokerConfig)
    portfolio: PortfolioConfig = Field(default_factory=PortfolioConfig)
    features: FeatureConfig = Field(default_factory=lambda: FeatureConfig(vol_rank_window=20))
    columns: tuple[str, ...] = Field(DEFAULT_COLUMNS, description="feature columns observed")
    feature_scale: float = Field(
        1.0, gt=0, le=1e6, description="features are multiplied by it (returns are ~1e-2)"
    )
    obs_clip: float = Field(10.0, gt=0, le=1e6, description="observations are clipped to it")
    window: int = Field(4, ge=1, le=1000, description="bars of features in one observation")
    action: ActionKind = "long_flat"
    max_weight: float = Field(1.0, gt=0, le=1, description="weight of a full long or short")
    min_change: float = Field(
        0.05, ge=0, le=2, description="smallest move of a target weight that is traded"
    )
    reward: Literal["pnl", "risk_adjusted"] = "pnl"
    drawdown_penalty: float = Field(
        1.0, ge=0, le=100, description="risk_adjusted: penalty per unit of new drawdown"
    )
    reward_scale: float = Field(100.0, gt=0, le=1e6, description="rewards are multiplied by it")
    episode_bars: int | None = Field(
        None, ge=2, description="steps per episode from a random start; None: the whole data"
    )
    bust_fraction: float = Field(
        0.1, ge=0, lt=1, description="an episode terminates when equity falls below this share"
    )

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: tuple[str, ...]) -> tuple[str, ...]:
        if not columns or len(set(columns)) != len(columns):
            raise ValueError("columns must be distinct and not empty")
        return columns

    @model_validator(mode="after")
    def _check(self) -> TradingEnvConfig:
        unknown = sorted(set(self.columns) - set(feature_names(self.features)))
        if unknown:
            raise ValueError(f"unknown feature columns {unknown}")
        p = self.portfolio
        # The environment runs the engine's core steps; these options need the rest of it.
        if p.kill_switch is not None or p.exits is not None or p.capital is not None:
            raise ValueError("the RL environment does not run kill_switch, exits or capital")
        if self.action == "short_flat_long" and not p.limits.allow_short:
            raise ValueError("action short_flat_long needs portfolio.limits.allow_short")
        return self

    @property
    def warmup(self) -> int:
        """First bar with a full observation window."""
        return self.features.warmup + self.window - 1

    def n_features(self, n_symbols: int) -> int:
        """Length of an observation: feature windows, position weights, unrealized PnL."""
        return n_symbols * self.window * len(self.columns) + n_symbols + 1


def feature_tensor(data: MarketData, config: TradingEnvConfig) -> Float64Array:
    """Features of every symbol and bar, shape ``(n_symbols, n_bars, n_columns)``, causal."""
    out = np.empty((len(data.symbols), data.n_bars, len(config.columns)))
    for j in range(len(data.symbols)):
        frame = pd.DataFrame(
            {"high": data.high[j], "low": data.low[j], "close": data.close[j]}
            | {"volume": data.volume[j]},
            index=data.index,
        )
        cols = build_features(frame, config.features)[list(config.columns)]
        out[j] = cols.to_numpy(dtype=np.float64) * config.feature_scale
    return out


def observation(
    windows: Sequence[Float64Array], weights: Sequence[float], unrealized: float, clip: float
) -> Float32Array:
    """One observation: each symbol's ``(window, n_columns)`` features, then the position
    weights, then the unrealized PnL over equity; non-finite values read as 0, all clipped
    to ``[-clip, clip]`` (the bounds of the observation space)."""
    parts = [np.asarray(w, dtype=np.float64).ravel() for w in windows]
    flat = np.concatenate([*parts, np.asarray(weights, dtype=np.float64), [unrealized]])
    flat = np.clip(np.nan_to_num(flat, nan=0.0, posinf=clip, neginf=-clip), -clip, clip)
    out: Float32Array = flat.astype(np.float32)
    return out


def decode_action(action: object, config: TradingEnvConfig, n_symbols: int) -> list[float]:
    """Target weights per symbol for an action of the config's action space."""
    mw = config.max_weight
    if config.action == "long_flat":
        return [mw * int(np.asarray(action).item())]
    if config.action == "short_flat_long":
        return [mw * (int(np.asarray(action).item()) - 1)]
    a = np.clip(np.asarray(action, dtype=np.float64).reshape(n_symbols), -1.0, 1.0)
    if not config.portfolio.limits.allow_short:
        a = (a + 1.0) / 2.0  # the box is symmetric (as SAC and TD3 expect); long-only maps it
    w = a * mw
    gross = float(np.abs(w).sum())
    if gross > 1.0:  # one account: the weights share its equity
        w = w / gross
    return [float(x) for x in w]


def target_signals(
    targets: Sequence[float],
    held: dict[str, float],
    symbols: Sequence[str],
    ts: datetime,
    min_change: float,
) -> list[Signal]:
    """Signals for the targets that moved from ``held`` (the last targets sent, updated in
    place) by ``min_change`` or changed side; unchanged targets send nothing, so drifting
    prices do not cost a small rebalance every bar."""
    out: list[Signal] = []
    for symbol, new in zip(symbols, targets, strict=True):
        cur = held.get(symbol, 0.0)
        flips = (new > 0) != (cur > 0) or (new < 0) != (cur < 0)
        if new == cur or (not flips and abs(new - cur) < min_change):
            continue
        held[symbol] = new
        direction = (new > 0) - (new < 0)
        out.append(Signal(symbol, ts, direction=direction, weight=new, reason=f"rl w={new:.3f}"))
    return out


def weights_of(
    positions: Mapping[str, float], closes: Mapping[str, float], equity: float
) -> list[float]:
    """Position weights (market value over equity) in the order of ``closes``."""
    if not equity > 0 or not math.isfinite(equity):
        return [0.0] * len(closes)
    return [positions.get(s, 0.0) * c / equity for s, c in closes.items()]
