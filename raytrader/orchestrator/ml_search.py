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
    SweepProgress,
    SweepRunner,
    default_sweep_id,
    trials_namespace,
)
from raytrader.state.stores import StateStore

__all__ = ["search_on_ray"]


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
    """Run ``spec.search`` on the pool; the trials ranked (raises ``SweepCancelled``)."""
    plan = MLSearchPlan.of(frame, spec, symbol, name)
    runner = SweepRunner(
        plan,
        store,
        pool,
        sweep_id=search_id or f"ml-{default_sweep_id(plan)}",
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
        "seconds": outcome.summary.get("seconds"),
    }
    return result_of(spec, list(records.values()), summary)
