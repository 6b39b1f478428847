"""Backtests as jobs: a single backtest, or a parameter sweep / walk-forward, run in the
background; progress, results and performance read by job id.

- ``POST /api/backtest/run``: one backtest (agents, data, costs); 202 with the job id.
- ``POST /api/backtest/optimize``: a grid, random or Optuna sweep of one agent's parameters,
  or a walk-forward when ``walk_forward`` is given; 202 with the job id.
- ``GET /api/backtest/jobs/{id}``: status and progress (done, total, best so far).
- ``GET /api/backtest/results/{id}``: status, progress, the config and, once done, the
  results: metrics and a thinned equity curve (run); the top ranked trials, best and summary
  (sweep); windows, out-of-sample metrics and equity, summary (walk-forward).
- ``GET /api/backtest/performance/{id}``: the metrics of the run, of a sweep's best trial, or
  out-of-sample for a walk-forward; 409 until the job is done.
- ``GET /api/backtest/report/{id}``: a finished job as one self-contained HTML page.
- ``POST /api/backtest/cancel/{id}``: cancel a queued or running job (a running sweep keeps
  the trials it finished); answers once it stopped; 409 for a finished job.

Specs are checked before a job is queued: an unknown agent, a parameter out of its schema's
bounds, an empty grid (``fast >= slow`` everywhere for ``sma_cross``), an unknown objective,
unloadable data or a walk-forward the data is too short for is a 422 naming the field. Jobs
submitted here are bounded: at most ``MAX_CELLS`` bars x symbols of data and ``MAX_TRIALS``
trials (over all windows); data comes from the bundled sets or the synthetic generator, never
from the server's files. At most two backtests and one sweep run at once; later jobs queue,
and beyond 32 unfinished jobs of a kind a submission is a 429.
"""

from __future__ import annotations

import asyncio
import math
from datetime import datetime
from typing import Annotated, Any, Literal, Self

import pandas as pd
import ray
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from raytrader.agents import registry
from raytrader.agents.base import Agent
from raytrader.backtesting.config import AgentSpec, BacktestConfig
from raytrader.backtesting.fast_path import unsupported_reason
from raytrader.backtesting.html_report import backtest_html, sweep_html
from raytrader.backtesting.runner import run_backtest
from raytrader.backtesting.search_space import Dimension, SearchSpace
from raytrader.backtesting.sweep_config import OBJECTIVES, SearchSpec, SweepConfig
from raytrader.backtesting.sweep_report import ranked_table
from raytrader.backtesting.walk_forward_windows import WalkForwardSpec, windows
from raytrader.data.market_data import MarketData
from raytrader.data.spec import DataSpec, SyntheticSpec
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.orchestrator.api.common import (
    BrokerIn,
    Name,
    PortfolioIn,
    Strict,
    Symbol,
    Timeframe,
    UtcTime,
    examples,
    field_error,
)
from raytrader.orchestrator.api.data import Source, bundled_frames
from raytrader.orchestrator.api.deps import ERRORS
from raytrader.orchestrator.api.strategy import agent_class, validate_params
from raytrader.orchestrator.jobs import (
    JOB_ID_PATTERN,
    JobFinished,
    JobManager,
    JobNotFound,
    JobsBusy,
)
from raytrader.orchestrator.sweep_runner import trials_namespace
from raytrader.portfolio.config import PortfolioConfig

router = APIRouter(prefix="/api/backtest", tags=["backtest"], responses=ERRORS)

MAX_CELLS = 1_000_000  # bars x symbols of a job's data
MAX_TRIALS = 10_000  # trials of an optimize job, over all its walk-forward windows
MAX_WINDOWS = 20
BUSY: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many jobs queued or running; retry later"}
}


def job_manager(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


Jobs = Annotated[JobManager, Depends(job_manager)]
JobId = Annotated[
    str, Path(pattern=JOB_ID_PATTERN, description="a backtest job id", examples=["bt-0123456789ab"])
]

# ---- requests -------------------------------------------------------------------------------


class SyntheticIn(Strict):
    kind: Literal["single", "universe"] = "single"
    n_bars: int = Field(5000, ge=10, le=MAX_CELLS)
    seed: int = Field(7, ge=0, le=2**32 - 1)
    freq: Timeframe = "1D"
    n_symbols: int = Field(30, ge=1, le=200, description="universe only")
    symbol: Symbol = Field("SYN", description="single only")

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.kind == "universe" and self.n_bars * self.n_symbols > MAX_CELLS:
            raise ValueError(
                f"n_bars x n_symbols is {self.n_bars * self.n_symbols}; at most {MAX_CELLS}"
            )
        return self


class DataIn(Strict):
    """A bundled data set or synthetic bars, then optional filters."""

    bundled: Source | None = None
    synthetic: SyntheticIn | None = None
    symbols: list[Symbol] | None = Field(None, min_length=1, max_length=200)
    start: UtcTime | None = None
    end: UtcTime | None = None
    timeframe: Timeframe | None = Field(None, description="aggregate the bars to this timeframe")

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.bundled is None) == (self.synthetic is None):
            raise ValueError("give exactly one data source: bundled or synthetic")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def spec(self) -> DataSpec:
        synthetic = None
        if self.synthetic is not None:
            synthetic = SyntheticSpec.model_validate(self.synthetic.model_dump())
        return DataSpec(
            bundled=self.bundled,
            synthetic=synthetic,
            symbols=self.symbols,
            start=self.start,
            end=self.end,
            timeframe=self.timeframe,
        )


class AgentIn(Strict):
    name: Name
    params: dict[str, Any] = Field(default_factory=dict, max_length=100)


Cash = Annotated[float, Field(gt=0, le=1e12, description="starting capital")]
PeriodsPerYear = Annotated[
    float | None,
    Field(gt=0, le=1e7, description="annualization; from the bar spacing when omitted"),
]


class RunRequest(Strict):
    model_config = examples(
        {
            "name": "sma-btc",
            "data": {"bundled": "btc_1h"},
            "agents": [{"name": "sma_cross", "params": {"fast": 10, "slow": 30}}],
            "broker": {"commission": {"bps": 10}},
            "portfolio": {"lot_size": 0.0001},
        },
        {
            "data": {"synthetic": {"n_bars": 2000, "seed": 3, "freq": "1h"}},
            "agents": [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}],
            "initial_cash": 50000,
        },
    )

    name: Name = "backtest"
    data: DataIn
    agents: list[AgentIn] = Field(min_length=1, max_length=10)
    initial_cash: Cash = 100_000.0
    broker: BrokerIn = BrokerIn()
    portfolio: PortfolioIn = PortfolioIn()
    periods_per_year: PeriodsPerYear = None


def _range_size(dim: Dimension) -> int | None:
    start = dim.start if dim.start is not None else dim.low
    stop = dim.stop if dim.stop is not None else dim.high
    if dim.step is None or start is None or stop is None:
        return None
    return math.floor((stop - start) / dim.step + 1e-9) + 1


Bound = Annotated[float | None, Field(ge=-1e9, le=1e9)]


class DimensionIn(Dimension):
    """A searched parameter: ``values``, ``start``/``stop``/``step``, or ``low``/``high``
    (``step`` makes an interval a grid)."""

    model_config = Strict.model_config

    values: list[int | float | bool | str] | None = Field(None, min_length=1, max_length=1000)
    start: Bound = None
    stop: Bound = None
    step: float | None = Field(None, gt=0, le=1e9)
    low: Bound = None
    high: Bound = None

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        size = _range_size(self)
        if size is not None and size > MAX_TRIALS:
            raise ValueError(f"this range has {size} values; a job runs at most {MAX_TRIALS}")
        return self


class SearchIn(SearchSpec):
    model_config = Strict.model_config

    n_trials: int | None = Field(None, ge=1, le=MAX_TRIALS, description="random and optuna")
    seed: int = Field(0, ge=0, le=2**32 - 1)


class WalkForwardIn(WalkForwardSpec):
    model_config = Strict.model_config

    n_windows: int = Field(5, ge=1, le=MAX_WINDOWS, description="train/test windows")
    train_bars: int | None = Field(None, ge=1, le=MAX_CELLS, description="rolling only")
    test_bars: int | None = Field(None, ge=1, le=MAX_CELLS)
    purge_bars: int = Field(0, ge=0, le=MAX_CELLS, description="left out between train and test")
    min_train_bars: int = Field(1, ge=1, le=MAX_CELLS)


Objective = Annotated[
    str,
    Field(
        description="the metric trials are ranked by", json_schema_extra={"enum": list(OBJECTIVES)}
    ),
]


class OptimizeRequest(Strict):
    model_config = examples(
        {
            "name": "sma-grid",
            "data": {"bundled": "btc_1h", "start": "2021-01-01", "end": "2021-07-01"},
            "agent": "sma_cross",
            "space": {
                "fast": {"start": 5, "stop": 25, "step": 5},
                "slow": {"values": [20, 40, 80]},
            },
            "objective": "sharpe",
            "broker": {"commission": {"bps": 10}},
            "portfolio": {"lot_size": 0.0001},
            "top": 5,
        },
        {
            "data": {"synthetic": {"n_bars": 3000, "seed": 2, "freq": "1h"}},
            "agent": "sma_cross",
            "space": {"fast": {"start": 5, "stop": 15, "step": 5}, "slow": {"values": [30, 60]}},
            "walk_forward": {"mode": "rolling", "n_windows": 2},
        },
    )

    name: Name = "sweep"
    data: DataIn
    agent: Name = Field(description="a registered agent")
    params: dict[str, Any] = Field(
        default_factory=dict, max_length=100, description="fixed parameters"
    )
    space: dict[Name, DimensionIn] = Field(
        min_length=1, max_length=10, description="searched parameters"
    )
    search: SearchIn = SearchIn()
    objective: Objective = "sharpe"
    direction: Literal["maximize", "minimize"] = "maximize"
    initial_cash: Cash = 100_000.0
    broker: BrokerIn = BrokerIn()
    portfolio: PortfolioIn = PortfolioIn()
    periods_per_year: PeriodsPerYear = None
    engine: Literal["auto", "fast", "event"] = Field(
        "auto", description="auto: the fast path where it reproduces the event engine"
    )
    workers: int | None = Field(None, ge=1, le=4096, description="parallel workers (all)")
    chunk_size: int | None = Field(None, ge=1, le=10_000, description="trials per task")
    walk_forward: WalkForwardIn | None = Field(None, description="walk forward instead")
    top: int = Field(20, ge=1, le=500, description="ranked trials kept in the results")

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise ValueError(f"objective {v!r} is not one of {', '.join(OBJECTIVES)}")
        return v


# ---- responses ------------------------------------------------------------------------------


class BestSoFar(BaseModel):
    key: str = Field(description="the trial's key")
    params: dict[str, Any] = Field(description="its searched parameters")
    objective: str
    value: float | None


class Progress(BaseModel):
    done: int
    total: int
    unit: Literal["runs", "trials"]
    best: BestSoFar | None = Field(None, description="optimize: the best trial so far")
    window: int | None = Field(None, description="walk-forward: the window being optimized")
    windows: int | None = None


class JobStatus(BaseModel):
    id: str
    kind: Literal["run", "optimize"]
    mode: Literal["backtest", "sweep", "walk_forward"]
    name: str
    status: Literal["queued", "running", "done", "failed", "cancelled"]
    created: datetime
    updated: datetime
    started: datetime | None
    finished: datetime | None
    error: str | None
    cancel_requested: bool
    resumed: int = Field(description="times a restarted server picked the job up again")
    progress: Progress


Metrics = dict[str, float | int | None]


class EquityPoint(BaseModel):
    ts: datetime
    equity: float | None


class RunResults(BaseModel):
    type: Literal["run"]
    metrics: Metrics
    bars: int
    symbols: list[str]
    start: datetime | None
    end: datetime | None
    final_equity: float | None
    trades: int = Field(description="closed trades")
    fills: int
    equity: list[EquityPoint] = Field(description="the equity curve, at most 2000 points")


class SweepResults(BaseModel):
    type: Literal["sweep"]
    objective: str
    direction: str
    trials: int
    best: BestSoFar | None
    best_params: dict[str, Any] | None = Field(description="fixed and searched parameters")
    best_metrics: Metrics | None
    top: list[dict[str, Any]] = Field(description="the best trials, ranked")
    summary: dict[str, Any]


class WindowOut(BaseModel):
    index: int
    train_start: datetime
    train_end: datetime
    test_start: datetime
    test_end: datetime
    params: dict[str, Any] = Field(description="the in-sample best")
    trials: int
    is_objective: float | None
    oos_objective: float | None
    is_cagr: float | None
    oos_cagr: float | None
    oos_sharpe: float | None
    oos_trades: int
    dsr: float | None = Field(description="deflated Sharpe of the in-sample pick")


class WalkForwardResults(BaseModel):
    type: Literal["walk_forward"]
    objective: str
    windows: list[WindowOut]
    oos_metrics: Metrics = Field(description="of the stitched out-of-sample equity")
    oos_equity: list[EquityPoint]
    summary: dict[str, Any]


class JobResults(JobStatus):
    config: dict[str, Any] = Field(description="the validated backtest or sweep config")
    results: RunResults | SweepResults | WalkForwardResults | None = Field(
        description="once the job is done"
    )


class AgentOut(BaseModel):
    name: str
    params: dict[str, Any]


class Performance(BaseModel):
    id: str
    kind: Literal["run", "optimize"]
    mode: Literal["backtest", "sweep", "walk_forward"]
    source: Literal["run", "best_trial", "out_of_sample"] = Field(
        description="the run itself, a sweep's best trial, or a walk-forward's OOS equity"
    )
    agents: list[AgentOut] | None = Field(description="None for a walk-forward (per window)")
    metrics: Metrics


# ---- checks: request -> config --------------------------------------------------------------


def _load(data: DataIn) -> MarketData:
    loc = ("body", "data")
    if data.bundled is not None and data.symbols is not None:
        have = bundled_frames(data.bundled)
        unknown = [s for s in data.symbols if s not in have]
        if unknown:
            raise field_error(
                (*loc, "symbols"),
                f"{unknown} are not in {data.bundled} (have {', '.join(sorted(have))})",
            )
    try:
        market = data.spec().load()
    except (ValueError, ArithmeticError, IndexError, KeyError) as exc:
        raise field_error(loc, f"cannot load the data: {exc}") from None
    if market.n_bars < 2:
        raise field_error(loc, f"the data has {market.n_bars} bars; a backtest needs 2 or more")
    cells = market.n_bars * len(market.symbols)
    if cells > MAX_CELLS:
        raise field_error(
            loc, f"bars x symbols is {market.n_bars} x {len(market.symbols)}; at most {MAX_CELLS}"
        )
    return market


def _core_validation(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(
        [
            {
                "loc": ("body", *err["loc"]),
                "msg": err["msg"].removeprefix("Value error, "),
                "type": err["type"],
            }
            for err in exc.errors()
        ]
    )


def backtest_config(req: RunRequest) -> BacktestConfig:
    """The core config of a run request; 422s name the field."""
    agents = []
    for i, agent in enumerate(req.agents):
        cls = agent_class(agent.name, ("body", "agents", i, "name"))
        validate_params(cls, agent.params, ("body", "agents", i, "params"))
        agents.append(AgentSpec(name=agent.name, params=agent.params))
    data = _load(req.data)
    del data
    try:
        return BacktestConfig(
            name=req.name,
            data=req.data.spec(),
            agents=agents,
            initial_cash=req.initial_cash,
            broker=PaperBrokerConfig.model_validate(req.broker.model_dump()),
            portfolio=PortfolioConfig.model_validate(req.portfolio.model_dump()),
            periods_per_year=req.periods_per_year,
        )
    except ValidationError as exc:
        raise _core_validation(exc) from None


def _check_fixed(cls: type[Agent], req: OptimizeRequest) -> None:
    known = cls.Params.model_fields
    for name in req.params:
        if name not in known:
            raise field_error(
                ("body", "params", name),
                f"{req.agent} has no parameter {name!r} (known: {', '.join(known)})",
            )
    try:
        cls.Params.model_validate(req.params)
    except ValidationError as exc:
        # Each fixed value on its own; a rule across parameters (fast < slow) is left to the
        # grid, whose searched values may satisfy it.
        errors = [
            {
                "loc": ("body", "params", *err["loc"]),
                "msg": err["msg"].removeprefix("Value error, "),
                "type": err["type"],
            }
            for err in exc.errors()
            if err["loc"] and err["loc"][0] in req.params
        ]
        if errors:
            raise RequestValidationError(errors) from None


def sweep_config(req: OptimizeRequest) -> tuple[SweepConfig, int]:
    """The core config of an optimize request and its trials per window; 422s name the field."""
    cls = agent_class(req.agent, ("body", "agent"))
    _check_fixed(cls, req)
    known = cls.Params.model_fields
    grid = req.search.method == "grid"
    dims: dict[str, Dimension] = {}
    size = 1
    for name, dim in req.space.items():
        loc = ("body", "space", name)
        if name not in known:
            raise field_error(
                loc, f"{req.agent} has no parameter {name!r} (known: {', '.join(known)})"
            )
        if name in req.params:
            raise field_error(loc, f"{name} is both searched and fixed in params")
        core = Dimension.model_validate(dim.model_dump())
        try:
            SearchSpace(req.agent, {name: core}, {})  # type and bounds against the schema
            if grid:  # every dimension has at most MAX_TRIALS values (DimensionIn)
                size *= len(core.grid_values())
        except ValueError as exc:
            raise field_error(loc, str(exc)) from None
        dims[name] = core
    if size > MAX_TRIALS:
        raise field_error(
            ("body", "space"), f"the grid has {size} combinations; a job runs at most {MAX_TRIALS}"
        )
    space = SearchSpace(req.agent, dims, req.params)
    try:
        if grid:
            combos = space.grid()  # raises naming why when no combination is valid
            per_window, first = len(combos), combos[0]
        else:
            first = space.sample(1, req.search.seed)[0]
            assert req.search.n_trials is not None
            per_window = req.search.n_trials
    except ValueError as exc:
        raise field_error(("body", "space"), str(exc)) from None
    n_windows = req.walk_forward.n_windows if req.walk_forward is not None else 1
    if per_window * n_windows > MAX_TRIALS:
        where = ("body", "walk_forward", "n_windows") if n_windows > 1 else ("body", "search")
        raise field_error(
            where,
            f"{per_window} trials x {n_windows} windows is over {MAX_TRIALS} trials a job may run",
        )
    data = _load(req.data)
    broker = PaperBrokerConfig.model_validate(req.broker.model_dump())
    if req.walk_forward is not None:
        try:
            windows(data.n_bars, req.walk_forward)
        except ValueError as exc:
            raise field_error(("body", "walk_forward"), str(exc)) from None
    portfolio = PortfolioConfig.model_validate(req.portfolio.model_dump())
    if req.engine == "fast":
        agent = registry.create(req.agent, first)
        reason = unsupported_reason(
            data, broker, agent=agent, initial_cash=req.initial_cash, portfolio=portfolio
        )
        if reason is not None:
            raise field_error(("body", "engine"), f"the fast path cannot run this: {reason}")
    try:
        config = SweepConfig(
            name=req.name,
            data=req.data.spec(),
            agent=req.agent,
            params=req.params,
            space=dims,
            search=SearchSpec.model_validate(req.search.model_dump()),
            objective=req.objective,
            direction=req.direction,
            initial_cash=req.initial_cash,
            broker=broker,
            portfolio=portfolio,
            periods_per_year=req.periods_per_year,
            engine=req.engine,
            workers=req.workers,
            chunk_size=req.chunk_size,
            walk_forward=(
                None
                if req.walk_forward is None
                else WalkForwardSpec.model_validate(req.walk_forward.model_dump())
            ),
        )
    except ValidationError as exc:
        raise _core_validation(exc) from None
    return config, per_window


# ---- routes ---------------------------------------------------------------------------------


def _room(jobs: JobManager, kind: Literal["run", "optimize"]) -> None:
    try:
        jobs.check_room(kind)
    except JobsBusy as exc:
        raise HTTPException(429, str(exc)) from None


async def _record(jobs: JobManager, job_id: str) -> dict[str, Any]:
    try:
        return await jobs.get(job_id)
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/run", status_code=202, response_model=JobStatus, responses=BUSY)
async def run(req: RunRequest, jobs: Jobs) -> JobStatus:
    """Queue one backtest; answers at once with the job's id (read it at ``/results/{id}``)."""
    _room(jobs, "run")
    config = await asyncio.to_thread(backtest_config, req)
    try:
        record = await jobs.submit_run(config)
    except JobsBusy as exc:
        raise HTTPException(429, str(exc)) from None
    return JobStatus.model_validate(record)


@router.post("/optimize", status_code=202, response_model=JobStatus, responses=BUSY)
async def optimize(req: OptimizeRequest, jobs: Jobs) -> JobStatus:
    """Queue a sweep of one agent's parameters (grid, random or Optuna), or a walk-forward
    when ``walk_forward`` is given; answers at once with the job's id."""
    _room(jobs, "optimize")
    config, per_window = await asyncio.to_thread(sweep_config, req)
    n_windows = config.walk_forward.n_windows if config.walk_forward is not None else 1
    try:
        record = await jobs.submit_optimize(config, top=req.top, total=per_window * n_windows)
    except JobsBusy as exc:
        raise HTTPException(429, str(exc)) from None
    return JobStatus.model_validate(record)


@router.get("/jobs/{job_id}", response_model=JobStatus)
async def job(job_id: JobId, jobs: Jobs) -> JobStatus:
    """A job's status and progress: done, total and, for a sweep, the best trial so far."""
    return JobStatus.model_validate(await _record(jobs, job_id))


@router.get("/results/{job_id}", response_model=JobResults)
async def results(job_id: JobId, jobs: Jobs) -> JobResults:
    """A job's status, progress and config, and its results once it is done."""
    return JobResults.model_validate(await _record(jobs, job_id))


@router.get("/performance/{job_id}", response_model=Performance)
async def performance(job_id: JobId, jobs: Jobs) -> Performance:
    """Metrics of a finished job: the run's, a sweep's best trial's, or a walk-forward's
    out-of-sample ones (409 until the job is done)."""
    record = await _record(jobs, job_id)
    results = record.get("results")
    if record["status"] != "done" or not isinstance(results, dict):
        raise HTTPException(409, f"job {job_id} is {record['status']}: no performance to show")
    config = record["config"]
    agents: list[AgentOut] | None = None
    source: Literal["run", "best_trial", "out_of_sample"]
    if results["type"] == "run":
        source = "run"
        agents = [AgentOut.model_validate(a) for a in config["agents"]]
        metrics = results["metrics"]
    elif results["type"] == "sweep":
        source = "best_trial"
        if results["best_params"] is not None:
            agents = [AgentOut(name=config["agent"], params=results["best_params"])]
        metrics = results["best_metrics"] or {}
    else:
        source = "out_of_sample"
        metrics = results["oos_metrics"]
    return Performance(
        id=job_id,
        kind=record["kind"],
        mode=record["mode"],
        source=source,
        agents=agents,
        metrics=metrics,
    )


@router.post("/cancel/{job_id}", response_model=JobStatus)
async def cancel(job_id: JobId, jobs: Jobs) -> JobStatus:
    """Cancel a queued or running job; answers once it has stopped (409 if it had finished).
    A cancelled sweep keeps the trials it finished."""
    try:
        record = await jobs.cancel(job_id)
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except JobFinished as exc:
        raise HTTPException(409, str(exc)) from None
    return JobStatus.model_validate(record)


# ---- reports --------------------------------------------------------------------------------

HTML_PAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The report: one HTML page, no external references",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}


# A job keeps metrics and a thinned curve only; the report's trades and full curve come from
# running the config again (a backtest is deterministic), as a Ray task so the API process's
# CPU stays with the sessions. No CPU reserved, as for the jobs' own backtests.
@ray.remote(num_cpus=0, max_retries=0)
def _run_report(config: BacktestConfig, title: str) -> str:
    result = run_backtest(config)
    return backtest_html(
        title=title,
        metrics=result.metrics(config.periods_per_year).as_dict(),
        equity=result.equity,
        trades=result.ledger.trades_frame(),
        config=config.model_dump(mode="json"),
    )


async def _sweep_report(jobs: JobManager, record: dict[str, Any]) -> str:
    config = SweepConfig.model_validate(record["config"])
    results = record["results"]
    trials = await jobs.store.list_records(trials_namespace(record["id"]))
    names = list(config.space)
    table = ranked_table(trials.values(), names, config.objective, config.direction)
    return await asyncio.to_thread(
        sweep_html,
        title=record["name"],
        table=table,
        names=names,
        objective=config.objective,
        best=results.get("best"),
        summary=results.get("summary"),
        config=record["config"],
    )


def _walk_forward_report(record: dict[str, Any]) -> str:
    results = record["results"]
    points = results["oos_equity"]
    equity = pd.Series(
        [p["equity"] for p in points],
        index=pd.DatetimeIndex([p["ts"] for p in points]),
        dtype=float,
    )
    return backtest_html(
        title=f"{record['name']} (walk-forward, out of sample)",
        metrics=results["oos_metrics"],
        equity=equity,
        trades=pd.DataFrame(results["windows"]),
        trades_title="Windows",
        config=record["config"],
    )


@router.get(
    "/report/{job_id}",
    response_class=HTMLResponse,
    responses={**HTML_PAGE, 409: {"description": "The job is not done"}},
)
async def report(job_id: JobId, jobs: Jobs) -> HTMLResponse:
    """A finished job as a self-contained HTML page: metrics, equity and drawdown, monthly
    returns and trades of a backtest; heatmap and ranked trials of a sweep; the stitched
    out-of-sample curve and windows of a walk-forward. 409 until the job is done."""
    record = await _record(jobs, job_id)
    results = record.get("results")
    if record["status"] != "done" or not isinstance(results, dict):
        raise HTTPException(409, f"job {job_id} is {record['status']}: no report to show")
    if results["type"] == "run":
        config = BacktestConfig.model_validate(record["config"])
        page: str = await _run_report.remote(config, record["name"])
    elif results["type"] == "sweep":
        page = await _sweep_report(jobs, record)
    else:
        page = await asyncio.to_thread(_walk_forward_report, record)
    return HTMLResponse(page)
