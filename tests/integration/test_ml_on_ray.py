"""ML on a real local Ray: a model's hyperparameter search run by the sweep runner on its worker
pool (the same ranking as in-process, seeded, the best saved with the search), and a
walk-forward whose ML agent refits its model inside each test window."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import pytest_asyncio

from raytrader.agents.ml_agent import MLAgent
from raytrader.backtesting.sweep_config import parse_sweep_config
from raytrader.backtesting.walk_forward_windows import windows
from raytrader.data.market_data import MarketData
from raytrader.ml.features import FeatureConfig
from raytrader.ml.registry import ModelRegistry
from raytrader.ml.search import search_local
from raytrader.ml.training import LabelConfig, TrainSpec, train
from raytrader.orchestrator.ml_search import search_on_ray
from raytrader.orchestrator.sweep_pool import SweepPool
from raytrader.orchestrator.sweep_runner import SWEEPS, trials_namespace
from raytrader.orchestrator.walk_forward_runner import WalkForwardRunner
from raytrader.state.stores import StateStore, open_store
from tests.unit.ml._synthetic import ar1_frame

pytestmark = pytest.mark.asyncio

BASE: dict[str, Any] = {
    "kind": "logistic",
    "features": FeatureConfig(vol_rank_window=50, return_lags=(1, 2, 5)),
    "labels": LabelConfig(horizon=1),
    "cv_splits": 3,
}
GRID = {"space": {"C": {"values": [0.001, 0.03, 1.0, 30.0]}}, "chunk_size": 1}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ml-ray")
    spec = TrainSpec(**BASE)
    result = train(ar1_frame(400, 0.4, seed=99), spec, symbol="AR")
    ModelRegistry(root / "models").save("recipe", result.model, result.info)
    return root


@pytest.fixture(scope="module")
def pool(ray_runtime: None, data_dir: Path) -> Iterator[SweepPool]:
    # The workers read the test's registry (an ML agent's model is found by name).
    p = SweepPool(2, env={"RAYTRADER_DATA_DIR": str(data_dir)})
    yield p
    p.shutdown()


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with open_store(None, tmp_path) as s:
        yield s


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return ar1_frame(900, 0.3, seed=5)


def _trials(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns=["seconds", "node"]).reset_index(drop=True)


async def test_search_runs_on_the_pool_and_saves_the_best(
    pool: SweepPool, store: StateStore, frame: pd.DataFrame, tmp_path: Path
) -> None:
    spec = TrainSpec(**BASE, search=GRID)
    result = await search_on_ray(frame, spec, store, pool, symbol="AR", search_id="s1")

    # Trials ran in both workers, not here, and are recorded like a sweep's.
    records = await store.list_records(trials_namespace("s1"))
    assert len(records) == 4
    pids = {r["pid"] for r in records.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    status = await store.get_record(SWEEPS, "s1")
    assert status is not None and status["status"] == "done"
    # Ranked by log-loss, the best first; the same ranking and scores as in this process.
    table = result.table
    assert list(table["log_loss"]) == sorted(table["log_loss"])
    assert result.best is not None and result.best["params"] == {"C": table["C"][0]}
    local = search_local(frame, spec).table
    pd.testing.assert_frame_equal(_trials(table), _trials(local), rtol=1e-12)
    # One trial recomputed directly: a plain training with the best params scores the same.
    direct = train(frame, TrainSpec(**BASE, params=result.best["params"]))
    assert direct.info.cv_metrics["log_loss"] == pytest.approx(result.best["value"], rel=1e-12)

    trained = train(frame, spec, symbol="AR", search=result)
    record = ModelRegistry(tmp_path).save("searched", trained.model, trained.info)
    assert record.params["C"] == result.best["params"]["C"]
    assert record.search is not None
    assert record.search["ran_on"] == "ray" and record.search["sweep_id"] == "s1"
    assert record.search["best"] == result.best and len(record.search["top"]) == 4


async def test_random_search_on_ray_is_seeded(
    pool: SweepPool, store: StateStore, frame: pd.DataFrame
) -> None:
    def spec(seed: int) -> TrainSpec:
        search = {
            "space": {"C": {"low": 0.001, "high": 10.0, "log": True}},
            "method": "random",
            "n_trials": 3,
            "seed": seed,
        }
        return TrainSpec(**BASE, search=search)

    first = await search_on_ray(frame, spec(7), store, pool, search_id="r1")
    again = await search_on_ray(frame, spec(7), store, pool, search_id="r2")
    other = await search_on_ray(frame, spec(8), store, pool, search_id="r3")
    pd.testing.assert_frame_equal(_trials(first.table), _trials(again.table))
    assert first.best == again.best
    assert set(first.table["C"]).isdisjoint(other.table["C"])


async def test_walk_forward_agent_refits_inside_each_test_window(
    pool: SweepPool, store: StateStore, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYTRADER_DATA_DIR", str(data_dir))
    every, window = 100, 150
    fixed = {"model": "recipe", "retrain_every": every, "train_window": window}
    config = parse_sweep_config(
        {
            "name": "ml-wf",
            "data": {"synthetic": {"kind": "single", "n_bars": 10, "seed": 0}},  # replaced
            "agent": "ml",
            "params": {**fixed, "allow_short": True},
            "space": {"long_threshold": {"values": [0.52, 0.56]}},
            "engine": "event",
            "walk_forward": {"mode": "rolling", "n_windows": 2, "train_bars": 500},
        }
    )
    data = MarketData.from_frames({"AR": ar1_frame(1100, 0.4, seed=21)})
    assert config.walk_forward is not None
    plan = windows(data.n_bars, config.walk_forward)
    out = await WalkForwardRunner(config, store, pool, wf_id="mlwf", data=data).run()

    assert len(out.windows) == 2
    for w, res in zip(plan, out.windows, strict=True):
        assert res.params["long_threshold"] in (0.52, 0.56)
        assert res.oos_trades > 0  # refitted models trade every test window
        # The window's agent, as the runner builds it: its refits fall inside the test window,
        # the first on the window's first bar.
        agent = MLAgent(**config.params, **res.params)
        start = w.test_start - agent.warmup
        agent.indicators(data.slice(start, w.test_end))
        test_index = data.index[w.test_start : w.test_end]
        assert agent.refits[0] == test_index[0]
        assert all(test_index[0] <= ts <= test_index[-1] for ts in agent.refits)
        assert len(agent.refits) == -(-len(test_index) // every)
