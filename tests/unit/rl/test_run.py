"""Training from a config file: the split, early stop on the validation window, the saved
version, progress, and config errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from raytrader.backtesting.config import ConfigError
from raytrader.data.market_data import MarketData
from raytrader.rl.evaluate import evaluate_policy
from raytrader.rl.registry import PolicyRegistry
from raytrader.rl.run import load_rl_train_config, run_rl_training

CONFIG = """
name: syn-ppo
data:
  synthetic: {n_bars: 900, seed: 3, freq: 1h}
train_fraction: 0.5
validation_fraction: 0.25
algo: ppo
total_timesteps: 512
seed: 2
net_arch: [16]
params: {n_steps: 64, batch_size: 32, n_epochs: 2}
eval_every: 128
env:
  action: long_flat
  window: 2
  broker: {commission: {bps: 5}}
"""


def test_config_trains_on_the_first_window_and_saves_a_version(tmp_path: Path) -> None:
    path = tmp_path / "rl.yaml"
    path.write_text(CONFIG)
    config = load_rl_train_config(path)
    seen: list[tuple[int, int]] = []
    run = run_rl_training(config, tmp_path / "reg", lambda d, t: seen.append((d, t)))
    assert (run.train.n_bars, run.test.n_bars) == (450, 225)
    assert run.validation is not None and run.validation.n_bars == 225
    assert run.train.index[-1] < run.validation.index[0] < run.test.index[0]
    assert run.record.version == 1 and run.record.training_end == run.train.index[-1]
    assert run.result.evaluations  # the validation window was scored
    assert seen and seen[-1][1] == 512 and [d for d, _ in seen] == sorted(d for d, _ in seen)
    reg = PolicyRegistry(tmp_path / "reg")
    assert reg.metadata("syn-ppo").params["symbols"] == ["SYN"]
    again = run_rl_training(config, tmp_path / "reg")
    assert again.record.version == 2


def test_evaluation_starts_after_the_validation_window(tmp_path: Path) -> None:
    path = tmp_path / "rl.yaml"
    path.write_text(CONFIG.replace("total_timesteps: 512", "total_timesteps: 128"))
    run = run_rl_training(load_rl_train_config(path), tmp_path / "reg")
    assert run.validation is not None
    validation_end = run.validation.index[-1]
    assert run.record.params["validation_end"] == validation_end.isoformat()
    full = MarketData.from_frames(load_rl_train_config(path).data.frames())
    reg = PolicyRegistry(tmp_path / "reg")
    # The early stop chose the policy on the validation bars: they are not out of sample.
    ev = evaluate_policy(full, "syn-ppo", n_random=1, registry=reg)
    assert ev.policy.start == ev.buy_and_hold.start == run.test.index[0]
    assert ev.policy.end == full.index[-1]
    inside = evaluate_policy(full, "syn-ppo", n_random=1, registry=reg, trade_in_sample=True)
    assert inside.policy.start < run.train.index[-1]
    with pytest.raises(ValueError, match="after the validation window"):
        evaluate_policy(full.slice(0, 600), "syn-ppo", registry=reg)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("algo: dqx", "algo"),
        ("algo: sac", "sac needs the 'continuous'"),
        ("validation_fraction: 0.5", "must leave bars to test on"),
        ("symbols: [NOPE]", "not in the data"),
    ],
)
def test_config_errors_name_the_problem(tmp_path: Path, change: str, message: str) -> None:
    path = tmp_path / "rl.yaml"
    path.write_text(CONFIG + change + "\n")
    with pytest.raises(ConfigError, match=message):
        run_rl_training(load_rl_train_config(path), tmp_path / "reg")


def test_unreadable_and_malformed_files_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read"):
        load_rl_train_config(missing)
    for body, message in [
        ("name: [unclosed", "not valid YAML"),
        ("- a list", "expected a mapping at the top level"),
        ("name: x\n", r"rl\.yaml: data: Field required"),
    ]:
        path = tmp_path / "rl.yaml"
        path.write_text(body)
        with pytest.raises(ConfigError, match=message):
            load_rl_train_config(path)


def test_relative_data_paths_are_read_from_the_config_folder(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "rl.yaml"
    path.parent.mkdir()
    path.write_text("name: p\ndata: {path: bars.csv}\n")
    assert load_rl_train_config(path).data.path == tmp_path / "sub" / "bars.csv"
