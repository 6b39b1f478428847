"""Evaluation of a policy against buy-and-hold and random policies, out of sample."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from raytrader.data.market_data import MarketData
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.rl.config import TradingEnvConfig
from raytrader.rl.evaluate import evaluate_policy
from raytrader.rl.registry import PolicyRegistry
from raytrader.rl.training import RLTrainSpec, train_policy
from tests.unit.ml._synthetic import ar1_frame

COSTS = PaperBrokerConfig.model_validate({"commission": {"bps": 5}, "slippage": {"bps": 2}})
ENV = TradingEnvConfig(
    broker=COSTS,
    columns=("ret_1", "ret_5"),
    window=2,
    feature_scale=100.0,
    episode_bars=200,
    min_change=0.0,
)


@pytest.fixture(scope="module")
def frame_and_registry(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[pd.DataFrame, PolicyRegistry]]:
    """One policy trained on the first 2,000 of 3,000 AR(1) bars, shared by the tests."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAYTRADER_DATA_DIR", str(tmp_path_factory.mktemp("rl-eval")))
        frame = ar1_frame(3000, 0.4, 8)
        spec = RLTrainSpec(
            env=ENV,
            total_timesteps=4000,
            net_arch=(16,),
            params={"n_steps": 256, "batch_size": 64, "learning_rate": 3e-3, "n_epochs": 5},
        )
        result = train_policy(MarketData.from_frames({"AR": frame.iloc[:2000]}), spec)
        reg = PolicyRegistry()
        reg.save("ar", result.model, result.info)
        yield frame, reg


def test_evaluation_out_of_sample_against_buy_and_hold_and_random(
    frame_and_registry: tuple[pd.DataFrame, PolicyRegistry],
) -> None:
    frame, _ = frame_and_registry
    data = MarketData.from_frames({"AR": frame})
    ev = evaluate_policy(data, "ar", n_random=3, seed=1)
    assert ev.version == 1 and ev.first_bar == 2000  # the first bar after training
    assert ev.policy.start == data.ts(2000)
    assert ev.policy.start == ev.buy_and_hold.start == ev.random[0].start
    assert ev.beats_buy_and_hold and ev.beats_random
    assert ev.buy_and_hold.trade_count <= 1 and ev.policy.trade_count > 20
    assert len({r.total_return for r in ev.random}) == 3  # three different seeds
    again = evaluate_policy(data, "ar", n_random=3, seed=1)
    assert again.summary() == ev.summary()
    assert ev.summary()["beats_random"] is True


def test_evaluation_needs_bars_after_the_training_window(
    frame_and_registry: tuple[pd.DataFrame, PolicyRegistry],
) -> None:
    frame, _ = frame_and_registry
    data = MarketData.from_frames({"AR": frame.iloc[:2000]})
    with pytest.raises(ValueError, match="out of policy 'ar'"):
        evaluate_policy(data, "ar")
