"""The training-job queue: one job at a time in submission order, the unfinished cap, progress,
failures as records, cancel of queued and running jobs (through the work's hook), shutdown."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from raytrader.orchestrator.training_jobs import (
    JobFinished,
    JobsBusy,
    TrainingJob,
    TrainingJobs,
    Work,
)

pytestmark = pytest.mark.asyncio


def _gated(gate: asyncio.Event, log: list[str], name: str) -> Work:
    """Work that reports progress, then waits for ``gate``; a cancel opens it via its hook."""

    async def work(job: TrainingJob) -> dict[str, Any]:
        log.append(f"start {name}")
        job.progress(1, 10)
        job.on_cancel(gate.set)
        await gate.wait()
        job.check()
        log.append(f"end {name}")
        return {"name": name}

    return work


async def _until(jobs: TrainingJobs, job_id: str, status: str) -> dict[str, Any]:
    while (job := jobs.get(job_id))["status"] != status:
        await asyncio.sleep(0.001)
    return job


async def test_one_at_a_time_in_order_with_progress_and_results() -> None:
    jobs = TrainingJobs("ml", "fits", max_unfinished=3)
    log: list[str] = []
    gates = [asyncio.Event() for _ in range(3)]
    ids = [jobs.submit({"k": k}, 10, _gated(g, log, str(k)))["id"] for k, g in enumerate(gates)]
    assert all(i.startswith("ml-") and len(i) == 15 for i in ids)
    running = await _until(jobs, ids[0], "running")
    assert running["progress"] == {"done": 1, "total": 10, "unit": "fits"}
    assert [jobs.get(i)["status"] for i in ids[1:]] == ["queued", "queued"]
    with pytest.raises(JobsBusy, match="3 training jobs are queued or running"):
        jobs.submit({}, 1, _gated(asyncio.Event(), log, "x"))
    for gate in reversed(gates):  # the later gates open first: the order is still the queue's
        gate.set()
    done = [await _until(jobs, i, "done") for i in ids]
    assert log == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]
    assert [d["result"] for d in done] == [{"name": "0"}, {"name": "1"}, {"name": "2"}]
    assert all(d["started"] <= d["finished"] for d in done)
    assert done[0]["request"] == {"k": 0} and jobs.unfinished() == 0
    with pytest.raises(JobFinished, match="is done"):
        await jobs.cancel(ids[0])
    with pytest.raises(KeyError):
        jobs.get("ml-000000000000")


async def test_a_failure_is_the_jobs_error_and_the_next_job_runs() -> None:
    jobs = TrainingJobs("rl", "timesteps", max_unfinished=8)

    async def boom(job: TrainingJob) -> dict[str, Any]:
        raise ValueError("batch_size must be > 1")

    async def fine(job: TrainingJob) -> dict[str, Any]:
        return {"ok": True}

    bad = jobs.submit({}, 5, boom)["id"]
    good = jobs.submit({}, 5, fine)["id"]
    assert (await _until(jobs, good, "done"))["result"] == {"ok": True}
    failed = jobs.get(bad)
    assert failed["status"] == "failed" and failed["result"] is None
    assert failed["error"] == "ValueError: batch_size must be > 1"


async def test_cancel_queued_and_running_jobs_frees_the_slot() -> None:
    jobs = TrainingJobs("rl", "timesteps", max_unfinished=8)
    log: list[str] = []
    first = jobs.submit({}, 10, _gated(asyncio.Event(), log, "first"))["id"]
    second = jobs.submit({}, 10, _gated(asyncio.Event(), log, "second"))["id"]
    last_gate = asyncio.Event()
    last = jobs.submit({}, 10, _gated(last_gate, log, "last"))["id"]
    await _until(jobs, first, "running")

    queued = await jobs.cancel(second)
    assert queued["status"] == "cancelled" and queued["started"] is None
    running = await jobs.cancel(first)  # its hook opens the gate; its check raises
    assert running["status"] == "cancelled" and running["result"] is None
    assert running["error"] is None and running["progress"]["done"] == 1
    await _until(jobs, last, "running")
    last_gate.set()
    assert (await _until(jobs, last, "done"))["result"] == {"name": "last"}
    assert log == ["start first", "start last", "end last"]  # "second" never started
    with pytest.raises(JobFinished, match="is cancelled"):
        await jobs.cancel(first)


async def test_progress_from_a_worker_thread_and_shutdown_cancels_everything() -> None:
    jobs = TrainingJobs("ml", "fits", max_unfinished=8)
    stop = threading.Event()
    hooked: list[str] = []

    async def threaded(job: TrainingJob) -> dict[str, Any]:
        job.on_cancel(lambda: hooked.append(job.id))

        def fit() -> None:
            done = 0
            while not stop.is_set():
                done += 1
                job.progress(done, 1_000_000)
                job.check()  # raises once the cancel came
                stop.wait(0.001)

        await asyncio.to_thread(fit)
        return {}

    running = jobs.submit({}, 1_000_000, threaded)["id"]
    queued = jobs.submit({}, 1, threaded)["id"]
    while jobs.get(running)["progress"]["done"] < 3:
        await asyncio.sleep(0.001)
    await jobs.shutdown()
    stop.set()
    assert hooked == [running]
    assert [jobs.get(i)["status"] for i in (running, queued)] == ["cancelled", "cancelled"]
    assert jobs.unfinished() == 0
