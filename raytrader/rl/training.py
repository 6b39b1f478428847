"""Training RL policies on ``TradingEnv`` with stable-baselines3: seeded, reproducible, with
checkpoints and an early stop on a validation window.

The same spec on the same data trains the same policy: SB3 seeds Python, NumPy and torch
from ``seed``, environment ``k`` resets with ``seed + k`` and everything runs on the CPU (set
torch to one thread for bit-identical results across machines with different core counts).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.data.market_data import MarketData
from raytrader.ml.registry import TrainingInfo
from raytrader.rl.config import TradingEnvConfig

__all__ = ["Algo", "RLTrainResult", "RLTrainSpec", "market_data_hash", "train_policy"]

Algo = Literal["ppo", "a2c", "dqn", "sac", "td3"]
_DISCRETE_ONLY = {"dqn"}
_CONTINUOUS_ONLY = {"sac", "td3"}


class RLTrainSpec(BaseModel):
    """A training run: algorithm, its params, the environment, the budget and the seed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algo: Algo = "ppo"
    env: TradingEnvConfig = Field(default_factory=TradingEnvConfig)
    total_timesteps: int = Field(10_000, ge=1, le=100_000_000)
    seed: int = Field(0, ge=0)
    net_arch: tuple[int, ...] = Field((32, 32), description="hidden layers of the networks")
    params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the SB3 algorithm"
    )
    n_envs: int = Field(1, ge=1, le=256, description="environments stepped together")
    vec_env: Literal["dummy", "subproc"] = Field(
        "dummy", description="dummy: in this process; subproc: one process per environment"
    )
    checkpoint_every: int | None = Field(None, ge=1, description="timesteps between checkpoints")
    eval_every: int = Field(2_000, ge=1, description="timesteps between validation runs")
    patience: int = Field(
        5, ge=1, le=1000, description="validation runs without improvement before stopping"
    )
    progress_bar: bool = False

    @model_validator(mode="after")
    def _check(self) -> RLTrainSpec:
        continuous = self.env.action == "continuous"
        if self.algo in _DISCRETE_ONLY and continuous:
            raise ValueError(f"{self.algo} needs a discrete action space, not 'continuous'")
        if self.algo in _CONTINUOUS_ONLY and not continuous:
            raise ValueError(f"{self.algo} needs the 'continuous' action space")
        return self


@dataclass
class RLTrainResult:
    """The trained policy (the best on validation when a validation window was given), the
    metadata the registry stores, and the validation scores (timestep, mean reward)."""

    model: Any
    info: TrainingInfo
    evaluations: list[tuple[int, float]] = field(default_factory=list)
    stopped_early: bool = False


def market_data_hash(data: MarketData) -> str:
    """SHA-256 of the bars: timestamps, symbols and OHLCV values."""
    h = hashlib.sha256()
    h.update("\x1f".join(data.symbols).encode())
    h.update(np.ascontiguousarray(data.index.asi8).data)
    for arr in (data.open, data.high, data.low, data.close, data.volume):
        h.update(np.ascontiguousarray(arr, dtype=np.float64).data)
    return h.hexdigest()


def train_policy(
    data: MarketData,
    spec: RLTrainSpec | None = None,
    validation: MarketData | None = None,
    checkpoint_dir: Path | str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RLTrainResult:
    """Train ``spec``'s algorithm on ``data``. With ``validation``, the policy is scored on it
    (deterministic actions, the whole window) every ``eval_every`` timesteps, training stops
    after ``patience`` scores without improvement, and the best-scoring policy is returned.
    ``progress(done, total)`` is called as timesteps pass (about a hundred times a run)."""
    from stable_baselines3.common.callbacks import (
        BaseCallback,
        CheckpointCallback,
        EvalCallback,
        StopTrainingOnNoModelImprovement,
    )
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    from raytrader.rl.env import TradingEnv
    from raytrader.rl.registry import algo_class

    spec = spec or RLTrainSpec()
    env_cfg = spec.env

    def make() -> TradingEnv:
        return TradingEnv(data, env_cfg)

    vec_cls = SubprocVecEnv if spec.vec_env == "subproc" else DummyVecEnv
    venv = make_vec_env(make, n_envs=spec.n_envs, seed=spec.seed, vec_env_cls=vec_cls)
    kwargs: dict[str, Any] = {"policy_kwargs": {"net_arch": list(spec.net_arch)}}
    kwargs |= spec.params
    cls = algo_class(spec.algo)
    model = cls("MlpPolicy", venv, seed=spec.seed, device="cpu", verbose=0, **kwargs)

    callbacks: list[BaseCallback] = []
    if progress is not None:
        callbacks.append(_progress_callback(progress, spec.total_timesteps))
    if checkpoint_dir is not None and spec.checkpoint_every:
        # SB3 counts the callback's calls, one per vectorized step of n_envs timesteps.
        every = max(spec.checkpoint_every // spec.n_envs, 1)
        callbacks.append(CheckpointCallback(every, str(checkpoint_dir), name_prefix=spec.algo))
    evaluator: EvalCallback | None = None
    best_dir = tempfile.TemporaryDirectory(prefix="rl-best-")
    try:
        if validation is not None:
            val_cfg = env_cfg.model_copy(update={"episode_bars": None})
            val_env = DummyVecEnv([lambda: TradingEnv(validation, val_cfg)])
            stop = StopTrainingOnNoModelImprovement(spec.patience, min_evals=1, verbose=0)
            evaluator = EvalCallback(
                val_env,
                callback_after_eval=stop,
                n_eval_episodes=1,
                eval_freq=max(spec.eval_every // spec.n_envs, 1),
                best_model_save_path=best_dir.name,
                log_path=best_dir.name,  # without it SB3 keeps no record of the scores
                deterministic=True,
                verbose=0,
            )
            callbacks.append(evaluator)
        model.learn(spec.total_timesteps, callback=callbacks, progress_bar=spec.progress_bar)
        evaluations: list[tuple[int, float]] = []
        stopped = False
        if evaluator is not None:
            steps = [int(s) for s in evaluator.evaluations_timesteps]
            scores = [float(np.mean(r)) for r in evaluator.evaluations_results]
            evaluations = list(zip(steps, scores, strict=True))
            stopped = model.num_timesteps < spec.total_timesteps
            best = Path(best_dir.name) / "best_model.zip"
            if best.is_file():
                model = cls.load(best, device="cpu")
    finally:
        venv.close()
        best_dir.cleanup()

    info = TrainingInfo(
        kind=spec.algo,
        features=list(env_cfg.columns),
        params={
            "env": env_cfg.model_dump(mode="json"),
            "symbols": list(data.symbols),
            "total_timesteps": spec.total_timesteps,
            "timesteps_done": int(model.num_timesteps),
            "net_arch": list(spec.net_arch),
            "algo_params": spec.params,
            "n_envs": spec.n_envs,
            # The early stop chose this policy on these bars: an honest test starts after them.
            "validation_end": validation.index[-1].isoformat()
            if validation is not None and validation.n_bars
            else None,
        },
        seed=spec.seed,
        training_start=data.index[0].to_pydatetime(),
        training_end=data.index[-1].to_pydatetime(),
        n_samples=int(model.num_timesteps),
        data_hash=market_data_hash(data),
        cv_metrics={"validation_reward": max(s for _, s in evaluations)} if evaluations else {},
        feature_config=env_cfg.features.model_dump(mode="json"),
        symbol=data.symbols[0] if len(data.symbols) == 1 else None,
    )
    return RLTrainResult(model, info, evaluations, stopped)


def _progress_callback(report: Callable[[int, int], None], total: int) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    every = max(total // 100, 1)

    class _Progress(BaseCallback):
        """Reports the timesteps done every ``every`` of them, and at the end."""

        def __init__(self) -> None:
            super().__init__()
            self.next = every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next:
                report(min(self.num_timesteps, total), total)
                self.next = (self.num_timesteps // every + 1) * every
            return True

        def _on_training_end(self) -> None:
            report(self.num_timesteps, total)

    return _Progress()
