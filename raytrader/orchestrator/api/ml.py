"""ML models: training as a job, the registry's models, predictions and feature importance.

- ``POST /api/ml/train``: train a model on one symbol of a bundled data set, score it by purged
  walk-forward CV and save it to the registry as a new version; 202 with the job id.
- ``GET /api/ml/jobs/{id}``: status, progress (fits done of CV folds + 1) and, once done, the
  result: name, version, CV metrics per fold and on average.
- ``GET /api/ml/models``: every saved version's metadata (optionally of one name).
- ``POST /api/ml/predict``: a model's class probabilities over the latest bars of a symbol.
- ``GET /api/ml/feature-importance``: a model version's importance per feature.

Models live in the registry under the app's data directory. Training runs in a worker thread
(the event loop keeps serving), one at a time; at most ``MAX_UNFINISHED`` jobs wait (beyond:
429). Jobs are kept in this process's memory: a restart forgets them, not the saved models.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, field_validator

from raytrader.ml.features import FeatureConfig, build_features
from raytrader.ml.models import ModelKind, class_probabilities, make_model
from raytrader.ml.registry import ModelNotFoundError, ModelRecord, ModelRegistry
from raytrader.ml.training import LabelConfig, TrainSpec
from raytrader.orchestrator.api.common import (
    _STRICT,
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

router = APIRouter(
    prefix="/api/ml",
    tags=["ml"],
    responses={**ERRORS, 429: {"description": "Too many training jobs; retry later"}},
)

JOB_ID_PATTERN = r"^ml-[0-9a-f]{12}$"
MAX_UNFINISHED = 8
MAX_TRAIN_BARS = 50_000
MAX_PREDICT = 5_000
JobStatus = Literal["queued", "running", "done", "failed"]


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


ParamValue = Annotated[float, Field(ge=-1e6, le=1e6)] | bool | str | None


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


class PredictRequest(DataIn):
    model_config = examples({"name": "s01-logistic", "symbol": "S01", "limit": 5})

    name: Name
    version: int | None = Field(None, ge=1, le=1_000_000, description="None: the latest")
    limit: int = Field(100, ge=1, le=MAX_PREDICT, description="the latest this many bars")


# ---- responses -------------------------------------------------------------------------------


class Progress(BaseModel):
    done: int
    total: int
    unit: str = "fits"


class TrainJobOut(BaseModel):
    id: str
    status: JobStatus
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    error: str | None = None
    progress: Progress
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


def _now() -> datetime:
    return datetime.now(UTC)


class TrainJobs:
    """Training jobs of one API process: run one at a time in a worker thread."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self._slot = asyncio.Semaphore(1)
        self._tasks: set[asyncio.Task[None]] = set()
        # Progress is written by the worker thread and read by the event loop.
        self._lock = threading.Lock()

    def unfinished(self) -> int:
        return sum(1 for j in self.jobs.values() if j["status"] in ("queued", "running"))

    def submit(
        self, req: TrainRequest, frame: pd.DataFrame, registry: ModelRegistry
    ) -> dict[str, Any]:
        if self.unfinished() >= MAX_UNFINISHED:
            raise HTTPException(
                429, f"{MAX_UNFINISHED} training jobs are queued or running; retry later"
            )
        job: dict[str, Any] = {
            "id": f"ml-{uuid.uuid4().hex[:12]}",
            "status": "queued",
            "created": _now(),
            "started": None,
            "finished": None,
            "error": None,
            "progress": {"done": 0, "total": req.cv_splits + 1, "unit": "fits"},
            "request": req.model_dump(mode="json"),
            "result": None,
        }
        self.jobs[job["id"]] = job
        task = asyncio.create_task(self._run(job, req, frame, registry))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self.get(job["id"])

    def get(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            job = self.jobs[job_id]
            return {**job, "progress": dict(job["progress"])}

    async def _run(
        self, job: dict[str, Any], req: TrainRequest, frame: pd.DataFrame, registry: ModelRegistry
    ) -> None:
        async with self._slot:
            job.update(status="running", started=_now())
            try:
                result = await asyncio.to_thread(self._train, job, req, frame, registry)
            except Exception as exc:  # a job's failure is its record, not the server's
                job.update(status="failed", finished=_now(), error=f"{type(exc).__name__}: {exc}")
                return
            job.update(status="done", finished=_now(), result=result)

    def _train(
        self, job: dict[str, Any], req: TrainRequest, frame: pd.DataFrame, registry: ModelRegistry
    ) -> dict[str, Any]:
        return train_and_save(req, frame, registry, lambda d, t: self._progress(job, d, t))

    def _progress(self, job: dict[str, Any], done: int, total: int) -> None:
        with self._lock:
            job["progress"] = {"done": done, "total": total, "unit": "fits"}


def train_spec(req: TrainRequest) -> TrainSpec:
    """The core's training spec of a request."""
    return TrainSpec(
        kind=req.kind,
        params=dict(req.params),
        seed=req.seed,
        features=FeatureConfig.model_validate(req.features.model_dump()),
        labels=LabelConfig.model_validate(req.labels.model_dump()),
        cv_splits=req.cv_splits,
        embargo=req.embargo,
    )


def train_and_save(
    req: TrainRequest,
    frame: pd.DataFrame,
    registry: ModelRegistry,
    progress: Any = None,
) -> dict[str, Any]:
    """Train, save a new version, and the job's result."""
    from raytrader.ml.training import train

    result = train(frame, train_spec(req), symbol=req.symbol, progress=progress)
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
    }


def _jobs(request: Request) -> TrainJobs:
    jobs: TrainJobs | None = getattr(request.app.state, "ml_jobs", None)
    if jobs is None:
        jobs = request.app.state.ml_jobs = TrainJobs()
    return jobs


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
    job = _jobs(request).submit(req, frame, registry_of(request))
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
