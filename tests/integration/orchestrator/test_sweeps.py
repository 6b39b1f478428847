"""Sweeps on a real local Ray: the same results as in-process trials, streamed to the store,
resumable after a cancel and after a SIGKILL, walk-forward windows without look-ahead."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import pytest_asyncio
import yaml

from raytrader.backtesting.sweep_config import SweepConfig, parse_sweep_config
from raytrader.backtesting.trials import TrialSetup, evaluate_chunk
from raytrader.backtesting.walk_forward_windows import windows
from raytrader.data.market_data import MarketData
from raytrader.orchestrator.sweep_pool import SweepPool
from raytrader.orchestrator.sweep_runner import (
    SWEEPS,
    SweepCancelled,
    SweepConflict,
    SweepProgress,
    SweepRunner,
    trials_namespace,
)
from raytrader.orchestrator.walk_forward_runner import WalkForwardRunner
from raytrader.state.stores import StateStore, open_store

pytestmark = pytest.mark.asyncio

N = 42  # 6 fast x 8 slow lengths, 6 pairs with fast >= slow skipped
COSTS = {"commission": {"bps": 10, "minimum": 1.0}, "slippage": {"bps": 2}}


def sweep_config(**over: Any) -> SweepConfig:
    raw: dict[str, Any] = {
        "name": "it",
        "data": {"synthetic": {"kind": "single", "n_bars": 4000, "seed": 3, "freq": "1h"}},
        "agent": "sma_cross",
        "space": {
            "fast": {"start": 4, "stop": 24, "step": 4},
            "slow": {"start": 10, "stop": 80, "step": 10},
        },
        "broker": COSTS,
        "portfolio": {"lot_size": 0.001},
    }
    raw.update(over)
    return parse_sweep_config(raw)


@pytest.fixture(scope="module")
def pool(ray_runtime: None) -> Iterator[SweepPool]:
    p = SweepPool(2)
    yield p
    p.shutdown()


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    async with open_store(None, tmp_path) as s:
        yield s


def in_process(config: SweepConfig, data: MarketData) -> dict[str, dict[str, Any]]:
    setup = TrialSetup(config.agent, config.initial_cash, config.broker, config.portfolio)
    grid = config.search_space().grid()
    return {r["key"]: r for r in evaluate_chunk(data, setup, grid)}


async def test_grid_sweep_equals_in_process_trials(pool: SweepPool, store: StateStore) -> None:
    config = sweep_config(chunk_size=5)
    data = config.data.load()
    seen: list[SweepProgress] = []
    out = await SweepRunner(
        config, store, pool, sweep_id="g1", data=data, on_progress=seen.append
    ).run()

    expected = in_process(config, data)
    assert len(out.table) == len(expected) == out.summary["trials"] == N
    for _, row in out.table.iterrows():
        want = expected[row["key"]]["metrics"]
        assert row["fast"] == expected[row["key"]]["params"]["fast"]
        for name in ("sharpe", "final_equity", "max_drawdown", "trade_count", "win_rate"):
            assert row[name] == pytest.approx(want[name], rel=1e-12), name
    # Ranked best first; the best is the top row.
    sharpe = out.table["sharpe"].to_numpy()
    assert (np.diff(sharpe) <= 0).all()
    assert out.best is not None and out.best["value"] == sharpe[0]
    assert out.best["params"] == {
        "fast": int(out.table["fast"][0]),
        "slow": int(out.table["slow"][0]),
    }
    # Progress streamed chunk by chunk, and both workers ran trials.
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert seen[-1].done == seen[-1].total == N and len(seen) >= 5
    assert out.summary["engines"] == {"fast": N}
    # Every trial is in the store, and the sweep's record says done.
    assert len(await store.list_records(trials_namespace("g1"))) == N
    record = await store.get_record(SWEEPS, "g1")
    assert record is not None and record["status"] == "done" and record["best"] == out.best

    # Started again with the same id: nothing left to run.
    again = await SweepRunner(config, store, pool, sweep_id="g1", data=data).run()
    assert again.summary["ran"] == 0 and again.summary["resumed"] == N
    assert again.best == out.best


async def test_same_id_with_another_config_is_refused(pool: SweepPool, store: StateStore) -> None:
    config = sweep_config()
    data = config.data.load()
    await SweepRunner(config, store, pool, sweep_id="c1", data=data).run()
    other = sweep_config(objective="sortino")
    with pytest.raises(SweepConflict, match="sweep 'c1' exists with another config"):
        await SweepRunner(other, store, pool, sweep_id="c1", data=data).run()


async def test_cancel_then_resume_runs_only_the_missing_trials(
    pool: SweepPool, store: StateStore
) -> None:
    config = sweep_config(chunk_size=2, engine="event")
    data = config.data.load()
    cancel = asyncio.Event()

    def stop_early(p: SweepProgress) -> None:
        if p.done >= 6:
            cancel.set()

    with pytest.raises(SweepCancelled):
        await SweepRunner(
            config, store, pool, sweep_id="k1", data=data, on_progress=stop_early, cancel=cancel
        ).run()
    record = await store.get_record(SWEEPS, "k1")
    assert record is not None and record["status"] == "cancelled"
    recorded = len(await store.list_records(trials_namespace("k1")))
    assert 6 <= recorded < N

    out = await SweepRunner(config, store, pool, sweep_id="k1", data=data).run()
    assert out.summary["resumed"] == recorded
    assert out.summary["ran"] == N - recorded
    assert out.summary["engines"] == {"event": N}
    expected = in_process(config, data)
    assert set(out.table["key"]) == set(expected)


async def test_optuna_sweep_runs_distinct_valid_trials(pool: SweepPool, store: StateStore) -> None:
    config = sweep_config(
        space={"fast": {"low": 2, "high": 40}, "slow": {"low": 10, "high": 150}},
        search={"method": "optuna", "n_trials": 40, "seed": 5},
    )
    out = await SweepRunner(config, store, pool, sweep_id="o1", data=config.data.load()).run()
    assert len(out.table) == 40
    assert out.table["key"].is_unique
    assert (out.table["fast"] < out.table["slow"]).all()
    assert out.best is not None and out.best["value"] == out.table["sharpe"].max()


async def test_event_engine_agents_run_in_the_same_machinery(
    pool: SweepPool, store: StateStore
) -> None:
    config = sweep_config(
        data={"synthetic": {"kind": "universe", "n_symbols": 5, "n_bars": 500, "seed": 1}},
        agent="momentum",
        params={"index_ma_period": 50, "exit_ma_period": 40},
        space={"lookback_period": {"values": [20, 40]}, "top_percentage": {"values": [0.2, 0.4]}},
    )
    out = await SweepRunner(config, store, pool, sweep_id="m1", data=config.data.load()).run()
    assert out.summary["engines"] == {"event": 4}
    assert out.table["final_equity"].notna().all()


async def test_walk_forward_windows_trade_only_out_of_sample(
    pool: SweepPool, store: StateStore
) -> None:
    config = sweep_config(
        walk_forward={"mode": "anchored", "n_windows": 3, "purge_bars": 12},
    )
    data = config.data.load()
    assert config.walk_forward is not None
    plan = windows(data.n_bars, config.walk_forward)
    out = await WalkForwardRunner(config, store, pool, wf_id="wf1", data=data).run()

    assert len(out.windows) == 3
    for w, res in zip(plan, out.windows, strict=True):
        assert res.test_start == data.index[w.test_start].isoformat()
        assert w.test_start - w.train_end == 12
        # The in-sample pick is the best trial of a sweep over the training bars only.
        train = data.slice(w.train_start, w.train_end)
        best = max(in_process(config, train).values(), key=lambda r: r["metrics"]["sharpe"])
        assert res.params == {k: best["params"][k] for k in ("fast", "slow")}
    # The stitched OOS curve covers the test windows and starts at the initial cash.
    equity = out.oos_equity
    assert equity.iloc[0] == pytest.approx(config.initial_cash)
    assert equity.index[0] == data.index[plan[0].test_start]
    assert equity.index[-1] == data.index[-1]
    assert len(equity) == sum(w.n_test for w in plan)
    s = out.summary
    assert s["windows"] == 3 and s["purge_bars"] == 12
    assert set(s["parameter_stability"]) == {"fast", "slow"}
    assert len(s["degradation"]["ratios"]) == 3
    assert all(r.dsr is None or 0.0 <= r.dsr <= 1.0 for r in out.windows)
    # Each window's sweep is resumable on its own.
    ids = [k for k in await store.list_records(SWEEPS) if k.startswith("wf1-w")]
    assert len(ids) == 3


def _count(db_dir: Path, sweep_id: str) -> int:
    async def go() -> int:
        async with open_store(None, db_dir) as s:
            return len(await s.list_records(trials_namespace(sweep_id)))

    return asyncio.run(go())


async def test_sigkilled_sweep_resumes_with_only_the_missing_trials(
    pool: SweepPool, tmp_path: Path
) -> None:
    raw = sweep_config(engine="event", chunk_size=2).model_dump(mode="json")
    raw["data"] = {"synthetic": {"kind": "single", "n_bars": 20000, "seed": 3, "freq": "1h"}}
    config_file = tmp_path / "sweep.yaml"
    config_file.write_text(yaml.safe_dump(raw))
    db_dir = tmp_path / "db"
    db_dir.mkdir()
    env = {**os.environ, "RAYTRADER_DATA_DIR": str(db_dir)}
    env.pop("RAY_ADDRESS", None)
    log = (tmp_path / "sweep.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "raytrader.cli", "sweep", str(config_file), "--id", "kill1",
         "--workers", "1", "--no-save"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        recorded = 0
        while recorded < 6:
            assert proc.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no trial recorded in time"
            await asyncio.sleep(0.5)
            recorded = await asyncio.to_thread(_count, db_dir, "kill1")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its Ray, like a lost pod
        proc.wait()
    at_restart = await asyncio.to_thread(_count, db_dir, "kill1")
    assert 6 <= at_restart < N

    config = parse_sweep_config(raw)
    async with open_store(None, db_dir) as s:
        record = await s.get_record(SWEEPS, "kill1")
        assert record is not None and record["status"] == "running"  # it never got to finish
        out = await SweepRunner(config, s, pool, sweep_id="kill1").run()
    assert out.summary["resumed"] == at_restart
    assert out.summary["ran"] == N - at_restart
    expected = in_process(config, config.data.load())
    got = out.table.set_index("key")["final_equity"].to_dict()
    want = {k: r["metrics"]["final_equity"] for k, r in expected.items()}
    assert got == pytest.approx(want, rel=1e-9)  # event engine there, fast path here


def test_ranked_table_is_parquet_ready(
    tmp_path: Path, gbm_frame: Callable[..., pd.DataFrame]
) -> None:
    from raytrader.backtesting.sweep_report import best_record, ranked_table, write_sweep

    config = sweep_config()
    data = MarketData.from_frames({"X": gbm_frame(1500, seed=2, freq="1h", vol=0.01)})
    records = list(in_process(config, data).values())
    table = ranked_table(records, ["fast", "slow"], "sharpe")
    best = best_record(table, ["fast", "slow"], "sharpe")
    folder = write_sweep(tmp_path / "s", config, table, best, {"trials": len(table)})
    back = pd.read_parquet(folder / "trials.parquet")
    assert list(back["rank"]) == list(range(1, N + 1))
    assert back["sharpe"].iloc[0] == max(r["metrics"]["sharpe"] for r in records)
    assert (folder / "heatmap.png").stat().st_size > 10_000
    assert (folder / "best.json").read_text().count('"fast"') == 1
