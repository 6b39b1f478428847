"""Backtest jobs: single backtests and sweeps (or walk-forwards) run in the background.

A job is submitted, answers with its id at once, and is driven by an asyncio task of the API
process: a single backtest runs as a Ray task (the API process's CPU stays free for the
session driver), a sweep or walk-forward on the process's one ``SweepPool`` of Ray workers.
Progress and results are read by id.

Store layout: namespace ``backtest-jobs`` holds one record per job, keyed by its id: kind
(``run`` | ``optimize``), mode (``backtest`` | ``sweep`` | ``walk_forward``), status
(``queued`` -> ``running`` -> ``done`` | ``failed`` | ``cancelled``), times, error, progress
(done, total, best so far), the validated config and, once done, the results. A sweep's own
status and trial records live under the job id in the sweep runner's namespaces.

Concurrency: at most ``max_runs`` single backtests and ``max_optimize`` sweeps run at once;
later jobs wait as ``queued`` (``max_queued`` unfinished jobs per kind at most, beyond that
``JobsBusy``). A server stopped while jobs are queued or running leaves them so in the store;
the next start queues them again: a backtest runs again, a sweep resumes from its recorded
trials. Jobs are driven by the process that holds them: one API process per store.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
import ray
import structlog

from raytrader.backtesting.config import BacktestConfig
from raytrader.backtesting.result import BacktestResult
from raytrader.backtesting.runner import run_backtest
from raytrader.backtesting.sweep_config import SweepConfig
from raytrader.backtesting.sweep_report import json_safe
from raytrader.backtesting.trials import metrics_record
from raytrader.orchestrator.sweep_pool import SweepPool
from raytrader.orchestrator.sweep_runner import (
    SweepCancelled,
    SweepOutcome,
    SweepProgress,
    SweepRunner,
    trials_namespace,
)
from raytrader.orchestrator.walk_forward_runner import WalkForwardOutcome, WalkForwardRunner
from raytrader.state.stores import StateStore

log = structlog.get_logger(__name__)

JOBS = "backtest-jobs"
JOB_ID_PATTERN = r"^bt-[0-9a-f]{12}$"
Kind = Literal["run", "optimize"]
Mode = Literal["backtest", "sweep", "walk_forward"]
Status = Literal["queued", "running", "done", "failed", "cancelled"]
FINISHED = frozenset({"done", "failed", "cancelled"})
EQUITY_POINTS = 2000  # an equity curve in the results has at most this many points
_PERSIST_EVERY = 1.0  # seconds between progress writes to the store


class JobNotFound(LookupError):
    pass


class JobsBusy(RuntimeError):
    """Too many unfinished jobs of a kind; retry later."""


class JobFinished(RuntimeError):
    """The job is done, failed or cancelled already."""


class _Cancelled(Exception):
    pass


def _now() -> str:
    return datetime.now(UTC).isoformat()


def new_job_id() -> str:
    return f"bt-{uuid.uuid4().hex[:12]}"


def equity_points(equity: pd.Series, limit: int = EQUITY_POINTS) -> list[dict[str, Any]]:
    """The curve as ``{ts, equity}`` points, evenly thinned to ``limit`` (first and last kept)."""
    n = len(equity)
    if n == 0:
        return []
    picks = np.unique(np.linspace(0, n - 1, min(n, limit)).round().astype(np.int64))
    index = pd.DatetimeIndex(equity.index)
    values = equity.to_numpy(dtype=float)
    return [
        {"ts": index[i].isoformat(), "equity": float(values[i]) if np.isfinite(values[i]) else None}
        for i in picks
    ]


def run_results(config: BacktestConfig, result: BacktestResult) -> dict[str, Any]:
    """What a finished single backtest keeps: metrics, counts and a thinned equity curve."""
    metrics = result.metrics(config.periods_per_year)
    index = pd.DatetimeIndex(result.equity.index)
    out: dict[str, Any] = json_safe(
        {
            "type": "run",
            "metrics": metrics_record(metrics),
            "bars": len(index),
            "symbols": list(result.positions.columns),
            "start": index[0].isoformat() if len(index) else None,
            "end": index[-1].isoformat() if len(index) else None,
            "final_equity": float(result.equity.iloc[-1]) if len(index) else None,
            "trades": len(result.trades),
            "fills": len(result.fills),
            "equity": equity_points(result.equity),
        }
    )
    return out


# No CPU reserved: the sweep pool's workers hold the CPUs for their lifetime, and a task
# waiting for one would wait for ever; the job manager bounds how many of these run at once.
@ray.remote(num_cpus=0, max_retries=0)
def _backtest_task(config: BacktestConfig) -> dict[str, Any]:
    return run_results(config, run_backtest(config))


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a Ray task's error wraps the task's own
    inner = cause if isinstance(cause, BaseException) else exc
    text = str(inner).strip() or type(inner).__name__
    return f"{type(inner).__name__}: {text}"[:2000]


async def _result_of(ref: ray.ObjectRef[Any]) -> Any:
    return await ref


@dataclass
class _Job:
    record: dict[str, Any]
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_write: float = 0.0

    @property
    def id(self) -> str:
        return str(self.record["id"])


class JobManager:
    """Submits, drives, cancels and reads backtest jobs; one per API process."""

    def __init__(
        self,
        store: StateStore,
        *,
        pool_size: int | None = None,
        max_runs: int = 2,
        max_optimize: int = 1,
        max_queued: int = 32,
    ) -> None:
        self.store = store
        self.pool_size = pool_size
        self.max_queued = max_queued
        self._slots = {
            "run": asyncio.Semaphore(max_runs),
            "optimize": asyncio.Semaphore(max_optimize),
        }
        self._jobs: dict[str, _Job] = {}
        self._pool: SweepPool | None = None
        self._pool_lock = asyncio.Lock()
        self._writes: set[asyncio.Task[None]] = set()
        self._closing = False

    # ---- life cycle --------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Queue again every job the store shows unfinished (after a restart), but for those
        a cancel was asked for; the ids of the jobs it found unfinished."""
        records = await self.store.list_records(JOBS)
        pending = sorted(
            (r for r in records.values() if r.get("status") not in FINISHED),
            key=lambda r: str(r.get("created", "")),
        )
        for record in pending:
            if record["id"] in self._jobs:
                continue
            if record.get("cancel_requested"):  # its server stopped before it settled
                record.update(status="cancelled", updated=_now(), finished=_now())
                await self.store.put_record(JOBS, record["id"], record)
                continue
            record.update(
                status="queued", updated=_now(), resumed=int(record.get("resumed", 0)) + 1
            )
            job = _Job(record)
            await self._write(job)
            self._launch(job)
            log.info("backtest job resumed", job=job.id, kind=record["kind"])
        return [r["id"] for r in pending]

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Stop driving jobs; unfinished ones stay queued or running in the store and are
        picked up again by the next ``start``."""
        self._closing = True
        tasks = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for job in list(self._jobs.values()):
            job.cancel.set()
            if job.record["status"] == "queued" and job.task is not None:
                job.task.cancel()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    # ---- submitting and reading -------------------------------------------------------------

    def check_room(self, kind: Kind) -> None:
        """``JobsBusy`` when no more jobs of ``kind`` may be queued."""
        unfinished = sum(1 for j in self._jobs.values() if j.record["kind"] == kind)
        if unfinished >= self.max_queued:
            raise JobsBusy(
                f"{unfinished} {kind} jobs are queued or running (at most {self.max_queued}); "
                "retry when one has finished"
            )

    async def submit_run(self, config: BacktestConfig) -> dict[str, Any]:
        """Queue a single backtest; its record."""
        self.check_room("run")
        return await self._submit(
            "run", "backtest", config.name, config.model_dump(mode="json"), {}
        )

    async def submit_optimize(
        self, config: SweepConfig, *, top: int = 20, total: int | None = None
    ) -> dict[str, Any]:
        """Queue a sweep (a walk-forward when ``config.walk_forward`` is set); its record.

        ``top`` ranked rows are kept in the results; ``total`` is the trials expected (the
        progress shows it until the runner knows better).
        """
        self.check_room("optimize")
        mode: Mode = "sweep" if config.walk_forward is None else "walk_forward"
        extra: dict[str, Any] = {"top": top}
        if total is not None:
            extra["progress"] = {"done": 0, "total": total, "unit": "trials", "best": None}
            if config.walk_forward is not None:
                extra["progress"].update(window=0, windows=config.walk_forward.n_windows)
        return await self._submit(
            "optimize", mode, config.name, config.model_dump(mode="json"), extra
        )

    async def _submit(
        self, kind: Kind, mode: Mode, name: str, config: dict[str, Any], extra: dict[str, Any]
    ) -> dict[str, Any]:
        now = _now()
        record: dict[str, Any] = {
            "id": new_job_id(),
            "kind": kind,
            "mode": mode,
            "name": name,
            "status": "queued",
            "created": now,
            "updated": now,
            "started": None,
            "finished": None,
            "error": None,
            "cancel_requested": False,
            "resumed": 0,
            "progress": {
                "done": 0,
                "total": 1,
                "unit": "runs" if kind == "run" else "trials",
                "best": None,
            },
            "config": config,
            "results": None,
            **extra,
        }
        job = _Job(record)
        await self._write(job)
        self._launch(job)
        log.info("backtest job queued", job=job.id, kind=kind, mode=mode)
        return dict(record)

    async def get(self, job_id: str) -> dict[str, Any]:
        """The job's record (live in this process, else from the store)."""
        job = self._jobs.get(job_id)
        if job is not None:
            return dict(job.record)
        record = await self.store.get_record(JOBS, job_id)
        if record is None:
            raise JobNotFound(f"no backtest job {job_id!r}")
        return record

    async def cancel(self, job_id: str, wait: float = 30.0) -> dict[str, Any]:
        """Cancel a queued or running job and wait (up to ``wait`` s) until it has stopped."""
        job = self._jobs.get(job_id)
        if job is None:
            record = await self.get(job_id)
            if record["status"] in FINISHED:
                raise JobFinished(f"job {job_id} is {record['status']} already")
            # Unfinished but driven by no one here (its server is gone): settle it.
            record.update(
                status="cancelled", cancel_requested=True, updated=_now(), finished=_now()
            )
            await self.store.put_record(JOBS, job_id, record)
            return record
        job.cancel.set()
        if job.record["status"] == "queued" and job.task is not None:
            job.task.cancel()
        await self._update(job, cancel_requested=True)  # a restart does not resume it
        if job.task is not None:
            await asyncio.wait({job.task}, timeout=wait)
        return await self.get(job_id)

    # ---- driving -----------------------------------------------------------------------------

    def _launch(self, job: _Job) -> None:
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._drive(job), name=f"backtest-job-{job.id}")

    async def _drive(self, job: _Job) -> None:
        kind: Kind = job.record["kind"]
        try:
            async with self._slots[kind]:
                if job.cancel.is_set():
                    raise _Cancelled
                await self._update(job, status="running", started=_now(), error=None)
                if kind == "run":
                    results = await self._execute_run(job)
                else:
                    results = await self._execute_optimize(job)
            await self._update(job, status="done", finished=_now(), results=json_safe(results))
            log.info("backtest job done", job=job.id)
        except (_Cancelled, SweepCancelled, asyncio.CancelledError):
            if not self._closing:
                await self._update(job, status="cancelled", finished=_now())
                log.info("backtest job cancelled", job=job.id)
        except Exception as exc:
            if not self._closing:  # a failure while stopping (a killed worker) is no verdict
                await self._update(job, status="failed", finished=_now(), error=_error_text(exc))
                log.warning("backtest job failed", job=job.id, error=_error_text(exc))
        finally:
            self._jobs.pop(job.id, None)

    async def _execute_run(self, job: _Job) -> dict[str, Any]:
        config = BacktestConfig.model_validate(job.record["config"])
        ref = _backtest_task.remote(config)
        result = asyncio.ensure_future(_result_of(ref))
        cancelled = asyncio.ensure_future(job.cancel.wait())
        try:
            await asyncio.wait({result, cancelled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            cancelled.cancel()
        if job.cancel.is_set() and not result.done():
            ray.cancel(ref, force=True)
            result.cancel()
            await asyncio.gather(result, return_exceptions=True)
            raise _Cancelled
        job.record["progress"] = {"done": 1, "total": 1, "unit": "runs", "best": None}
        out: dict[str, Any] = result.result()
        return out

    async def pool(self) -> SweepPool:
        """The process's sweep pool (started on first use): ML model searches share it."""
        return await self._get_pool()

    async def _get_pool(self) -> SweepPool:
        async with self._pool_lock:
            if self._pool is None:
                self._pool = SweepPool(self.pool_size)
                await self._pool.ready()
            return self._pool

    async def _execute_optimize(self, job: _Job) -> dict[str, Any]:
        config = SweepConfig.model_validate(job.record["config"])
        pool = await self._get_pool()
        if job.cancel.is_set():
            raise _Cancelled
        data = await asyncio.to_thread(config.data.load)
        top = int(job.record.get("top", 20))
        if config.walk_forward is None:

            def on_sweep(p: SweepProgress) -> None:
                self._progress(job, p.done, p.total, p.best)

            outcome = await SweepRunner(
                config, self.store, pool, sweep_id=job.id, data=data,
                on_progress=on_sweep, cancel=job.cancel,
            ).run()  # fmt: skip
            return await self._sweep_results(job.id, outcome, top)

        def on_window(k: int, n: int, p: SweepProgress) -> None:
            # Every window searches the same space: trials over all windows.
            self._progress(job, k * p.total + p.done, n * p.total, p.best, window=k + 1, windows=n)

        wf = await WalkForwardRunner(
            config, self.store, pool, wf_id=job.id, data=data,
            on_progress=on_window, cancel=job.cancel,
        ).run()  # fmt: skip
        return _walk_forward_results(wf)

    async def _sweep_results(
        self, job_id: str, outcome: SweepOutcome[SweepConfig], top: int
    ) -> dict[str, Any]:
        cfg = outcome.config
        best = outcome.best
        best_metrics = None
        if best is not None:
            trial = await self.store.get_record(trials_namespace(job_id), best["key"])
            best_metrics = trial["metrics"] if trial is not None else None
        rows = outcome.table.drop(columns=["node"], errors="ignore").head(top)
        return {
            "type": "sweep",
            "objective": cfg.objective,
            "direction": cfg.direction,
            "trials": len(outcome.table),
            "best": best,
            "best_params": None if best is None else {**cfg.params, **best["params"]},
            "best_metrics": best_metrics,
            "top": json_safe(rows.to_dict(orient="records")),
            "summary": json_safe(outcome.summary),
        }

    # ---- records -----------------------------------------------------------------------------

    def _progress(
        self,
        job: _Job,
        done: int,
        total: int,
        best: dict[str, Any] | None,
        **extra: int,
    ) -> None:
        job.record["progress"] = json_safe(
            {"done": done, "total": max(total, done), "unit": "trials", "best": best, **extra}
        )
        job.record["updated"] = _now()
        if time.monotonic() - job.last_write >= _PERSIST_EVERY:
            job.last_write = time.monotonic()
            self._spawn_write(self._write(job))

    def _spawn_write(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _update(self, job: _Job, **changes: Any) -> None:
        job.record.update(changes, updated=_now())
        await self._write(job)

    async def _write(self, job: _Job) -> None:
        # Under the job's lock and always its latest state: the last write wins with it.
        async with job.lock:
            job.last_write = time.monotonic()
            await self.store.put_record(JOBS, job.id, json_safe(job.record))


def _walk_forward_results(wf: WalkForwardOutcome) -> dict[str, Any]:
    return {
        "type": "walk_forward",
        "objective": wf.config.objective,
        "windows": json_safe(wf.windows_frame().to_dict(orient="records")),
        "oos_metrics": metrics_record(wf.oos_metrics),
        "oos_equity": equity_points(wf.oos_equity),
        "summary": json_safe(wf.summary),
    }
