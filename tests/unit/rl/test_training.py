"""Training: reproducible with a seed, checkpoints, early stop, the policy registry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from raytrader.data.market_data import MarketData
from raytrader.ml.registry import ModelNotFoundError, ModelRegistry
from raytrader.portfolio.config import PortfolioConfig
from raytrader.risk.limits import RiskLimits
from raytrader.rl.config import TradingEnvConfig
from raytrader.rl.env import TradingEnv
from raytrader.rl.registry import PolicyRegistry
from raytrader.rl.training import RLTrainSpec, market_data_hash, train_policy
from tests.unit.ml._synthetic import ar1_frame

TINY_PPO = {"n_steps": 64, "batch_size": 32, "n_epochs": 2}


def _data(n: int = 300, seed: int = 1) -> MarketData:
    return MarketData.from_frames({"AR": ar1_frame(n, 0.3, seed)})


def _params(model: object) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]  # type: ignore[attr-defined]


def test_same_spec_trains_the_same_policy_and_another_seed_does_not() -> None:
    data = _data()
    spec = RLTrainSpec(total_timesteps=256, seed=7, params=TINY_PPO, n_envs=2)
    a = train_policy(data, spec)
    b = train_policy(data, spec)
    c = train_policy(data, spec.model_copy(update={"seed": 8}))
    for x, y in zip(_params(a.model), _params(b.model), strict=True):
        assert torch.equal(x, y)
    assert any(
        not torch.equal(x, z) for x, z in zip(_params(a.model), _params(c.model), strict=True)
    )
    # The whole budget ran (PPO rounds it up to whole rollouts).
    assert a.model.num_timesteps >= 256
    info = a.info
    assert info.kind == "ppo" and info.seed == 7 and info.symbol == "AR"
    assert info.training_end == data.index[-1].to_pydatetime()
    assert info.data_hash == market_data_hash(data) != market_data_hash(_data(seed=2))
    assert TradingEnvConfig.model_validate(info.params["env"]) == spec.env


@pytest.mark.parametrize(
    ("algo", "action", "params"),
    [
        ("a2c", "long_flat", {"n_steps": 16}),
        ("dqn", "long_flat", {"learning_starts": 50, "buffer_size": 1000, "batch_size": 16}),
        ("sac", "continuous", {"learning_starts": 50, "buffer_size": 1000, "batch_size": 16}),
        ("td3", "continuous", {"learning_starts": 50, "buffer_size": 1000, "batch_size": 16}),
    ],
)
def test_every_algorithm_trains_saves_and_reloads(
    tmp_path: Path, algo: str, action: str, params: dict[str, int]
) -> None:
    data = _data()
    spec = RLTrainSpec.model_validate(
        {
            "algo": algo,
            "env": {"action": action},
            "total_timesteps": 120,
            "params": params,
            "net_arch": (16,),
        }
    )
    result = train_policy(data, spec)
    reg = PolicyRegistry(tmp_path)
    record = reg.save("p", result.model, result.info)
    assert (record.name, record.version, record.kind) == ("p", 1, algo)
    assert {"torch", "stable-baselines3", "gymnasium"} <= set(record.library_versions)
    loaded = reg.load("p")
    obs, _ = TradingEnv(data, spec.env).reset(seed=0)
    batch = np.stack([obs, obs * 0.5, -obs])
    want, _ = result.model.predict(batch, deterministic=True)
    got, _ = loaded.model.predict(batch, deterministic=True)
    np.testing.assert_array_equal(want, got)


def test_registry_versions_list_delete_and_kept_apart_from_ml_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(tmp_path))
    result = train_policy(_data(), RLTrainSpec(total_timesteps=64, params=TINY_PPO))
    reg = PolicyRegistry()
    assert reg.root == tmp_path / "policies"
    reg.save("pol", result.model, result.info)
    reg.save("pol", result.model, result.info)
    assert reg.versions("pol") == [1, 2] and reg.names() == ["pol"]
    assert [r.version for r in reg.list()] == [1, 2]
    reg.delete("pol", 1)
    assert reg.versions("pol") == [2]
    assert ModelRegistry().names() == []  # the ML registry does not see policies
    with pytest.raises(ModelNotFoundError, match="no version 5"):
        reg.load("pol", 5)
    with pytest.raises(ValueError, match="invalid model name"):
        reg.save("../x", result.model, result.info)


def test_checkpoints_and_early_stop_on_a_validation_window(tmp_path: Path) -> None:
    frame = ar1_frame(700, 0.3, 3)
    train_data = MarketData.from_frames({"AR": frame.iloc[:450]})
    val_data = MarketData.from_frames({"AR": frame.iloc[450:]})
    spec = RLTrainSpec(
        total_timesteps=4_000,
        params=TINY_PPO,
        checkpoint_every=256,
        eval_every=128,
        patience=1,
        seed=1,
    )
    result = train_policy(train_data, spec, validation=val_data, checkpoint_dir=tmp_path)
    assert result.evaluations and result.stopped_early
    assert result.evaluations[-1][0] < 4_000
    assert result.info.cv_metrics["validation_reward"] == max(s for _, s in result.evaluations)
    assert sorted(p.name for p in tmp_path.glob("ppo_*_steps.zip"))


def test_spec_refuses_an_algorithm_the_action_space_cannot_use() -> None:
    with pytest.raises(ValueError, match="dqn needs a discrete"):
        RLTrainSpec(algo="dqn", env=TradingEnvConfig(action="continuous"))
    with pytest.raises(ValueError, match="sac needs the 'continuous'"):
        RLTrainSpec(algo="sac")
    shorts = PortfolioConfig(limits=RiskLimits(allow_short=True))
    RLTrainSpec(algo="dqn", env=TradingEnvConfig(action="short_flat_long", portfolio=shorts))


def test_environments_in_subprocesses_train_what_in_process_ones_do() -> None:
    data = _data()
    spec = RLTrainSpec(total_timesteps=128, seed=4, params=TINY_PPO, n_envs=2, net_arch=(8,))
    here = train_policy(data, spec)
    apart = train_policy(data, spec.model_copy(update={"vec_env": "subproc"}))
    for x, y in zip(_params(here.model), _params(apart.model), strict=True):
        assert torch.equal(x, y)
