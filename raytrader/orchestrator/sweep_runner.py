"""Run a sweep on Ray: data in the object store once, chunks of trials to a worker pool,
records streamed into the state store as they finish, resumable by sweep id.

Store layout: namespace ``sweeps`` holds one record per sweep (config, status, progress,
best); ``sweep-trials:{id}`` holds one record per finished trial, keyed by ``trial_key``. A
sweep started again with the same id (by default derived from its config) runs only the
trials that are not recorded yet.

The config is a ``SweepConfig`` (backtests of an agent's parameters) or any ``SweepPlan``
that brings its own trial kind (the ML model search: a model's parameters scored by
cross-validation).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Literal, Protocol, TypeVar

import pandas as pd
import ray
import structlog

from raytrader.backtesting.proposers import Proposer, make_proposer, objective_value
from raytrader.backtesting.search_space import Dimension, SearchSpace
from raytrader.backtesting.sweep_config import SearchSpec, SweepConfig
from raytrader.backtesting.sweep_report import best_record, json_safe, ranked_table
from raytrader.backtesting.trials import TrialSetup
from raytrader.data.market_data import MarketData
from raytrader.orchestrator.sweep_pool import SweepPool, TrialKind
from raytrader.state.stores import StateStore

log = structlog.get_logger(__name__)

SWEEPS = "sweeps"
_IN_FLIGHT_PER_WORKER = 2  # one running, one queued: no idle gap between chunks
_CHUNK_SECONDS = 0.5


class SweepPlan(Protocol):
    """What the runner reads of its config (``SweepConfig`` has it all)."""

    @property
    def name(self) -> str: ...
    @property
    def space(self) -> Mapping[str, Dimension]: ...
    @property
    def search(self) -> SearchSpec: ...
    @property
    def objective(self) -> str: ...
    @property
    def direction(self) -> Literal["maximize", "minimize"]: ...
    @property
    def workers(self) -> int | None: ...
    @property
    def chunk_size(self) -> int | None: ...

    def search_space(self) -> SearchSpace: ...
    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...
    def model_dump_json(self, *, exclude: set[str] | None = ...) -> str: ...


PlanT = TypeVar("PlanT", bound=SweepPlan)


def trials_namespace(sweep_id: str) -> str:
    return f"sweep-trials:{sweep_id}"


def config_digest(config: SweepPlan) -> str:
    """What identifies the trials of a config: everything but how they are scheduled."""
    text = config.model_dump_json(exclude={"workers", "chunk_size", "name"})
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:10]


def default_sweep_id(config: SweepPlan) -> str:
    return f"{config.name}-{config_digest(config)}"


class SweepConflict(ValueError):
    """A sweep with this id exists and was made from another config."""


class SweepCancelled(Exception):
    pass


@dataclass
class SweepProgress:
    sweep_id: str
    done: int
    total: int
    resumed: int  # trials found recorded when the sweep started
    elapsed: float
    best: dict[str, Any] | None

    @property
    def trials_per_s(self) -> float:
        ran = self.done - self.resumed
        return ran / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        rate = self.trials_per_s
        return (self.total - self.done) / rate if rate > 0 else None


@dataclass
class SweepOutcome(Generic[PlanT]):
    sweep_id: str
    config: PlanT
    table: pd.DataFrame
    best: dict[str, Any] | None
    summary: dict[str, Any] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def trial_setup(config: SweepConfig) -> TrialSetup:
    return TrialSetup(
        agent=config.agent,
        initial_cash=config.initial_cash,
        broker=config.broker,
        portfolio=config.portfolio,
        periods_per_year=config.periods_per_year,
        engine=config.engine,
    )


def _chunk_size(config: SweepPlan, left: int, workers: int, trial_s: float | None) -> int:
    """Trials in the next chunk: ``chunk_size`` if set, else guided by what is left.

    Chunks shrink as the sweep nears its end (a share of the trials left per worker), so the
    workers finish together; they take about ``_CHUNK_SECONDS`` at the trials' measured pace
    (4 trials before any was measured), which bounds the latency of progress and of a cancel.
    Optuna's are smaller still, so TPE learns from answers as they come.
    """
    if config.chunk_size is not None:
        return config.chunk_size
    cap = 8 if config.search.method == "optuna" else 256
    cap = min(cap, 4 if trial_s is None else max(1, int(_CHUNK_SECONDS / max(trial_s, 1e-6))))
    return max(1, min(cap, left // (workers * 3)))


class SweepRunner(Generic[PlanT]):
    """Runs one sweep; ``run`` returns the ranked outcome (or raises ``SweepCancelled``).

    A config other than a ``SweepConfig`` brings its ``trials`` (what the workers run) and
    its ``data`` (any picklable object its trial kind reads).
    """

    def __init__(
        self,
        config: PlanT,
        store: StateStore,
        pool: SweepPool,
        *,
        sweep_id: str | None = None,
        data: MarketData | Any | None = None,
        on_progress: Callable[[SweepProgress], None] | None = None,
        cancel: asyncio.Event | None = None,
        trials: TrialKind | None = None,
    ) -> None:
        if not isinstance(config, SweepConfig) and (trials is None or data is None):
            raise TypeError(f"a {type(config).__name__} sweep needs its trials and data")
        self.trials = trials
        self.config = config
        self.store = store
        self.pool = pool
        self.sweep_id = sweep_id or default_sweep_id(config)
        self.data = data
        self.on_progress = on_progress
        self.cancel = cancel or asyncio.Event()
        self.names = list(config.space)
        self._best: dict[str, Any] | None = None

    async def _load_done(self) -> dict[str, dict[str, Any]]:
        digest = config_digest(self.config)
        existing = await self.store.get_record(SWEEPS, self.sweep_id)
        if existing is not None and existing.get("digest") != digest:
            raise SweepConflict(
                f"sweep {self.sweep_id!r} exists with another config; pick another id "
                "or delete it first"
            )
        return await self.store.list_records(trials_namespace(self.sweep_id))

    async def _put_status(self, status: str, **extra: Any) -> None:
        record = await self.store.get_record(SWEEPS, self.sweep_id) or {
            "id": self.sweep_id,
            "name": self.config.name,
            "digest": config_digest(self.config),
            "config": self.config.model_dump(mode="json"),
            "created": _now(),
        }
        record.update(status=status, updated=_now(), **extra)
        await self.store.put_record(SWEEPS, self.sweep_id, json_safe(record))

    def _update_best(self, records: list[dict[str, Any]]) -> None:
        sign = 1.0 if self.config.direction == "maximize" else -1.0
        for rec in records:
            value = objective_value(rec, self.config.objective)
            if value is None:
                continue
            if self._best is None or sign * value > sign * self._best["value"]:
                self._best = {
                    "key": rec["key"],
                    "params": {n: rec["params"][n] for n in self.names},
                    "objective": self.config.objective,
                    "value": value,
                }

    async def run(self) -> SweepOutcome[PlanT]:
        cfg = self.config
        done = await self._load_done()
        space = cfg.search_space()
        proposer: Proposer = make_proposer(
            space, cfg.search.method, cfg.search.n_trials, cfg.search.seed, cfg.objective,
            cfg.direction,
        )  # fmt: skip
        proposer.resume(done)
        resumed = len(done)
        self._update_best(list(done.values()))
        total = max(proposer.total, resumed)
        await self._put_status("running", done=resumed, total=total, best=self._best)
        log.info("sweep started", sweep=self.sweep_id, total=total, resumed=resumed)

        data = self.data
        if data is None and isinstance(cfg, SweepConfig):
            data = cfg.data.load()
        data_ref = [ray.put(data)]  # once; every worker reads the same object
        del data
        setup: Hashable | None = self.trials
        if setup is None and isinstance(cfg, SweepConfig):
            setup = trial_setup(cfg)
        workers = self.pool.workers[: cfg.workers or self.pool.size]
        submitted = chunks = 0
        t0 = time.perf_counter()
        pending: dict[asyncio.Future[Any], int] = {}  # -> worker index
        busy = [0] * len(workers)
        n_done = resumed
        trial_seconds = 0.0  # inside the trials; the rest of the workers' time is overhead
        last_status = 0.0

        def progress() -> SweepProgress:
            return SweepProgress(
                self.sweep_id, n_done, total, resumed, time.perf_counter() - t0, self._best
            )

        cancelled = asyncio.ensure_future(self.cancel.wait())
        stopping = False
        try:
            while True:
                for w, worker in enumerate(workers):
                    while not stopping and busy[w] < _IN_FLIGHT_PER_WORKER:
                        left = total - resumed - submitted
                        mean_s = trial_seconds / (n_done - resumed) if n_done > resumed else None
                        batch = proposer.next_batch(_chunk_size(cfg, left, len(workers), mean_s))
                        if not batch:
                            break
                        submitted += len(batch)
                        ref = worker.run.remote(data_ref, setup, batch)
                        pending[asyncio.ensure_future(_await(ref))] = w
                        busy[w] += 1
                        chunks += 1
                if not pending:
                    break
                finished, _ = await asyncio.wait(
                    [*pending] if stopping else [*pending, cancelled],
                    return_when=asyncio.FIRST_COMPLETED,
                )
                # Cancelling: submit nothing more, but record the chunks already running (they
                # are short by design; cancelling Ray actor tasks would stall the workers).
                stopping = stopping or self.cancel.is_set()
                for fut in finished:
                    if fut not in pending:
                        continue
                    busy[pending.pop(fut)] -= 1
                    records: list[dict[str, Any]] = fut.result()
                    await self.store.put_records(
                        trials_namespace(self.sweep_id), {r["key"]: r for r in records}
                    )
                    proposer.tell(records)
                    self._update_best(records)
                    n_done += len(records)
                    trial_seconds += sum(r["seconds"] for r in records)
                    total = max(total, n_done)
                if time.perf_counter() - last_status > 1.0:
                    last_status = time.perf_counter()
                    await self._put_status("running", done=n_done, total=total, best=self._best)
                if self.on_progress is not None:
                    self.on_progress(progress())
        except BaseException as exc:
            # Chunks still running finish on their own; their records are not kept.
            for fut in pending:
                fut.cancel()
            await self._put_status(
                "failed", done=n_done, total=total, best=self._best, error=str(exc)[:2000]
            )
            raise
        finally:
            cancelled.cancel()
        if stopping:
            await self._put_status("cancelled", done=n_done, total=total, best=self._best)
            raise SweepCancelled(self.sweep_id)

        stored = await self.store.list_records(trials_namespace(self.sweep_id))
        table = ranked_table(stored.values(), self.names, cfg.objective, cfg.direction)
        best = best_record(table, self.names, cfg.objective)
        elapsed = time.perf_counter() - t0
        ran = n_done - resumed
        summary = {
            "id": self.sweep_id,
            "trials": len(table),
            "ran": ran,
            "resumed": resumed,
            "skipped_by_schema": space.skipped,
            "seconds": elapsed,
            "trials_per_s": ran / elapsed if elapsed > 0 else None,
            "workers": len(workers),
            "chunks": chunks,
            # Worker time not spent in a trial (dispatch, transfer, idling), per trial run.
            "overhead_ms_per_trial": (
                max(0.0, elapsed * len(workers) - trial_seconds) / ran * 1e3 if ran else None
            ),
            "engines": _counts(table, "engine"),
            "nodes": _counts(table, "node"),
        }
        await self._put_status(
            "done", done=len(table), total=len(table), best=best, summary=summary
        )
        log.info("sweep done", sweep=self.sweep_id, trials=len(table), seconds=round(elapsed, 2))
        return SweepOutcome(self.sweep_id, cfg, table, best, summary)


async def _await(ref: ray.ObjectRef[Any]) -> Any:
    return await ref


def _counts(table: pd.DataFrame, column: str) -> dict[str, int]:
    if column not in table:
        return {}
    return {str(k): int(v) for k, v in table[column].value_counts().items()}
