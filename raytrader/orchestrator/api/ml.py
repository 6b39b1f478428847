"""ML models: training as a job, the registry's models, predictions and feature importance.

- ``POST /api/ml/train``: train a model on one symbol of a bundled data set, score it by purged
  walk-forward CV and save it to the registry as a new version; 202 with the job id. With a
  ``search`` section the model's parameters are searched first, each trial scored by the same
  CV on the sweep workers of the backtest jobs (Ray), and the best is trained and saved with
  the search in its metadata.
- ``GET /api/ml/jobs/{id}``: status, progress (fits done: the search's CV folds, then the CV
  folds + 1) and, once done, the result: name, version, CV metrics per fold and on average.
- ``DELETE /api/ml/jobs/{id}``: cancel a queued or running job (a training stops after its
  current fit, a search after its running trials); 409 once it finished.
- ``GET /api/ml/models``: every saved version's metadata (optionally of one name).
- ``POST /api/ml/predict``: a model's class probabilities over the latest bars of a symbol.
- ``GET /api/ml/feature-importance``: a model version's importance per feature.

Models live in the registry under the app's data directory. Training runs in a worker thread
(the event loop keeps serving), one at a time; at most ``MAX_UNFINISHED`` jobs wait (beyond:
429). Jobs are kept in this process's memory: a restart forgets them, not the saved models.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, field_validator

from raytrader.ml.features import FeatureConfig, build_features
from raytrader.ml.models import ModelKind, class_probabilities, make_model
from raytrader.ml.registry import ModelNotFoundError, ModelRecord, ModelRegistry
from raytrader.ml.search import SearchResult
from raytrader.ml.search_spec import ModelSearchSpec
from raytrader.ml.training import LabelConfig, TradingSpec, TrainSpec
from raytrader.orchestrator.api.common import (
    _STRICT,
    JobProgress,
    Name,
    Strict,
    Symbol,
    Timeframe,
    UtcTime,
    examples,
    field_error,
    finite,
)
from raytrader.orchestrator.api.data import Source, bundled_frames, select
from raytrader.orchestrator.api.deps import ERRORS
from raytrader.orchestrator.training_jobs import (
    JobFinished,
    JobsBusy,
    JobStatus,
    TrainingJob,
    TrainingJobs,
    Work,
)

router = APIRouter(
    prefix="/api/ml",
    tags=["ml"],
    responses={**ERRORS, 429: {"description": "Too many training jobs; retry later"}},
)

JOB_ID_PATTERN = r"^ml-[0-9a-f]{12}$"
MAX_UNFINISHED = 8
MAX_TRAIN_BARS = 50_000
MAX_PREDICT = 5_000
MAX_SEARCH_TRIALS = 200


# ---- request models --------------------------------------------------------------------------


class FeaturesIn(FeatureConfig):
    model_config = _STRICT

    # JSON has arrays, not tuples.
    return_lags: tuple[int, ...] = Field((1, 5, 10, 20), strict=False, min_length=1, max_length=20)

    @field_validator("return_lags")
    @classmethod
    def _lag_bounds(cls, lags: tuple[int, ...]) -> tuple[int, ...]:
        if any(k > 1000 for k in lags):
            raise ValueError("return_lags must be at most 1000")
        return lags


class LabelsIn(LabelConfig):
    model_config = _STRICT


class TradingIn(TradingSpec):
    model_config = _STRICT


ParamValue = Annotated[float, Field(ge=-1e6, le=1e6)] | bool | str | None


class SearchIn(ModelSearchSpec):
    model_config = _STRICT

    top: int = Field(10, ge=1, le=100, description="best trials kept in the model's metadata")
    n_trials: int | None = Field(None, ge=1, le=MAX_SEARCH_TRIALS, description="random, optuna")


class DataIn(Strict):
    """One symbol's bars from a bundled data set."""

    source: Source = "universe_daily"
    symbol: Symbol = "S01"
    start: UtcTime | None = None
    end: UtcTime | None = None
    timeframe: Timeframe | None = None


class TrainRequest(DataIn):
    model_config = examples(
        {
            "name": "s01-logistic",
            "source": "universe_daily",
            "symbol": "S01",
            "kind": "logistic",
            "labels": {"horizon": 1},
            "cv_splits": 3,
        }
    )

    name: Name = Field(description="registry name; each training adds a version")
    kind: ModelKind = "xgboost"
    params: dict[Name, ParamValue] = Field(
        default_factory=dict, max_length=20, description="overrides of the kind's defaults"
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    features: FeaturesIn = Field(default_factory=FeaturesIn)
    labels: LabelsIn = Field(default_factory=LabelsIn)
    cv_splits: int = Field(5, ge=2, le=20)
    embargo: int = Field(0, ge=0, le=1000, description="bars dropped before each test fold")
    trading: TradingIn = Field(
        default_factory=TradingIn, description="the strategy the CV's sharpe scores"
    )
    search: SearchIn | None = Field(
        None, description="search these params first (on the sweep workers); save the best"
    )


class PredictRequest(DataIn):
    model_config = examples({"name": "s01-logistic", "symbol": "S01", "limit": 5})

    name: Name
    version: int | None = Field(None, ge=1, le=1_000_000, description="None: the latest")
    limit: int = Field(100, ge=1, le=MAX_PREDICT, description="the latest this many bars")


# ---- responses -------------------------------------------------------------------------------


class TrainJobOut(BaseModel):
    id: str
    status: JobStatus
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    error: str | None = None
    progress: JobProgress
    request: dict[str, Any]
    result: dict[str, Any] | None = None


class ModelOut(BaseModel):
    name: str
    version: int
    kind: str
    created_at: datetime
    symbol: str | None
    features: list[str]
    params: dict[str, Any]
    seed: int
    training_start: datetime | None
    training_end: datetime | None
    n_samples: int
    data_hash: str
    cv_metrics: dict[str, float | None]
    feature_config: dict[str, Any]
    label_config: dict[str, Any]
    library_versions: dict[str, str]
    search: dict[str, Any] | None = Field(
        None, description="the parameter search that chose params (method, objective, best)"
    )


class ModelsOut(BaseModel):
    models: list[ModelOut]


class PredictionOut(BaseModel):
    ts: datetime
    prediction: int = Field(description="the most probable label: -1 down, 0 flat, 1 up")
    probabilities: dict[str, float] = Field(description="per label")


class PredictOut(BaseModel):
    name: str
    version: int
    symbol: str
    training_end: datetime | None
    count: int
    predictions: list[PredictionOut]


class ImportanceOut(BaseModel):
    name: str
    version: int
    kind: str
    importance: dict[str, float] = Field(description="per feature, summing to 1, largest first")


# ---- jobs ------------------------------------------------------------------------------------


Searcher = Callable[[TrainSpec, pd.DataFrame, str, Callable[[int, int], None], asyncio.Event],
                    Awaitable[SearchResult]]  # fmt: skip


def _training(
    req: TrainRequest, frame: pd.DataFrame, registry: ModelRegistry, searcher: Searcher | None
) -> Work:
    """A job's work: the search on the sweep workers (``searcher``), if the request has one,
    then the training in a worker thread, stopping after the fit a cancel came in."""

    async def work(job: TrainingJob) -> dict[str, Any]:
        search = None
        if req.search is not None:
            if searcher is None:
                raise RuntimeError("this server runs no parameter searches")
            search = await searcher(train_spec(req), frame, job.id, job.progress, job.cancelled)

        def progress(done: int, total: int) -> None:
            job.progress(done, total)
            job.check()

        return await asyncio.to_thread(train_and_save, req, frame, registry, progress, search)

    return work


def train_spec(req: TrainRequest) -> TrainSpec:
    """The core's training spec of a request."""
    search = req.search
    return TrainSpec(
        kind=req.kind,
        params=dict(req.params),
        seed=req.seed,
        features=FeatureConfig.model_validate(req.features.model_dump()),
        labels=LabelConfig.model_validate(req.labels.model_dump()),
        cv_splits=req.cv_splits,
        embargo=req.embargo,
        trading=TradingSpec.model_validate(req.trading.model_dump()),
        search=None if search is None else ModelSearchSpec.model_validate(search.model_dump()),
    )


def train_and_save(
    req: TrainRequest,
    frame: pd.DataFrame,
    registry: ModelRegistry,
    progress: Any = None,
    search: SearchResult | None = None,
) -> dict[str, Any]:
    """Train (after ``search``, if the request has one), save a new version, the job's result."""
    from raytrader.ml.training import train

    result = train(frame, train_spec(req), req.symbol, progress, search)
    record = registry.save(req.name, result.model, result.info)
    folds = [
        {k: (int(v) if k == "fold" else finite(float(v))) for k, v in row.items()}
        for row in result.folds.to_dict(orient="records")
    ]
    return {
        "name": record.name,
        "version": record.version,
        "n_samples": record.n_samples,
        "training_start": record.training_start,
        "training_end": record.training_end,
        "cv_metrics": {k: finite(v) for k, v in record.cv_metrics.items()},
        "folds": folds,
        "params": record.params,
        "search": _search_out(record.search),
    }


def _search_out(search: dict[str, Any] | None) -> dict[str, Any] | None:
    """The search as a job's result shows it: what ran and the best, not every top trial."""
    if search is None:
        return None
    return {k: v for k, v in search.items() if k != "top"}


def _jobs(request: Request) -> TrainingJobs:
    jobs: TrainingJobs | None = getattr(request.app.state, "ml_jobs", None)
    if jobs is None:
        jobs = request.app.state.ml_jobs = TrainingJobs("ml", "fits", MAX_UNFINISHED)
    return jobs


def _searcher(request: Request) -> Searcher | None:
    backtests = getattr(request.app.state, "jobs", None)
    return None if backtests is None else _ray_searcher(backtests)


def _ray_searcher(backtests: Any) -> Searcher:
    """Searches on the sweep pool and store of the backtest jobs (one pool per process)."""

    async def search(
        spec: TrainSpec,
        frame: pd.DataFrame,
        job_id: str,
        progress: Callable[[int, int], None],
        cancel: asyncio.Event,
    ) -> SearchResult:
        from raytrader.orchestrator.ml_search import search_on_ray
        from raytrader.orchestrator.sweep_runner import SweepProgress

        pool = await backtests.pool()
        fits = spec.cv_splits

        def on_progress(p: SweepProgress) -> None:
            progress(p.done * fits, p.total * fits + fits + 1)

        return await search_on_ray(
            frame, spec, backtests.store, pool, search_id=job_id, on_progress=on_progress,
            cancel=cancel,
        )  # fmt: skip

    return search


def registry_of(request: Request) -> ModelRegistry:
    """The registry under the app's data directory."""
    return ModelRegistry(request.app.state.settings.data_dir / "models")


def load_frame(data: DataIn, loc: tuple[str, ...] = ("body",)) -> pd.DataFrame:
    """The request's bars; a 422 naming the symbol when the data set lacks it."""
    if data.start is not None and data.end is not None and data.end <= data.start:
        raise field_error((*loc, "end"), "end must be after start")
    try:
        return select(data.source, data.symbol, data.start, data.end, data.timeframe, loc)
    except KeyError:
        have = ", ".join(sorted(bundled_frames(data.source)))
        raise field_error(
            (*loc, "symbol"), f"unknown symbol {data.symbol!r} in {data.source} (have {have})"
        ) from None


def _model_out(r: ModelRecord) -> ModelOut:
    return ModelOut(
        **r.model_dump(exclude={"feature_importance", "cv_metrics"}),
        cv_metrics={k: finite(v) for k, v in r.cv_metrics.items()},
    )


def _not_found(exc: ModelNotFoundError) -> HTTPException:
    return HTTPException(404, str(exc))


# ---- routes ----------------------------------------------------------------------------------


@router.post("/train", status_code=202, response_model=TrainJobOut)
async def train_model(req: TrainRequest, request: Request) -> TrainJobOut:
    """Queue a training job; poll ``GET /api/ml/jobs/{id}`` for progress and the result."""
    try:
        make_model(req.kind, req.params, req.seed)
    except (ValueError, TypeError) as exc:
        raise field_error(("body", "params"), str(exc)) from None
    trials = 0
    if req.search is not None:
        try:
            space = req.search.check(req.kind, dict(req.params))
        except ValueError as exc:
            raise field_error(("body", "search"), str(exc)) from None
        trials = space.grid_size() if req.search.method == "grid" else req.search.n_trials or 0
        if trials > MAX_SEARCH_TRIALS:
            raise field_error(
                ("body", "search", "space"),
                f"the grid has {trials} points; at most {MAX_SEARCH_TRIALS} per search",
            )
    frame = await asyncio.to_thread(load_frame, req)
    if len(frame) > MAX_TRAIN_BARS:
        raise field_error(("body", "start"), f"at most {MAX_TRAIN_BARS} bars per training")
    # Enough labelled samples for the folds (train() would refuse fewer, later, in the job).
    usable = len(frame) - req.features.warmup - req.labels.horizon
    if usable < 10 * (req.cv_splits + 1):
        raise field_error(
            ("body", "symbol"),
            f"{len(frame)} bars leave {max(usable, 0)} samples after the features' warm-up "
            f"({req.features.warmup}) and the label horizon; {req.cv_splits} folds need "
            f"{10 * (req.cv_splits + 1)}",
        )
    total = (trials + 1) * req.cv_splits + 1  # the search's folds, the best's folds and fit
    work = _training(req, frame, registry_of(request), _searcher(request))
    try:
        job = _jobs(request).submit(req.model_dump(mode="json"), total, work)
    except JobsBusy as exc:
        raise HTTPException(429, str(exc)) from None
    return TrainJobOut.model_validate(job)


@router.get("/jobs/{job_id}", response_model=TrainJobOut)
async def train_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN, description="a training job id")],
    request: Request,
) -> TrainJobOut:
    """A training job: status, progress and, once done, the saved version and CV metrics."""
    try:
        return TrainJobOut.model_validate(_jobs(request).get(job_id))
    except KeyError:
        raise HTTPException(404, f"no training job {job_id!r}") from None


@router.delete("/jobs/{job_id}", response_model=TrainJobOut)
async def cancel_train_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN, description="a training job id")],
    request: Request,
) -> TrainJobOut:
    """Cancel a queued or running training job; answers once it stopped (409 if finished)."""
    try:
        return TrainJobOut.model_validate(await _jobs(request).cancel(job_id))
    except KeyError:
        raise HTTPException(404, f"no training job {job_id!r}") from None
    except JobFinished as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/models", response_model=ModelsOut)
async def models(
    request: Request,
    name: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")] = None,
) -> ModelsOut:
    """Every saved model version (of ``name`` only, if given), oldest first."""
    registry = registry_of(request)
    try:
        records = await asyncio.to_thread(registry.list, name)
    except ModelNotFoundError as exc:
        raise _not_found(exc) from None
    return ModelsOut(models=[_model_out(r) for r in records])


@router.post("/predict", response_model=PredictOut)
async def predict(req: PredictRequest, request: Request) -> PredictOut:
    """Class probabilities of a model version over the latest ``limit`` bars of a symbol."""
    registry = registry_of(request)

    def run() -> PredictOut:
        loaded = registry.load(req.name, req.version)
        record = loaded.record
        frame = load_frame(req)
        cfg = FeatureConfig.model_validate(record.feature_config)
        X = build_features(frame, cfg)[list(record.features)].dropna().iloc[-req.limit :]
        proba = class_probabilities(loaded.model, X) if len(X) else pd.DataFrame()
        labels = [int(c) for c in proba.columns]
        values = proba.to_numpy(dtype=np.float64)
        out = [
            PredictionOut(
                ts=ts.to_pydatetime(),
                prediction=labels[int(np.argmax(row))],
                probabilities={str(c): float(p) for c, p in zip(labels, row, strict=True)},
            )
            for ts, row in zip(X.index, values, strict=True)
        ]
        return PredictOut(
            name=record.name,
            version=record.version,
            symbol=req.symbol,
            training_end=record.training_end,
            count=len(out),
            predictions=out,
        )

    try:
        return await asyncio.to_thread(run)
    except ModelNotFoundError as exc:
        raise _not_found(exc) from None


@router.get("/feature-importance", response_model=ImportanceOut)
async def feature_importance(
    request: Request,
    name: Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")],
    version: Annotated[int | None, Query(ge=1, le=1_000_000)] = None,
) -> ImportanceOut:
    """Importance per feature of a model version (the latest if none is given)."""
    registry = registry_of(request)
    try:
        record = await asyncio.to_thread(registry.metadata, name, version)
    except ModelNotFoundError as exc:
        raise _not_found(exc) from None
    ranked = sorted(record.feature_importance.items(), key=lambda kv: -kv[1])
    return ImportanceOut(
        name=record.name,
        version=record.version,
        kind=record.kind,
        importance={k: float(v) for k, v in ranked},
    )
