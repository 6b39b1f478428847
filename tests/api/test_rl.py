"""RL endpoints: a training job on a Ray worker with progress, the registry's policies,
inference, out-of-sample evaluation, and 4xx naming what is wrong.

The app is the real one on the test run's Ray, without its lifespan: these endpoints use no
session actor, and starting a set per test would cost more than the tests themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from raytrader.orchestrator.api.app import create_app
from raytrader.settings import Settings

pytest.importorskip("torch")
pytest.importorskip("stable_baselines3")

pytestmark = pytest.mark.asyncio

# A tiny budget: the test checks the plumbing, tests/unit/rl that policies learn.
TRAIN: dict[str, Any] = {
    "name": "s01-ppo",
    "source": "universe_daily",
    "symbols": ["S01"],
    "algo": "ppo",
    "total_timesteps": 256,
    "net_arch": [16],
    "params": {"n_steps": 64, "batch_size": 32, "n_epochs": 2},
    "eval_every": 128,
    "env": {
        "action": "long_flat",
        "window": 2,
        "columns": ["ret_1", "ret_5"],
        "broker": {"commission": {"bps": 5}},
    },
}


@pytest_asyncio.fixture
async def client(ray_runtime: None, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path, api_key=None))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def _wait_done(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    seen: list[int] = []
    while True:
        resp = await client.get(f"/api/rl/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job: dict[str, Any] = resp.json()
        seen.append(job["progress"]["done"])
        if job["status"] in ("done", "failed", "cancelled"):
            assert seen == sorted(seen)  # progress only moves forward
            return job
        assert time.monotonic() < deadline, job
        await asyncio.sleep(0.05)


async def test_train_job_then_agents_infer_and_evaluate(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/rl/train", json=TRAIN)
    assert resp.status_code == 202, resp.text
    job = resp.json()
    assert job["status"] in ("queued", "running") and job["id"].startswith("rl-")
    assert job["progress"] == {"done": 0, "total": 256, "unit": "timesteps"}
    # The event loop keeps serving while the policy trains on a Ray worker.
    assert (await client.get("/health")).status_code == 200
    done = await _wait_done(client, job["id"])
    assert done["status"] == "done", done
    assert done["progress"]["done"] == done["progress"]["total"] == 256
    result = done["result"]
    assert (result["name"], result["version"], result["algo"]) == ("s01-ppo", 1, "ppo")
    # The policy kept is the best on validation: from timestep 128 or 256.
    assert result["symbols"] == ["S01"] and result["timesteps"] in (128, 256)
    assert [v["timestep"] for v in result["validation"]] == [128, 256]
    windows = result["windows"]
    assert windows["train"]["bars"] == 1252 and windows["test"]["bars"] == 418
    assert windows["train"]["end"] < windows["validation"]["start"] < windows["test"]["start"]

    agents = (await client.get("/api/rl/agents")).json()["agents"]
    assert [(a["name"], a["version"]) for a in agents] == [("s01-ppo", 1)]
    policy = agents[0]
    assert policy["symbols"] == ["S01"] and policy["action"] == "long_flat"
    assert policy["training_end"] == windows["train"]["end"]
    assert policy["timesteps"] == result["timesteps"]
    assert policy["features"] == ["ret_1", "ret_5"] and "torch" in policy["library_versions"]

    resp = await client.post("/api/rl/infer", json={"name": "s01-ppo", "limit": 3})
    assert resp.status_code == 200, resp.text
    inferred = resp.json()
    assert inferred["count"] == 3 and inferred["version"] == 1
    assert [t["symbol"] for t in inferred["targets"]] == ["S01"] * 3
    assert all(t["target_weight"] in (0.0, 1.0) for t in inferred["targets"])  # flat or long
    assert inferred["targets"][-1]["ts"].startswith("2024-01-03")  # the data's last bar

    body = {"name": "s01-ppo", "start": windows["test"]["start"], "n_random": 2, "seed": 3}
    resp = await client.post("/api/rl/evaluate", json=body)
    assert resp.status_code == 200, resp.text
    ev = resp.json()
    # Every contender starts together inside the test window, after the features' warm-up.
    assert ev["start"] > windows["test"]["start"] and ev["end"] == windows["test"]["end"]
    assert len(ev["random"]) == 2 and ev["random"][0] != ev["random"][1]
    assert ev["buy_and_hold"]["trade_count"] <= 1
    bh = ev["buy_and_hold"]["total_return"]
    assert ev["beats_buy_and_hold"] == (ev["policy"]["total_return"] > bh)
    again = await client.post("/api/rl/evaluate", json=body)
    assert again.json() == ev  # seeded: the same figures
    # Without a start, the evaluation begins after the validation window (which chose it).
    resp = await client.post("/api/rl/evaluate", json={"name": "s01-ppo", "n_random": 1})
    assert resp.status_code == 200, resp.text
    assert resp.json()["start"] == windows["test"]["start"]

    # The policy's own symbols only; evaluation needs bars after the training window.
    resp = await client.post("/api/rl/infer", json={"name": "s01-ppo", "symbols": ["S02"]})
    assert resp.status_code == 422 and "trades ['S01']" in resp.text
    assert any(d["loc"] == ["body", "symbols"] for d in resp.json()["detail"])
    resp = await client.post(
        "/api/rl/evaluate", json={"name": "s01-ppo", "end": windows["train"]["end"]}
    )
    assert resp.status_code == 422 and "after the validation window" in resp.text
    resp = await client.post("/api/rl/infer", json={"name": "s01-ppo", "version": 2})
    assert resp.status_code == 404 and "policy 's01-ppo' has no version 2" in resp.text

    # A hyperparameter the algorithm refuses fails the job with its reason; nothing is saved.
    bad = {**TRAIN, "params": {"n_steps": 64, "batch_size": 1}}
    resp = await client.post("/api/rl/train", json=bad)
    assert resp.status_code == 202, resp.text
    failed = await _wait_done(client, resp.json()["id"])
    assert failed["status"] == "failed" and "batch_size" in failed["error"], failed
    assert len((await client.get("/api/rl/agents")).json()["agents"]) == 1


async def test_cancel_a_running_job_then_the_queued_one_runs(client: httpx.AsyncClient) -> None:
    # Far more timesteps than the test waits for: it only runs until its first report.
    long = {**TRAIN, "name": "s01-long", "total_timesteps": 50_000, "eval_every": 50_000}
    first = (await client.post("/api/rl/train", json=long)).json()
    second = (await client.post("/api/rl/train", json={**TRAIN, "name": "s01-after"})).json()
    deadline = time.monotonic() + 120
    while True:
        job = (await client.get(f"/api/rl/jobs/{first['id']}")).json()
        if job["progress"]["done"] > 0:
            break
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        await asyncio.sleep(0.05)
    # One training at a time: the second waits.
    assert (await client.get(f"/api/rl/jobs/{second['id']}")).json()["status"] == "queued"

    resp = await client.delete(f"/api/rl/jobs/{first['id']}")
    assert resp.status_code == 200, resp.text
    cancelled = resp.json()
    assert cancelled["status"] == "cancelled" and cancelled["result"] is None, cancelled
    assert cancelled["error"] is None and cancelled["finished"] is not None
    assert 0 < cancelled["progress"]["done"] < cancelled["progress"]["total"] == 50_000

    # The slot is free: the queued job trains to the end and saves the only policy.
    after = await _wait_done(client, second["id"])
    assert after["status"] == "done", after
    assert (after["result"]["name"], after["result"]["version"]) == ("s01-after", 1)
    agents = (await client.get("/api/rl/agents")).json()["agents"]
    assert [(a["name"], a["version"]) for a in agents] == [("s01-after", 1)]
    assert (await client.get("/api/rl/agents", params={"name": "s01-long"})).status_code == 404
    # The cancelled job stays cancelled; finished jobs cannot be cancelled.
    assert (await client.get(f"/api/rl/jobs/{first['id']}")).json()["status"] == "cancelled"
    for job_id, status in ((first["id"], "cancelled"), (second["id"], "done")):
        resp = await client.delete(f"/api/rl/jobs/{job_id}")
        assert resp.status_code == 409 and f"{job_id} is {status}" in resp.text, resp.text


async def test_cancel_a_queued_job(client: httpx.AsyncClient) -> None:
    long = {**TRAIN, "name": "s01-long", "total_timesteps": 50_000, "eval_every": 50_000}
    first = (await client.post("/api/rl/train", json=long)).json()
    second = (await client.post("/api/rl/train", json={**TRAIN, "name": "s01-after"})).json()
    resp = await client.delete(f"/api/rl/jobs/{second['id']}")
    assert resp.status_code == 200, resp.text
    queued = resp.json()
    assert queued["status"] == "cancelled" and queued["started"] is None, queued
    assert queued["progress"]["done"] == 0
    resp = await client.delete(f"/api/rl/jobs/{first['id']}")
    assert resp.status_code == 200 and resp.json()["status"] == "cancelled", resp.text
    assert (await client.get("/api/rl/agents")).json() == {"agents": []}


@pytest.mark.parametrize(
    ("change", "loc", "words"),
    [
        ({"algo": "ppx"}, ["body", "algo"], "ppo"),
        (
            {"algo": "dqn", "params": {}, "env": {"action": "continuous"}},
            ["body", "algo"],
            "discrete",
        ),
        ({"symbols": ["NOPE"]}, ["body", "symbols", "0"], "unknown symbol 'NOPE'"),
        ({"params": {"device": "cuda"}}, ["body", "params", "device"], "no hyperparameter"),
        ({"symbols": ["S01", "S02"]}, ["body", "env", "action"], "need the 'continuous'"),
        ({"env": {"window": 0}}, ["body", "env", "window"], "greater than or equal"),
        ({"validation_fraction": 0.5}, ["body"], "must leave bars to test on"),
        ({"train_fraction": 0.01}, ["body", "train_fraction"], "too short"),
        ({"checkpoint_every": 10}, ["body", "checkpoint_every"], "Extra inputs"),
    ],
)
async def test_bad_training_requests_name_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], loc: list[str], words: str
) -> None:
    resp = await client.post("/api/rl/train", json={**TRAIN, **change})
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert any([str(p) for p in d["loc"]] == loc and words in d["msg"] for d in detail), detail


async def test_unknown_policies_and_jobs_are_404(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/rl/infer", json={"name": "nope"})
    assert resp.status_code == 404 and "no policy named 'nope'" in resp.text
    resp = await client.post("/api/rl/evaluate", json={"name": "nope"})
    assert resp.status_code == 404
    assert (await client.get("/api/rl/agents", params={"name": "nope"})).status_code == 404
    assert (await client.get("/api/rl/agents")).json() == {"agents": []}
    assert (await client.get("/api/rl/jobs/rl-0123456789ab")).status_code == 404
    resp = await client.delete("/api/rl/jobs/rl-0123456789ab")
    assert resp.status_code == 404 and "no training job 'rl-0123456789ab'" in resp.text
    assert (await client.delete("/api/rl/jobs/bad-id")).status_code == 422
    assert (await client.get("/api/rl/jobs/bad-id")).status_code == 422


async def test_a_server_without_the_rl_extra_answers_501(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def no_torch(name: str, package: str | None = None) -> Any:
        return None if name == "torch" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", no_torch)
    resp = await client.post("/api/rl/train", json=TRAIN)
    assert resp.status_code == 501 and "lacks ['torch']" in resp.text
    assert (await client.post("/api/rl/infer", json={"name": "x"})).status_code == 501
    assert (await client.get("/api/rl/agents")).status_code == 200  # reading metadata needs none
