"""Training jobs of one API process (ML models, RL policies): a queue running one at a time.

A job is ``queued``, then ``running``, then ``done``, ``failed`` or ``cancelled``. At most
``max_unfinished`` are queued or running; beyond, a submission raises ``JobsBusy``. A job's
work is an async function of its ``TrainingJob``: it reports progress (from any thread), reads
``cancelled`` and may register how to stop it while it runs (``on_cancel``: a Ray task's
cancel, say); its return value is the job's result, an exception its error. Records are kept
in this process's memory: a restart forgets them.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "JobCancelled",
    "JobFinished",
    "JobStatus",
    "JobsBusy",
    "TrainingJob",
    "TrainingJobs",
    "Work",
]

JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]
_UNFINISHED = ("queued", "running")


class JobsBusy(RuntimeError):
    """Too many jobs are queued or running."""


class JobFinished(RuntimeError):
    """The job ended already: nothing to cancel."""


class JobCancelled(Exception):
    """Raised by a job's work that saw its cancel request."""


def _now() -> datetime:
    return datetime.now(UTC)


def _error_text(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)  # a Ray task's error wraps the task's own
    inner = cause if isinstance(cause, BaseException) else exc
    text = str(inner).strip() or type(inner).__name__
    return f"{type(inner).__name__}: {text}"[:2000]


class TrainingJob:
    """One job: its record and what its work uses to report progress and see a cancel."""

    def __init__(self, record: dict[str, Any], lock: threading.Lock) -> None:
        self.record = record
        self.cancelled = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._hooks: list[Callable[[], None]] = []
        self._lock = lock

    @property
    def id(self) -> str:
        job_id: str = self.record["id"]
        return job_id

    def progress(self, done: int, total: int) -> None:
        """``done`` of ``total`` units; callable from a worker thread."""
        with self._lock:
            unit = self.record["progress"]["unit"]
            self.record["progress"] = {"done": int(done), "total": int(total), "unit": unit}

    def check(self) -> None:
        """``JobCancelled`` once a cancel was asked for; callable from a worker thread (the
        flag is set once, so reading it there is safe)."""
        if self.cancelled.is_set():
            raise JobCancelled(f"training job {self.id} was cancelled")

    def on_cancel(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` on a cancel request (at once if one came already)."""
        if self.cancelled.is_set():
            hook()
        else:
            self._hooks.append(hook)

    def request_cancel(self) -> None:
        if self.cancelled.is_set():
            return
        self.cancelled.set()
        for hook in self._hooks:
            hook()

    def update(self, **fields: Any) -> None:
        with self._lock:
            self.record.update(fields)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {**self.record, "progress": dict(self.record["progress"])}


Work = Callable[[TrainingJob], Awaitable[dict[str, Any]]]


class TrainingJobs:
    """The jobs of one kind: ids ``{prefix}-`` and 12 hex digits, progress counted in ``unit``."""

    def __init__(self, prefix: str, unit: str, max_unfinished: int) -> None:
        self.prefix = prefix
        self.unit = unit
        self.max_unfinished = max_unfinished
        self._jobs: dict[str, TrainingJob] = {}
        self._slot = asyncio.Semaphore(1)
        # Progress is written by worker threads and read by the event loop.
        self._lock = threading.Lock()

    def unfinished(self) -> int:
        return sum(1 for j in self._jobs.values() if j.record["status"] in _UNFINISHED)

    def submit(self, request: dict[str, Any], total: int, work: Work) -> dict[str, Any]:
        """Queue ``work``; the new job's record. ``JobsBusy`` when too many are unfinished."""
        if self.unfinished() >= self.max_unfinished:
            raise JobsBusy(
                f"{self.max_unfinished} training jobs are queued or running; retry later"
            )
        job = TrainingJob(
            {
                "id": f"{self.prefix}-{uuid.uuid4().hex[:12]}",
                "status": "queued",
                "created": _now(),
                "started": None,
                "finished": None,
                "error": None,
                "progress": {"done": 0, "total": total, "unit": self.unit},
                "request": request,
                "result": None,
            },
            self._lock,
        )
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, work))
        return job.snapshot()

    def get(self, job_id: str) -> dict[str, Any]:
        """A job's record; ``KeyError`` for an unknown id."""
        return self._jobs[job_id].snapshot()

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job and wait until it stopped; its record.

        ``KeyError`` for an unknown job, ``JobFinished`` for one that ended already. A job
        whose work got past its last check (saving its result) still ends ``done``.
        """
        job = self._jobs[job_id]
        if job.record["status"] not in _UNFINISHED:
            raise JobFinished(f"training job {job_id} is {job.record['status']}")
        job.request_cancel()
        if job.task is not None:
            await asyncio.gather(job.task, return_exceptions=True)
        return job.snapshot()

    async def shutdown(self) -> None:
        """Cancel every unfinished job (its hooks run) and wait for their tasks."""
        tasks = []
        for job in self._jobs.values():
            if job.record["status"] in _UNFINISHED:
                job.request_cancel()
            if job.task is not None and not job.task.done():
                job.task.cancel()
                tasks.append(job.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, job: TrainingJob, work: Work) -> None:
        try:
            if not await self._acquire(job):
                job.update(status="cancelled", finished=_now())
                return
        except asyncio.CancelledError:  # the server stops
            job.update(status="cancelled", finished=_now())
            raise
        try:
            job.update(status="running", started=_now())
            result = await work(job)
        except asyncio.CancelledError:
            job.update(status="cancelled", finished=_now())
            raise
        except Exception as exc:  # a job's failure is its record, not the server's
            if job.cancelled.is_set():
                job.update(status="cancelled", finished=_now())
            else:
                job.update(status="failed", finished=_now(), error=_error_text(exc))
            return
        finally:
            self._slot.release()
        job.update(status="done", finished=_now(), result=result)

    async def _acquire(self, job: TrainingJob) -> bool:
        """Wait for the slot; False (holding nothing) if the job is cancelled first."""
        waiting = asyncio.ensure_future(self._slot.acquire())
        stopped = asyncio.ensure_future(job.cancelled.wait())
        interrupted = True
        try:
            await asyncio.wait({waiting, stopped}, return_when=asyncio.FIRST_COMPLETED)
            interrupted = False
        finally:
            stopped.cancel()
            waiting.cancel()  # a no-op once acquired
            acquired = waiting.done() and not waiting.cancelled()
            if acquired and (interrupted or job.cancelled.is_set()):
                self._slot.release()
                acquired = False
        return acquired
