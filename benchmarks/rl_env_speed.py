"""Speed of ``TradingEnv`` against a minimal gymnasium trading environment, and of PPO on it.

``TradingEnv`` steps the project's own simulator: signals, the order planner and rebalancer,
the pre-trade risk checks, the paper broker's fills with commission and slippage, the ledger.
The minimal environment defined here is what many RL trading examples do instead: the same
observation (the same precomputed feature windows, the position and its unrealized return),
the same flat/long action, and a reward of the position times the bar's close-to-close
return, with no orders, costs, lots, cash or risk checks. The gap between the two is the
price of the honest simulator per step.

Timed in one process, each after an untimed warm-up, on ``--bars`` seeded GBM bars
(``peers.gbm_bars``), one symbol, 10 bps commission and 2 bps slippage in ``TradingEnv``:

- **Environment steps/s** of both environments under two action sequences drawn once from a
  seed: ``random`` (a fresh flat/long draw every bar: a trade on half the bars) and ``sticky``
  (the action changes with probability 0.05 per bar, as a trained policy's might); ``reset``
  when an episode ends. Wall and CPU time, medians of ``--repeats``.
- **PPO timesteps/s** (stable-baselines3, ``MlpPolicy`` 64x64, ``n_steps`` 512 per env, one
  torch thread per process) on ``TradingEnv`` with 1 environment (``DummyVecEnv``, in this
  process) and with 1 and 2 environments in subprocesses (``SubprocVecEnv``), and on the
  minimal environment with 1; ``learn`` only (the model's and the subprocesses' start-up is
  reported apart), medians of ``--ppo-repeats``. The subprocesses' CPU is not in the CPU
  column (it reads this process's only), so that column is left out for them.

    .venv/bin/python benchmarks/rl_env_speed.py                       # ~2-3 min on 2 cores
    .venv/bin/python benchmarks/rl_env_speed.py --steps 5000 --ppo-timesteps 4096 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import numpy.typing as npt
from gymnasium import spaces

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(ROOT))

from benchmarks.backtest_speed import _cores, _load, machine, revision  # noqa: E402
from benchmarks.peers import DEFAULT_SEED, gbm_bars  # noqa: E402
from raytrader.data.market_data import MarketData  # noqa: E402
from raytrader.execution.paper_broker import PaperBrokerConfig  # noqa: E402
from raytrader.portfolio.config import PortfolioConfig  # noqa: E402
from raytrader.rl.config import TradingEnvConfig, feature_tensor, observation  # noqa: E402
from raytrader.rl.env import TradingEnv  # noqa: E402

Float32Array = npt.NDArray[np.float32]

ENV_CONFIG = TradingEnvConfig(
    broker=PaperBrokerConfig.model_validate(
        {"commission": {"bps": 10}, "slippage": {"bps": 2}, "lot_size": 0.0001}
    ),
    portfolio=PortfolioConfig(lot_size=0.0001),
    action="long_flat",
    window=4,
)


class MinimalTradingEnv(gym.Env[Float32Array, Any]):
    """Flat or long one symbol; reward = position x close-to-close return; nothing else.

    The observation is ``TradingEnv``'s (the same feature windows, the position's weight and
    its unrealized return), so the two differ only in what a step simulates.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - gymnasium's own attribute

    def __init__(self, data: MarketData, config: TradingEnvConfig) -> None:
        super().__init__()
        self.config = config
        self._features = feature_tensor(data, config)
        self._close = np.asarray(data.close[0], dtype=np.float64)
        finite = np.isfinite(self._features).all(axis=(0, 2))
        self.start = max(int(np.argmax(finite)) + config.window - 1, config.warmup)
        self.n = data.n_bars
        size = config.n_features(1)
        self.observation_space = spaces.Box(-config.obs_clip, config.obs_clip, (size,), np.float32)
        self.action_space = spaces.Discrete(2)
        self.t = self.start
        self.position = 0
        self.entry = 0.0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Float32Array, dict[str, Any]]:
        super().reset(seed=seed)
        self.t, self.position, self.entry = self.start, 0, 0.0
        return self._observe(), {}

    def step(self, action: Any) -> tuple[Float32Array, float, bool, bool, dict[str, Any]]:
        new = int(action)
        if new and not self.position:
            self.entry = self._close[self.t]
        self.position = new
        ret = self._close[self.t + 1] / self._close[self.t] - 1.0
        self.t += 1
        reward = self.position * ret * self.config.reward_scale
        return self._observe(), float(reward), False, self.t >= self.n - 1, {}

    def _observe(self) -> Float32Array:
        t, w = self.t, self.config.window
        unrealized = self._close[t] / self.entry - 1.0 if self.position else 0.0
        window = self._features[0, t - w + 1 : t + 1]
        return observation([window], [float(self.position)], unrealized, self.config.obs_clip)


# ---------------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall and CPU seconds of ``fn()`` (CPU of this process)."""
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def actions(n: int, switch: float, seed: int) -> list[int]:
    """Flat/long actions: each bar keeps the last with probability ``1 - switch``, else draws."""
    rng = np.random.default_rng(seed)
    out, a = [], 0
    for _ in range(n):
        if rng.random() < switch:
            a = int(rng.integers(0, 2))
        out.append(a)
    return out


def run_steps(env: gym.Env[Any, Any], acts: Sequence[int]) -> None:
    env.reset(seed=0)
    for a in acts:
        _, _, terminated, truncated, _ = env.step(a)
        if terminated or truncated:
            env.reset()


def env_rows(data: MarketData, args: argparse.Namespace) -> list[list[str]]:
    rows: list[list[str]] = []
    envs: dict[str, gym.Env[Any, Any]] = {
        "TradingEnv": TradingEnv(data, ENV_CONFIG),
        "minimal env": MinimalTradingEnv(data, ENV_CONFIG),
    }
    for label, switch in (("random", 1.0), ("sticky", 0.05)):
        acts = actions(args.steps, switch, args.seed)
        rates: dict[str, float] = {}
        cpu_rates: dict[str, float] = {}
        for env in envs.values():
            run_steps(env, acts[: min(2000, len(acts))])  # warm-up
        walls: dict[str, list[float]] = {k: [] for k in envs}
        cpus: dict[str, list[float]] = {k: [] for k in envs}
        for _ in range(args.repeats):  # interleaved
            for name, env in envs.items():
                wall, cpu = timed(partial(run_steps, env, acts))
                walls[name].append(wall)
                cpus[name].append(cpu)
        for name in envs:
            wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
            rates[name] = args.steps / wall
            cpu_rates[name] = args.steps / cpu
            rows.append(
                [
                    name,
                    label,
                    f"{wall:.3f}",
                    f"{args.steps / wall:,.0f}",
                    f"{cpu:.3f}",
                    f"{args.steps / cpu:,.0f}",
                    f"{1e6 * wall / args.steps:.1f}",
                ]
            )
        ratio = _x(rates["minimal env"] / rates["TradingEnv"])
        cpu_ratio = _x(cpu_rates["minimal env"] / cpu_rates["TradingEnv"])
        rows.append(["", f"{label}: minimal / TradingEnv", "", ratio, "", cpu_ratio, ""])
    return rows


def ppo_rows(data: MarketData, args: argparse.Namespace) -> list[list[str]]:
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    torch.set_num_threads(1)
    runs: list[tuple[str, Callable[[], gym.Env[Any, Any]], int, type[Any]]] = [
        ("TradingEnv", lambda: TradingEnv(data, ENV_CONFIG), 1, DummyVecEnv),
        ("TradingEnv", lambda: TradingEnv(data, ENV_CONFIG), 1, SubprocVecEnv),
        ("TradingEnv", lambda: TradingEnv(data, ENV_CONFIG), 2, SubprocVecEnv),
        ("minimal env", lambda: MinimalTradingEnv(data, ENV_CONFIG), 1, DummyVecEnv),
    ]
    rows: list[list[str]] = []
    base = float("nan")
    for name, make, n_envs, vec_cls in runs:
        walls, cpus, starts = [], [], []
        for k in range(args.ppo_repeats + 1):  # the first is the warm-up
            t0 = time.perf_counter()
            venv = make_vec_env(make, n_envs=n_envs, seed=args.seed, vec_env_cls=vec_cls)
            model = PPO(
                "MlpPolicy",
                venv,
                n_steps=512,
                batch_size=128,
                n_epochs=4,
                seed=args.seed,
                device="cpu",
                verbose=0,
            )
            start = time.perf_counter() - t0
            wall, cpu = timed(partial(model.learn, args.ppo_timesteps))
            venv.close()
            if k:
                walls.append(wall)
                cpus.append(cpu)
                starts.append(start)
        wall = statistics.median(walls)
        rate = args.ppo_timesteps / wall
        if vec_cls is DummyVecEnv and n_envs == 1 and name == "TradingEnv":
            base = rate
        in_process = vec_cls is DummyVecEnv
        rows.append(
            [
                name,
                f"{n_envs} ({'in process' if in_process else 'subprocesses'})",
                f"{wall:.2f}",
                f"{rate:,.0f}",
                _x(rate / base),
                f"{statistics.median(cpus):.2f}" if in_process else "-",
                f"{statistics.median(starts):.2f}",
            ]
        )
    return rows


def _x(value: float) -> str:
    return "-" if value != value else f"{value:,.2f}x"


def print_table(title: str, headers: list[str], rows: list[list[str]], left: int = 2) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i < left else "right")
    for row in rows:
        table.add_row(*row)
    Console(width=200).print(table)


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("raytrader", "gymnasium", "stable-baselines3", "torch", "numpy"):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            continue
    return ", ".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--bars", type=int, default=20_000, help="bars of the data (20000)")
    p.add_argument("--steps", type=int, default=20_000, help="env steps per timed run (20000)")
    p.add_argument("--repeats", type=int, default=5, help="timed env runs (medians; 5)")
    p.add_argument("--ppo-timesteps", type=int, default=8_192, help="PPO timesteps per run")
    p.add_argument("--ppo-repeats", type=int, default=3, help="timed PPO runs (medians; 3)")
    p.add_argument("--no-ppo", action="store_true", help="environment steps only")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    frame = gbm_bars(args.bars, args.seed)
    data = MarketData.from_frames({"GBM": frame})
    load0 = _load()
    print_table(
        f"Environment steps, {args.steps:,} per run, {args.bars:,} bars "
        f"(medians of {args.repeats}, interleaved)",
        ["environment", "actions", "wall s", "steps/s", "CPU s", "steps/CPU s", "us/step"],
        env_rows(data, args),
    )
    if not args.no_ppo:
        print_table(
            f"PPO learn, {args.ppo_timesteps:,} timesteps per run "
            f"(medians of {args.ppo_repeats} after a warm-up)",
            ["environment", "envs", "wall s", "timesteps/s", "vs 1 in process", "CPU s", "start s"],
            ppo_rows(data, args),
        )
    load1 = _load()
    print(f"\n{machine()}; {versions()}; raytrader at {revision()}")
    print(f"load average {load0:.2f} before, {load1:.2f} after")
    if max(load0, load1) > _cores():
        print("warning: the load exceeded the core count; wall times are inflated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
