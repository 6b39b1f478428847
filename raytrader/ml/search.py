"""Hyperparameter search of a model: trials are parameter sets scored by purged walk-forward CV.

The same pieces serve the sweep runner on Ray and a search in this process: the search space
and proposers of sweeps (grid, seeded random, Optuna), ``CVTrials`` as the trial kind the
sweep workers run (the dataset is built once per worker, each trial only fits), and the ranked
table. Models fit single-threaded with a fixed seed, so a trial scores the same wherever it
runs: a grid or random search gives the same ranking on Ray as here.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict

from raytrader.backtesting.proposers import make_proposer
from raytrader.backtesting.search_space import Dimension, SearchSpace, trial_key
from raytrader.backtesting.sweep_config import SearchSpec
from raytrader.backtesting.sweep_report import best_record, json_safe, ranked_table
from raytrader.ml.search_spec import ModelSearchSpec
from raytrader.ml.training import (
    CV_METRICS,
    Dataset,
    TrainSpec,
    cross_validate,
    make_dataset,
    mean_metrics,
)

__all__ = [
    "CVTrialRunner",
    "CVTrials",
    "MLSearchPlan",
    "SearchResult",
    "frame_hash",
    "search_local",
]


class CVTrialRunner:
    """Scores parameter sets of one training spec on one frame (the dataset built once)."""

    def __init__(self, frame: pd.DataFrame, spec: TrainSpec) -> None:
        self.spec = spec.model_copy(update={"search": None})
        self.dataset: Dataset = make_dataset(frame, spec.features, spec.labels)

    def evaluate(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The trial's record: key, params, the mean CV metrics and wall seconds."""
        t0 = time.perf_counter()
        spec = self.spec.model_copy(update={"params": {**self.spec.params, **params}})
        folds = cross_validate(self.dataset, spec)
        return {
            "key": trial_key(params),
            "params": dict(params),
            "metrics": mean_metrics(folds),
            "engine": "cv",
            "seconds": time.perf_counter() - t0,
        }


@dataclass(frozen=True)
class CVTrials:
    """The trial kind sweep workers run for a model search (hashable: the spec as JSON)."""

    spec_json: str

    def make_runner(self, data: Any) -> CVTrialRunner:
        return CVTrialRunner(data, TrainSpec.model_validate_json(self.spec_json))


def frame_hash(frame: pd.DataFrame) -> str:
    """A short digest of the bars (a search's id changes with its data)."""
    values = pd.util.hash_pandas_object(frame, index=True).to_numpy()
    return hashlib.sha1(values.tobytes(), usedforsecurity=False).hexdigest()[:16]


class MLSearchPlan(BaseModel):
    """A model search as the sweep runner reads it: what is searched and on which data."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    name: str = "ml-search"
    symbol: str | None = None
    data_hash: str
    spec: TrainSpec  # its search's workers and chunk size are scheduling, kept out of the id
    workers: int | None = None
    chunk_size: int | None = None

    @classmethod
    def of(
        cls, frame: pd.DataFrame, spec: TrainSpec, symbol: str | None = None, name: str = "ml"
    ) -> MLSearchPlan:
        s = _search(spec)
        scheduling = {"workers": None, "chunk_size": None}
        kept = spec.model_copy(update={"search": s.model_copy(update=scheduling)})
        return cls(
            name=name,
            symbol=symbol,
            data_hash=frame_hash(frame),
            spec=kept,
            workers=s.workers,
            chunk_size=s.chunk_size,
        )

    @property
    def space(self) -> dict[str, Dimension]:
        return _search(self.spec).space

    @property
    def search(self) -> SearchSpec:
        return _search(self.spec).search

    @property
    def objective(self) -> str:
        return _search(self.spec).objective

    @property
    def direction(self) -> Literal["maximize", "minimize"]:
        return _search(self.spec).direction

    def search_space(self) -> SearchSpace:
        return _search(self.spec).check(self.spec.kind, self.spec.params)

    def trials(self) -> CVTrials:
        return CVTrials(self.spec.model_dump_json())


def _search(spec: TrainSpec) -> ModelSearchSpec:
    if spec.search is None:
        raise ValueError("the training spec has no search section")
    return spec.search


@dataclass(frozen=True)
class SearchResult:
    """A finished search: trials ranked best first, the best, and how it ran."""

    spec: ModelSearchSpec
    table: pd.DataFrame
    best: dict[str, Any] | None
    fits: int  # CV fits the search made (trials x folds)
    summary: dict[str, Any] = field(default_factory=dict)

    def best_params(self, spec: TrainSpec) -> dict[str, Any]:
        """``spec``'s fixed params with the best trial's searched ones."""
        if self.best is None:
            raise ValueError(f"no trial of the search has a finite {self.spec.objective}")
        return {**spec.params, **self.best["params"]}

    def metadata(self, top: int) -> dict[str, Any]:
        """What the saved model records of the search that chose its parameters."""
        names = list(self.spec.space)
        columns = ["rank", *names, *CV_METRICS]
        rows = self.table[[c for c in columns if c in self.table]].head(top)
        out = {
            "method": self.spec.method,
            "seed": self.spec.seed,
            "objective": self.spec.objective,
            "direction": self.spec.direction,
            "space": {n: d.model_dump(exclude_none=True) for n, d in self.spec.space.items()},
            "trials": len(self.table),
            "best": self.best,
            "top": rows.to_dict(orient="records"),
            **self.summary,
        }
        safe: dict[str, Any] = json_safe(out)
        return safe


def result_of(
    spec: TrainSpec, records: list[dict[str, Any]], summary: dict[str, Any]
) -> SearchResult:
    """Rank trial records into a ``SearchResult``."""
    s = _search(spec)
    names = list(s.space)
    table = ranked_table(records, names, s.objective, s.direction)
    best = best_record(table, names, s.objective)
    return SearchResult(s, table, best, len(records) * spec.cv_splits, summary)


def search_local(
    frame: pd.DataFrame,
    spec: TrainSpec,
    symbol: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    extra_fits: int = 0,
) -> SearchResult:
    """Run the search in this process, trial after trial (the sweep runner runs the same
    trials on Ray). ``progress(done, total)`` counts CV fits, ``extra_fits`` more in the
    total (the final training's)."""
    plan = MLSearchPlan.of(frame, spec, symbol)
    s = _search(spec)
    space = plan.search_space()
    proposer = make_proposer(space, s.method, s.n_trials, s.seed, s.objective, s.direction)
    runner = plan.trials().make_runner(frame)
    total = proposer.total * spec.cv_splits + extra_fits
    records: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    while batch := proposer.next_batch(1):  # one at a time: Optuna learns from each
        done = [runner.evaluate(p) for p in batch]
        proposer.tell(done)
        records.extend(done)
        if progress is not None:
            progress(len(records) * spec.cv_splits, total)
    return result_of(spec, records, {"ran_on": "local", "seconds": time.perf_counter() - t0})
