"""``raytrader train rl CONFIG.yaml``: progress, validation scores, a saved version, the
held-out evaluation, errors naming the field, and the shipped configs."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")

from raytrader.cli import app
from raytrader.rl.registry import PolicyRegistry
from raytrader.rl.run import load_rl_train_config

runner = CliRunner()
CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "rl"

SYN = """
    name: syn-ppo
    data:
      synthetic: {n_bars: 600, seed: 3, freq: 1h}
    train_fraction: 0.5
    validation_fraction: 0.25
    algo: ppo
    total_timesteps: 256
    net_arch: [16]
    params: {n_steps: 64, batch_size: 32, n_epochs: 2}
    eval_every: 128
    env:
      action: long_flat
      window: 2
      columns: [ret_1, ret_5]
      broker: {commission: {bps: 5}}
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rl.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def test_train_rl_saves_versions_prints_validation_and_held_out_figures(tmp_path: Path) -> None:
    reg = tmp_path / "policies"
    cfg = _write(tmp_path, SYN)
    result = runner.invoke(app, ["train", "rl", str(cfg), "--registry", str(reg)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "256/256" in out  # the progress bar's timesteps
    assert "Validation reward" in out and "128" in out and "256" in out
    assert "saved syn-ppo version 1: ppo on SYN, the policy at timestep" in out
    assert "(best on validation, budget 256)" in out
    assert "buy and hold" in out and "random 5" in out  # the held-out evaluation
    assert "Held-out bars from 2020-01-19 18:00" in out  # the test window's first bar
    record = PolicyRegistry(reg).metadata("syn-ppo")
    assert record.params["symbols"] == ["SYN"] and record.n_samples in (128, 256)
    assert "validation_reward" in record.cv_metrics
    again = runner.invoke(
        app,
        ["train", "rl", str(cfg), "--registry", str(reg), "--no-evaluate", "--total-timesteps=128"],
    )
    assert again.exit_code == 0, again.output
    assert "saved syn-ppo version 2" in again.output and "budget 128)" in again.output
    assert "buy and hold" not in again.output
    assert PolicyRegistry(reg).versions("syn-ppo") == [1, 2]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ("algo: dqx", "algo"),
        ("symbols: [NOPE]", "NOPE"),
        ("validation_fraction: 0.6", "must leave bars to test on"),
    ],
)
def test_bad_config_is_exit_2_naming_the_problem(tmp_path: Path, change: str, words: str) -> None:
    bad = _write(tmp_path, SYN + f"    {change}\n")
    result = runner.invoke(app, ["train", "rl", str(bad), "--registry", str(tmp_path)])
    assert result.exit_code == 2 and words in result.output, result.output


def test_shipped_configs_are_valid_and_train(tmp_path: Path) -> None:
    names = {p.name: load_rl_train_config(p).name for p in CONFIGS.glob("*.yaml")}
    assert names == {"ppo_btc.yaml": "btc-ppo", "sac_universe.yaml": "universe-sac"}
    reg = tmp_path / "policies"
    # One rollout of the README's config (its budget is for a real run).
    args = ["train", "rl", str(CONFIGS / "ppo_btc.yaml"), "--registry", str(reg)]
    result = runner.invoke(app, [*args, "--total-timesteps", "1", "--no-evaluate"])
    assert result.exit_code == 0, result.output
    assert PolicyRegistry(reg).metadata("btc-ppo").params["symbols"] == ["BTC/USDT"]
