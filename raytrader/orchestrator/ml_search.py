"""A model's hyperparameter search on Ray: the sweep runner and its worker pool run the trials.

The frame goes into the object store once; each worker builds the dataset once and scores the
parameter sets of its chunks by purged walk-forward CV. Trial records stream into the state
store like a sweep's (``sweep-trials:{id}``), so a search started again with the same id runs
only the trials it lacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pandas as pd

from raytrader.ml.search import MLSearchPlan, SearchResult, result_of
from raytrader.ml.training import TrainSpec
from raytrader.orchestrator.sweep_pool import SweepPool
from raytrader.orchestrator.sweep_runner import (
    SWEEPS,
    SweepProgress,
    SweepRunner,
    default_sweep_id,
    trials_namespace,
)
from raytrader.state.stores import StateStore

__all__ = ["default_search_id", "forget_search", "search_on_ray"]


def default_search_id(
    frame: pd.DataFrame, spec: TrainSpec, symbol: str | None = None, name: str = "ml"
) -> str:
    """The id of a search when none is given: ``name``, the spec and the bars' digest."""
    return f"ml-{default_sweep_id(MLSearchPlan.of(frame, spec, symbol, name))}"


async def forget_search(store: StateStore, search_id: str) -> int:
    """Delete a search's status and trial records (a fresh start); the trials deleted."""
    trials = await store.list_records(trials_namespace(search_id))
    for key in trials:
        await store.delete_record(trials_namespace(search_id), key)
    await store.delete_record(SWEEPS, search_id)
    return len(trials)


async def search_on_ray(
    frame: pd.DataFrame,
    spec: TrainSpec,
    store: StateStore,
    pool: SweepPool,
    *,
    symbol: str | None = None,
    name: str = "ml",
    search_id: str | None = None,
    on_progress: Callable[[SweepProgress], None] | None = None,
    cancel: asyncio.Event | None = None,
) -> SearchResult:
    """Run ``spec.search`` on the pool; the trials ranked (raises ``SweepCancelled``).

    ``search_id`` defaults to one derived from ``name``, the spec and the bars, so the same
    search started again on the same store runs only the trials it has not recorded.
    """
    plan = MLSearchPlan.of(frame, spec, symbol, name)
    runner = SweepRunner(
        plan,
        store,
        pool,
        sweep_id=search_id or default_search_id(frame, spec, symbol, name),
        data=frame,
        trials=plan.trials(),
        on_progress=on_progress,
        cancel=cancel,
    )
    outcome = await runner.run()
    records = await store.list_records(trials_namespace(outcome.sweep_id))
    summary = {
        "ran_on": "ray",
        "sweep_id": outcome.sweep_id,
        "workers": outcome.summary.get("workers"),
        "ran": outcome.summary.get("ran"),
        "resumed": outcome.summary.get("resumed"),
        "seconds": outcome.summary.get("seconds"),
    }
    return result_of(spec, list(records.values()), summary)
