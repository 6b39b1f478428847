"""Backtest jobs over the API: single runs, sweeps, walk-forwards, cancellation, bad specs.

The app runs over real Ray: a run job is a Ray task, a sweep runs on the app's worker pool.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis

from raytrader.backtesting.config import BacktestConfig
from raytrader.backtesting.runner import run_backtest
from raytrader.backtesting.sweep_config import SweepConfig
from raytrader.backtesting.trials import evaluate_chunk, metrics_record
from raytrader.orchestrator.api.app import create_app
from raytrader.orchestrator.jobs import JOB_ID_PATTERN, JOBS
from raytrader.orchestrator.sessions import SessionManager
from raytrader.orchestrator.sweep_runner import trial_setup, trials_namespace
from raytrader.settings import Settings
from raytrader.state.stores import open_store

pytestmark = pytest.mark.asyncio

RUN = "/api/backtest/run"
OPTIMIZE = "/api/backtest/optimize"
FINISHED = {"done", "failed", "cancelled"}
SYN = {"synthetic": {"n_bars": 3000, "seed": 4, "freq": "1h"}}


def run_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "api-run",
        "data": SYN,
        "agents": [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}],
        "broker": {"commission": {"bps": 10}},
        "portfolio": {"lot_size": 0.001},
    }
    body.update(over)
    return body


def optimize_body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "api-sweep",
        "data": SYN,
        "agent": "sma_cross",
        "space": {"fast": {"start": 5, "stop": 25, "step": 5}, "slow": {"values": [20, 40, 80]}},
        "broker": {"commission": {"bps": 10}},
        "portfolio": {"lot_size": 0.001},
        "chunk_size": 1,
    }
    body.update(over)
    return body


_SCHEMA: list[Any] = []  # the app's OpenAPI schema, loaded once


async def call(
    client: httpx.AsyncClient,
    method: str,
    template: str,
    expected: int,
    job_id: str | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Call ``template`` (with ``job_id`` put in); assert the status code and that the answer
    conforms to the OpenAPI schema (as the schemathesis run checks, for real job ids here)."""
    if not _SCHEMA:
        _SCHEMA.append(schemathesis.openapi.from_dict((await client.get("/openapi.json")).json()))
    path = template.replace("{job_id}", job_id or "")
    resp = await client.request(method, path, json=body)
    assert resp.status_code == expected, resp.text
    _SCHEMA[0][template][method].validate_response(resp)
    out: dict[str, Any] = resp.json()
    return out


async def submit(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    job = await call(client, "POST", path, 202, body=body)
    assert re.fullmatch(JOB_ID_PATTERN, job["id"]) and job["status"] in ("queued", "running")
    return str(job["id"])


async def status(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return await call(client, "GET", "/api/backtest/jobs/{job_id}", 200, job_id)


async def eventually(probe: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Poll ``probe`` until it returns something truthy (a generous deadline, no timing)."""
    deadline = time.monotonic() + 120
    while not (value := await probe()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)
    return value


async def finished(
    client: httpx.AsyncClient, job_id: str, seen: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Poll the job until it has finished (every status read goes to ``seen``); its results."""

    async def probe() -> bool:
        body = await status(client, job_id)
        if seen is not None:
            seen.append(body)
        return body["status"] in FINISHED

    await eventually(probe, f"job {job_id} finished")
    return await call(client, "GET", "/api/backtest/results/{job_id}", 200, job_id)


async def first_trials(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    """The job's status once it has finished some trials."""

    async def probe() -> dict[str, Any] | None:
        job = await status(client, job_id)
        return job if job["progress"]["done"] > 0 else None

    found: dict[str, Any] = await eventually(probe, f"the first trials of {job_id}")
    return found


async def performance(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    return await call(client, "GET", "/api/backtest/performance/{job_id}", 200, job_id)


async def test_run_job_bad_specs_and_unknown_ids(api: Any) -> None:
    """A run job's metrics are those of the same backtest run in-process; bad specs and
    unknown ids are refused."""
    job_id = await submit(api.client, RUN, run_body())
    job = await finished(api.client, job_id)
    assert job["status"] == "done", job["error"]
    assert job["progress"] == {
        "done": 1, "total": 1, "unit": "runs", "best": None, "window": None, "windows": None
    }  # fmt: skip
    results = job["results"]
    assert results["type"] == "run"

    config = BacktestConfig.model_validate(job["config"])
    direct = run_backtest(config)
    assert results["metrics"] == metrics_record(direct.metrics())
    assert results["trades"] == len(direct.trades) > 0
    assert results["fills"] == len(direct.fills)
    assert results["bars"] == 3000 and results["symbols"] == ["SYN"]
    points = results["equity"]
    assert len(points) == 2000
    assert points[0]["equity"] == direct.equity.iloc[0]
    assert points[-1]["equity"] == direct.equity.iloc[-1] == results["final_equity"]

    perf = await performance(api.client, job_id)
    assert perf["source"] == "run" and perf["metrics"] == results["metrics"]
    assert perf["agents"] == [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}]

    again = await api.client.post(f"/api/backtest/cancel/{job_id}")
    assert again.status_code == 409, again.text

    await check_bad_specs(api)
    await check_unknown_ids(api)


async def test_optimize_grid_and_walk_forward(api: Any) -> None:
    """A sweep job ranks its trials like the in-process evaluation of the same grid, with
    progress readable while it runs; then a walk-forward job."""
    job_id = await submit(api.client, OPTIMIZE, optimize_body(top=5))
    seen: list[dict[str, Any]] = []
    job = await finished(api.client, job_id, seen)
    assert job["status"] == "done", job["error"]

    # fast < slow: 3 pairs with slow 20, 5 with 40, 5 with 80.
    for snap in seen:
        p = snap["progress"]
        assert p["unit"] == "trials" and p["total"] == 13 and 0 <= p["done"] <= 13
        if p["best"] is not None:
            assert (
                set(p["best"]["params"]) == {"fast", "slow"} and p["best"]["objective"] == "sharpe"
            )
    dones = [s["progress"]["done"] for s in seen]
    assert dones == sorted(dones) and dones[-1] == 13

    results = job["results"]
    assert results["type"] == "sweep" and results["trials"] == 13
    top = results["top"]
    assert [row["rank"] for row in top] == [1, 2, 3, 4, 5]
    sharpes = [row["sharpe"] for row in top]
    assert sharpes == sorted(sharpes, reverse=True)

    config = SweepConfig.model_validate(job["config"])
    grid = config.search_space().grid()
    records = evaluate_chunk(config.data.load(), trial_setup(config), grid)
    assert len(records) == 13
    best = max(records, key=lambda r: r["metrics"]["sharpe"])
    assert results["best"]["params"] == best["params"]
    assert results["best"]["value"] == pytest.approx(best["metrics"]["sharpe"], rel=1e-12)
    assert results["best_metrics"] == pytest.approx(best["metrics"], rel=1e-12, nan_ok=True)
    assert job["progress"]["best"]["params"] == best["params"]

    perf = await performance(api.client, job_id)
    assert perf["source"] == "best_trial"
    assert perf["agents"] == [{"name": "sma_cross", "params": best["params"]}]
    assert perf["metrics"] == results["best_metrics"]

    await check_walk_forward(api)  # on the same worker pool


async def test_cancel_a_running_sweep(api: Any, tmp_path: Path) -> None:
    """Progress is readable while a sweep runs; cancelled, it keeps the trials it finished."""
    body = optimize_body(
        space={
            "fast": {"start": 2, "stop": 40, "step": 2},
            "slow": {"start": 50, "stop": 250, "step": 10},
        },
        engine="event",
        chunk_size=2,
    )
    job_id = await submit(api.client, OPTIMIZE, body)

    # Progress while it runs: trials done so far of the whole grid, the best one yet.
    running = await first_trials(api.client, job_id)
    assert running["status"] == "running" and running["started"] is not None
    progress = running["progress"]
    assert 0 < progress["done"] < progress["total"] == 20 * 21
    best = progress["best"]
    assert best is not None and best["objective"] == "sharpe"
    assert best["params"]["fast"] in range(2, 41, 2) and best["params"]["slow"] in range(
        50, 251, 10
    )

    job = await call(api.client, "POST", "/api/backtest/cancel/{job_id}", 200, job_id)
    assert job["status"] == "cancelled" and job["cancel_requested"] is True
    total = job["progress"]["total"]
    assert total == 20 * 21 and 0 < job["progress"]["done"] < total

    async with open_store(None, tmp_path) as store:
        trials = await store.list_records(trials_namespace(job_id))
    assert 0 < len(trials) < total

    assert (await api.client.get(f"/api/backtest/performance/{job_id}")).status_code == 409
    assert (await api.client.post(f"/api/backtest/cancel/{job_id}")).status_code == 409
    results = await call(api.client, "GET", "/api/backtest/results/{job_id}", 200, job_id)
    assert results["status"] == "cancelled" and results["results"] is None


async def check_walk_forward(api: Any) -> None:
    body = optimize_body(
        space={"fast": {"values": [5, 10]}, "slow": {"values": [30, 60]}},
        walk_forward={"mode": "rolling", "n_windows": 2},
        chunk_size=None,
    )
    job_id = await submit(api.client, OPTIMIZE, body)
    job = await finished(api.client, job_id)
    assert job["status"] == "done", job["error"]
    assert job["mode"] == "walk_forward"
    assert job["progress"]["window"] == 2 and job["progress"]["windows"] == 2
    assert job["progress"]["done"] == job["progress"]["total"] == 8
    results = job["results"]
    assert results["type"] == "walk_forward"
    windows = results["windows"]
    assert [w["index"] for w in windows] == [0, 1]
    for w in windows:
        assert w["trials"] == 4 and set(w["params"]) == {"fast", "slow"}
        assert w["train_end"] < w["test_start"] <= w["test_end"]
    assert results["oos_equity"] and results["summary"]["windows"] == 2
    perf = await performance(api.client, job_id)
    assert perf["source"] == "out_of_sample" and perf["agents"] is None
    assert perf["metrics"] == results["oos_metrics"]
    assert perf["metrics"]["bars"] > 0


def _error(resp: httpx.Response, *names: str) -> str:
    """The message of the 422 error whose location holds every one of ``names``."""
    assert resp.status_code == 422, resp.text
    for d in resp.json()["detail"]:
        if all(n in [str(p) for p in d["loc"]] for n in names):
            return str(d["msg"])
    raise AssertionError(f"no error at {names}: {resp.text}")


SMA = [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}]
BAD_RUNS: list[tuple[dict[str, Any], tuple[str, ...], str]] = [
    ({"agents": [{"name": "nope"}]}, ("agents", "0", "name"), "unknown agent 'nope'"),
    (
        {"agents": [{"name": "sma_cross", "params": {"fast": 0}}]},
        ("agents", "0", "params", "fast"),
        "greater than or equal to 1",
    ),
    (
        {"agents": [{"name": "sma_cross", "params": {"fast": 20, "slow": 20}}]},
        ("agents", "0", "params"),
        "fast (20) must be below slow (20)",
    ),
    ({"agents": []}, ("agents",), "at least 1"),
    ({"data": {}}, ("data",), "exactly one data source"),
    ({"data": {"bundled": "btc_1h", "symbols": ["NOPE"]}}, ("data", "symbols"), "NOPE"),
    (
        {"data": {"synthetic": {"kind": "universe", "n_bars": 100_000, "n_symbols": 50}}},
        ("data", "synthetic"),
        "at most",
    ),
    ({"data": {"bundled": "btc_1h", "timeframe": "1m"}}, ("data",), "finer timeframe"),
    ({"data": {"path": "/etc/passwd"}}, ("data", "path"), "Extra inputs"),
    ({"initial_cash": 0}, ("initial_cash",), "greater than 0"),
]
BAD_OPTIMIZE: list[tuple[dict[str, Any], tuple[str, ...], str]] = [
    ({"agent": "nope"}, ("agent",), "unknown agent 'nope'"),
    (
        {"space": {"fast": {"values": [0, 5]}, "slow": {"values": [30]}}},
        ("space", "fast"),
        "out of bounds",
    ),
    (
        {"space": {"fast": {"values": [5]}, "slow": {"start": 10, "stop": 30000, "step": 10}}},
        ("space", "slow"),
        "out of bounds",
    ),
    (
        {"space": {"fast": {"values": [20, 30]}, "slow": {"values": [20]}}},
        ("space",),
        "the grid is empty: every combination is invalid (fast (20) must be below slow (20)",
    ),
    ({"space": {"nope": {"values": [1]}}}, ("space", "nope"), "no parameter 'nope'"),
    ({"space": {}}, ("space",), "at least 1"),
    ({"space": {"fast": {"start": 1, "stop": 10}}}, ("space", "fast"), "start, stop and step"),
    ({"space": {"fast": {"low": 1, "high": 10}}}, ("space", "fast"), "needs values or a step"),
    ({"params": {"weight": 2}}, ("params", "weight"), "less than or equal to 1"),
    ({"params": {"slow": 50}}, ("space", "slow"), "both searched and fixed"),
    ({"objective": "luck"}, ("objective",), "not one of"),
    ({"search": {"method": "random"}}, ("search",), "n_trials is required"),
    (
        {
            "space": {
                "fast": {"start": 1, "stop": 200, "step": 1},
                "slow": {"start": 2, "stop": 200, "step": 1},
            }
        },
        ("space",),
        "at most 10000",
    ),
    (
        {"walk_forward": {"n_windows": 20, "min_train_bars": 2990}},
        ("walk_forward",),
        "",
    ),
    ({"walk_forward": {"mode": "anchored", "train_bars": 100}}, ("walk_forward",), "anchored"),
    # The fast path simulates neither a kill switch nor the optional limits: refused up front.
    (
        {"engine": "fast", "portfolio": {"lot_size": 0.001, "kill_switch": {"max_drawdown": 0.2}}},
        ("engine",),
        "a kill switch is configured",
    ),
    (
        {"engine": "fast", "portfolio": {"lot_size": 0.001, "limits": {"max_open_orders": 3}}},
        ("engine",),
        "pre-trade limits max_open_orders are set",
    ),
]


async def check_bad_specs(api: Any) -> None:
    """Each bad spec is a 422 naming its field and the problem; nothing is queued."""
    for over, names, text in BAD_RUNS:
        msg = _error(await api.client.post(RUN, json=run_body(**over)), "body", *names)
        assert text in msg, (over, msg)
    for over, names, text in BAD_OPTIMIZE:
        msg = _error(await api.client.post(OPTIMIZE, json=optimize_body(**over)), "body", *names)
        assert text in msg, (over, msg)


async def check_unknown_ids(api: Any) -> None:
    missing = "bt-000000000000"
    for method, path in (
        ("GET", f"/api/backtest/jobs/{missing}"),
        ("GET", f"/api/backtest/results/{missing}"),
        ("GET", f"/api/backtest/performance/{missing}"),
        ("POST", f"/api/backtest/cancel/{missing}"),
    ):
        resp = await api.client.request(method, path)
        assert resp.status_code == 404, (path, resp.text)
        assert missing in resp.json()["detail"]
    bad = await api.client.get("/api/backtest/results/not-a-job")
    assert _error(bad, "path", "job_id")


async def test_jobs_of_a_stopped_server_resume(manager: SessionManager, tmp_path: Path) -> None:
    """A server stopped mid-sweep leaves the job running in the store; the next one resumes
    it from the trials already recorded."""
    body = optimize_body(
        space={
            "fast": {"start": 2, "stop": 20, "step": 2},
            "slow": {"start": 30, "stop": 120, "step": 10},
        },
        engine="event",
        chunk_size=2,
    )
    settings = Settings(data_dir=tmp_path, api_key=None)

    def client_of(app: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")

    first = create_app(settings, manager=manager)
    async with first.router.lifespan_context(first), client_of(first) as client:
        job_id = await submit(client, OPTIMIZE, body)
        await first_trials(client, job_id)
    async with open_store(None, tmp_path) as store:
        left = await store.get_record(JOBS, job_id)
        recorded = len(await store.list_records(trials_namespace(job_id)))
    assert left is not None and left["status"] == "running" and 0 < recorded < 100

    second = create_app(settings, manager=manager)
    async with second.router.lifespan_context(second), client_of(second) as client:
        job = await finished(client, job_id)
    assert job["status"] == "done", job["error"]
    assert job["resumed"] == 1
    summary = job["results"]["summary"]
    assert summary["trials"] == 100 and summary["resumed"] == recorded
    assert summary["ran"] == 100 - recorded
