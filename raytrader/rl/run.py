"""A training run from a config file: what ``raytrader train rl CONFIG.yaml`` and
``POST /api/rl/train`` do.

The config names the policy, the data and its symbols, then ``RLTrainSpec``'s fields. The
bars are split in time: the first ``train_fraction`` train the policy, the next
``validation_fraction`` decide the early stop, the rest stays out of sample for
``raytrader.rl.evaluate``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, model_validator

from raytrader.config_files import ConfigError, load_config_file
from raytrader.data.market_data import MarketData
from raytrader.data.spec import DataSpec
from raytrader.ml.registry import ModelRecord
from raytrader.rl.training import RLTrainResult, RLTrainSpec

__all__ = ["RLRun", "RLTrainConfig", "load_rl_train_config", "run_rl_training"]


class RLTrainConfig(RLTrainSpec):
    """The registry name, the data, the symbols traded and the time split, then
    ``RLTrainSpec``'s fields (algo, env, total_timesteps, seed, net_arch, params, ...)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    data: DataSpec
    symbols: list[str] | None = Field(None, description="traded symbols; None: all the data's")
    train_fraction: float = Field(0.6, gt=0, lt=1)
    validation_fraction: float = Field(0.2, ge=0, lt=1)

    @model_validator(mode="after")
    def _split(self) -> RLTrainConfig:
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError("train_fraction + validation_fraction must leave bars to test on")
        return self

    def spec(self) -> RLTrainSpec:
        return RLTrainSpec.model_validate(self.model_dump(include=set(RLTrainSpec.model_fields)))


def load_rl_train_config(path: Path) -> RLTrainConfig:
    """Read and validate an RL training YAML file (data paths relative to the file)."""
    return load_config_file(path, RLTrainConfig)


@dataclass(frozen=True)
class RLRun:
    """A finished run: the saved version, the training result, the three windows and the
    whole data they split."""

    record: ModelRecord
    result: RLTrainResult
    train: MarketData
    validation: MarketData | None
    test: MarketData
    data: MarketData


def split(data: MarketData, train: float, validation: float) -> tuple[MarketData, ...]:
    """Consecutive train / validation (possibly empty) / test windows of ``data``."""
    n = data.n_bars
    a, b = int(n * train), int(n * (train + validation))
    return data.slice(0, a), data.slice(a, b), data.slice(b, n)


def run_rl_training(
    config: RLTrainConfig,
    registry_dir: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RLRun:
    """Load the data, train on its first window with early stop on the second, save the
    policy as a new version of ``config.name``."""
    from raytrader.rl.registry import PolicyRegistry
    from raytrader.rl.training import train_policy

    frames = config.data.frames()
    symbols = config.symbols or list(frames)
    missing = [s for s in symbols if s not in frames]
    if missing:
        raise ConfigError(f"symbols {missing} not in the data (have {sorted(frames)})")
    data = MarketData.from_frames({s: frames[s] for s in symbols})
    train, val, test = split(data, config.train_fraction, config.validation_fraction)
    validation = val if val.n_bars else None
    result = train_policy(train, config.spec(), validation=validation, progress=progress)
    record = PolicyRegistry(registry_dir).save(config.name, result.model, result.info)
    return RLRun(record, result, train, validation, test, data)
