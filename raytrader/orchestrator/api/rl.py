"""RL policies: training as a job on a Ray worker, the registry's policies, inference and
out-of-sample evaluation.

- ``POST /api/rl/train``: train a stable-baselines3 policy on ``TradingEnv`` over symbols of a
  bundled data set, split in time (train, validation for the early stop, the rest held out),
  and save it as a new registry version; 202 with the job id.
- ``GET /api/rl/jobs/{id}``: status, progress (timesteps done of the budget) and, once done,
  the saved version, the validation scores and the three windows.
- ``DELETE /api/rl/jobs/{id}``: cancel a queued or running job (a running training's Ray
  worker is killed; no policy is saved, the next job starts); 409 once it finished.
- ``GET /api/rl/agents``: every saved policy version's metadata (optionally of one name).
- ``POST /api/rl/infer``: a policy's target weight per symbol on the latest bars.
- ``POST /api/rl/evaluate``: backtests of the policy, buy-and-hold and seeded random policies
  over the bars after its training window, with their metrics.

Training runs as a Ray task (torch never loads in the API process for it, and the event loop
keeps serving): it streams its progress back and returns the saved policy's bytes, which this
process writes to the registry under the app's data directory, so a worker on another node
needs no shared disk. One job runs at a time; at most ``MAX_UNFINISHED`` wait (beyond: 429).
Jobs are kept in this process's memory: a restart forgets them, not the saved policies.
"""

from __future__ import annotations

import asyncio
import io
import math
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path as FsPath
from typing import Annotated, Any, Literal

import pandas as pd
import ray
from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request
from pydantic import BaseModel, Field, ValidationError, model_validator

from raytrader.data.market_data import MarketData
from raytrader.ml.registry import ModelNotFoundError, ModelRecord, TrainingInfo
from raytrader.orchestrator.api.common import (
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
from raytrader.rl.config import TradingEnvConfig
from raytrader.rl.registry import PolicyRegistry
from raytrader.rl.run import split
from raytrader.rl.training import Algo, RLTrainSpec


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    jobs: TrainingJobs | None = getattr(app.state, "rl_jobs", None)
    if jobs is not None:  # a stopping server leaves no training running on the cluster
        await jobs.shutdown()


router = APIRouter(
    prefix="/api/rl",
    tags=["rl"],
    responses={
        **ERRORS,
        429: {"description": "Too many training jobs; retry later"},
        501: {"description": "The server lacks the rl extra (torch, gymnasium, SB3)"},
    },
    lifespan=_lifespan,
)


def _needs_rl_extra() -> None:
    """A 501 up front when the rl extra is missing, rather than an import error later."""
    from importlib.util import find_spec

    missing = [m for m in ("torch", "gymnasium", "stable_baselines3") if find_spec(m) is None]
    if missing:
        raise HTTPException(501, f"RL needs the rl extra; this server lacks {missing}")


JOB_ID_PATTERN = r"^rl-[0-9a-f]{12}$"
NAME_QUERY = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
MAX_UNFINISHED = 8
MAX_BARS = 50_000
MAX_SYMBOLS = 20


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The algorithms' hyperparameters a request may set; the rest (devices, log paths, buffer
# classes, policy kwargs) stay the server's.
HYPERPARAMETERS: dict[str, frozenset[str]] = {
    "ppo": _names(
        "learning_rate n_steps batch_size n_epochs gamma gae_lambda clip_range clip_range_vf "
        "normalize_advantage ent_coef vf_coef max_grad_norm use_sde sde_sample_freq "
        "target_kl"
    ),
    "a2c": _names(
        "learning_rate n_steps gamma gae_lambda ent_coef vf_coef max_grad_norm rms_prop_eps "
        "use_rms_prop use_sde sde_sample_freq normalize_advantage"
    ),
    "dqn": _names(
        "learning_rate buffer_size learning_starts batch_size tau gamma train_freq "
        "gradient_steps n_steps target_update_interval exploration_fraction "
        "exploration_initial_eps exploration_final_eps max_grad_norm"
    ),
    "sac": _names(
        "learning_rate buffer_size learning_starts batch_size tau gamma train_freq "
        "gradient_steps n_steps ent_coef target_update_interval target_entropy use_sde "
        "sde_sample_freq use_sde_at_warmup"
    ),
    "td3": _names(
        "learning_rate buffer_size learning_starts batch_size tau gamma train_freq "
        "gradient_steps n_steps policy_delay target_policy_noise target_noise_clip"
    ),
}

ParamValue = (
    Annotated[int, Field(ge=-1_000_000_000, le=1_000_000_000)]
    | Annotated[float, Field(ge=-1e9, le=1e9)]
    | bool
    | Annotated[str, Field(max_length=32)]
)


# ---- request models --------------------------------------------------------------------------


class BarsIn(Strict):
    """Bars of a bundled data set: the range and the bar length."""

    source: Source = "universe_daily"
    start: UtcTime | None = None
    end: UtcTime | None = None
    timeframe: Timeframe | None = None


class RLTrainRequest(BarsIn):
    model_config = examples(
        {
            "name": "s01-ppo",
            "source": "universe_daily",
            "symbols": ["S01"],
            "algo": "ppo",
            "total_timesteps": 20000,
            "env": {"action": "long_flat", "broker": {"commission": {"bps": 5}}},
            "params": {"n_steps": 256, "batch_size": 64},
        }
    )

    name: Name = Field(description="registry name; each training adds a version")
    symbols: list[Symbol] = Field(
        default_factory=lambda: ["S01"],
        min_length=1,
        max_length=MAX_SYMBOLS,
        description="traded symbols; several need the 'continuous' action",
    )
    train_fraction: float = Field(0.6, gt=0, lt=1, description="first share of the bars")
    validation_fraction: float = Field(
        0.2, ge=0, lt=1, description="next share: the early stop's window (0: none)"
    )
    algo: Algo = "ppo"
    env: TradingEnvConfig = Field(default_factory=TradingEnvConfig)
    total_timesteps: int = Field(10_000, ge=1, le=2_000_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    net_arch: tuple[int, ...] = Field(
        (32, 32), strict=False, min_length=1, max_length=4, description="hidden layers"
    )
    params: dict[Name, ParamValue] = Field(
        default_factory=dict, max_length=20, description="the algorithm's hyperparameters"
    )
    n_envs: int = Field(1, ge=1, le=8, description="environments stepped together")
    vec_env: Literal["dummy", "subproc"] = "dummy"
    eval_every: int = Field(2_000, ge=1, le=2_000_000, description="timesteps between scores")
    patience: int = Field(5, ge=1, le=1000, description="scores without improvement to stop")

    @model_validator(mode="after")
    def _check(self) -> RLTrainRequest:
        if self.train_fraction + self.validation_fraction >= 1:
            raise ValueError("train_fraction + validation_fraction must leave bars to test on")
        if any(not 1 <= n <= 1024 for n in self.net_arch):
            raise ValueError("net_arch: layers of 1 to 1024 units")
        return self


class PolicyIn(BarsIn):
    name: Name = Field(description="policy name in the registry")
    version: int | None = Field(None, ge=1, le=1_000_000, description="None: the latest")
    symbols: list[Symbol] | None = Field(
        None, min_length=1, max_length=MAX_SYMBOLS, description="None: the policy's own"
    )


class InferRequest(PolicyIn):
    model_config = examples({"name": "s01-ppo", "limit": 1})

    limit: int = Field(1, ge=1, le=5_000, description="the latest this many bars")


class EvaluateRequest(PolicyIn):
    model_config = examples({"name": "s01-ppo", "n_random": 5})

    n_random: int = Field(5, ge=0, le=50, description="seeded random policies")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the first random policy")
    trade_in_sample: bool = Field(False, description="also trade the training window")


# ---- responses -------------------------------------------------------------------------------


class RLJobOut(BaseModel):
    id: str
    status: JobStatus
    created: datetime
    started: datetime | None = None
    finished: datetime | None = None
    error: str | None = None
    progress: JobProgress
    request: dict[str, Any]
    result: dict[str, Any] | None = None


class PolicyOut(BaseModel):
    name: str
    version: int
    algo: str
    created_at: datetime
    symbols: list[str]
    action: str
    features: list[str]
    seed: int
    training_start: datetime | None
    training_end: datetime | None
    timesteps: int
    data_hash: str
    validation_reward: float | None
    params: dict[str, Any]
    library_versions: dict[str, str]


class PoliciesOut(BaseModel):
    agents: list[PolicyOut]


class TargetOut(BaseModel):
    ts: datetime
    symbol: str
    target_weight: float = Field(description="the position's share of equity the policy wants")


class InferOut(BaseModel):
    name: str
    version: int
    algo: str
    action: str
    training_end: datetime | None
    count: int = Field(description="bars answered")
    targets: list[TargetOut]


class ContenderOut(BaseModel):
    total_return: float | None
    cagr: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    volatility: float | None
    trade_count: int
    win_rate: float | None
    final_equity: float | None


class EvaluateOut(BaseModel):
    name: str
    version: int
    symbols: list[str]
    start: datetime = Field(description="the first bar every contender may trade")
    end: datetime
    bars: int
    policy: ContenderOut
    buy_and_hold: ContenderOut
    random: list[ContenderOut]
    beats_buy_and_hold: bool
    beats_random: bool = Field(description="above every random policy's total return")


# ---- training on a Ray worker ----------------------------------------------------------------


class _PolicyBytes:
    """A trained policy as SB3 saved it: ``save`` writes those bytes (the registry's call)."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob

    def save(self, path: FsPath) -> None:
        FsPath(path).write_bytes(self.blob)


@ray.remote(num_cpus=0, max_retries=0, num_returns="streaming")
def _train_task(
    train: MarketData, validation: MarketData | None, spec: RLTrainSpec
) -> Iterator[tuple[str, Any]]:
    """Yields ``("progress", (done, total))`` as training goes, then ``("done", result)``."""
    # No CPU reserved, as for backtest tasks: the sweep pool's workers may hold them all; the
    # job queue runs one training at a time. One torch thread: reproducible and polite.
    import torch

    from raytrader.rl.training import train_policy

    torch.set_num_threads(1)
    updates: queue.Queue[tuple[int, int] | None] = queue.Queue()
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["result"] = train_policy(train, spec, validation, progress=_put(updates))
        except BaseException as exc:  # re-raised in the task below
            out["error"] = exc
        finally:
            updates.put(None)

    worker = threading.Thread(target=work, name="rl-train", daemon=True)
    worker.start()
    while (item := updates.get()) is not None:
        yield "progress", item
    worker.join()
    if "error" in out:
        raise out["error"]
    result = out["result"]
    buf = io.BytesIO()
    result.model.save(buf)
    yield (
        "done",
        {
            "policy": buf.getvalue(),
            "info": result.info.model_dump(mode="json"),
            "evaluations": result.evaluations,
            "stopped_early": result.stopped_early,
        },
    )


def _put(updates: queue.Queue[tuple[int, int] | None]) -> Any:
    return lambda done, total: updates.put((done, total))


def _window(data: MarketData | None) -> dict[str, Any] | None:
    if data is None or data.n_bars == 0:
        return None
    return {"start": data.ts(0), "end": data.ts(data.n_bars - 1), "bars": data.n_bars}


def _training(
    name: str,
    spec: RLTrainSpec,
    windows: tuple[MarketData, MarketData | None, MarketData],
    registry: PolicyRegistry,
) -> Work:
    """A job's work: the Ray task's training, then the policy saved here. A cancel kills the
    task's worker; a policy that finished meanwhile is not saved."""
    train, validation, test = windows

    async def work(job: TrainingJob) -> dict[str, Any]:
        job.check()
        done: dict[str, Any] = {}
        stream: Any = _train_task.remote(train, validation, spec)  # refs, streamed
        job.on_cancel(lambda: ray.cancel(stream, force=True))
        async for ref in stream:
            kind, payload = await ref
            if kind == "progress":
                job.progress(int(payload[0]), int(payload[1]))
            else:
                done = payload
        job.check()
        info = TrainingInfo.model_validate(done["info"])
        record = await asyncio.to_thread(registry.save, name, _PolicyBytes(done["policy"]), info)
        evaluations = [
            {"timestep": int(t), "mean_reward": finite(float(r))} for t, r in done["evaluations"]
        ]
        return {
            "name": record.name,
            "version": record.version,
            "algo": record.kind,
            "symbols": list(train.symbols),
            "timesteps": record.n_samples,
            "stopped_early": bool(done["stopped_early"]),
            "validation": evaluations,
            "best_validation_reward": finite(record.cv_metrics.get("validation_reward", math.nan)),
            "windows": {
                "train": _window(train),
                "validation": _window(validation),
                "test": _window(test),
            },
        }

    return work


def _jobs(request: Request) -> TrainingJobs:
    jobs: TrainingJobs | None = getattr(request.app.state, "rl_jobs", None)
    if jobs is None:
        jobs = request.app.state.rl_jobs = TrainingJobs("rl", "timesteps", MAX_UNFINISHED)
    return jobs


def registry_of(request: Request) -> PolicyRegistry:
    """The policy registry under the app's data directory."""
    return PolicyRegistry(request.app.state.settings.data_dir / "policies")


# ---- data ------------------------------------------------------------------------------------


def load_bars(req: BarsIn, symbols: list[str]) -> MarketData:
    """The symbols' bars of the request's range, aligned on one index; 422 naming the field."""
    if req.start is not None and req.end is not None and req.end <= req.start:
        raise field_error(("body", "end"), "end must be after start")
    frames: dict[str, pd.DataFrame] = {}
    for k, symbol in enumerate(symbols):
        try:
            frame = select(req.source, symbol, req.start, req.end, req.timeframe, ("body",))
        except KeyError:
            have = ", ".join(sorted(bundled_frames(req.source)))
            raise field_error(
                ("body", "symbols", k), f"unknown symbol {symbol!r} in {req.source} (have {have})"
            ) from None
        if len(frame) > MAX_BARS:
            raise field_error(("body", "start"), f"at most {MAX_BARS} bars per symbol")
        if len(frame) == 0:
            raise field_error(("body", "start"), f"no bars of {symbol!r} in the range")
        frames[symbol] = frame
    if len(frames) < len(symbols):
        raise field_error(("body", "symbols"), "symbols must be distinct")
    return MarketData.from_frames(frames)


def _windows(
    req: RLTrainRequest, data: MarketData
) -> tuple[MarketData, MarketData | None, MarketData]:
    """Train / validation / test windows, each long enough for the environment."""
    from raytrader.rl.env import TradingEnv

    train, val, test = split(data, req.train_fraction, req.validation_fraction)
    validation = val if val.n_bars else None
    for label, window, field in (
        ("training", train, "train_fraction"),
        ("validation", validation, "validation_fraction"),
    ):
        if window is None:
            continue
        try:
            TradingEnv(window, req.env)
        except ValueError as exc:
            raise field_error(
                ("body", field), f"the {label} window ({window.n_bars} bars) is too short: {exc}"
            ) from None
    if test.n_bars == 0:
        raise field_error(("body", "train_fraction"), "no bars are left to test on")
    return train, validation, test


def _spec(req: RLTrainRequest) -> RLTrainSpec:
    allowed = HYPERPARAMETERS[req.algo]
    for key in req.params:
        if key not in allowed:
            raise field_error(
                ("body", "params", key),
                f"{req.algo} takes no hyperparameter {key!r} "
                f"(allowed: {', '.join(sorted(allowed))})",
            )
    if len(req.symbols) > 1 and req.env.action != "continuous":
        raise field_error(
            ("body", "env", "action"),
            f"{len(req.symbols)} symbols need the 'continuous' action, not {req.env.action!r}",
        )
    fields = req.model_dump(include=set(RLTrainSpec.model_fields) - {"env"})
    try:
        return RLTrainSpec.model_validate({**fields, "env": req.env})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ("body", *(str(p) for p in err["loc"])) if err["loc"] else ("body", "algo")
        raise field_error(loc, err["msg"].removeprefix("Value error, ")) from None


def _policy_symbols(record: ModelRecord, req: PolicyIn) -> list[str]:
    trained = [str(s) for s in record.params.get("symbols", [])]
    if req.symbols is not None and req.symbols != trained:
        raise field_error(
            ("body", "symbols"),
            f"policy {record.name!r} version {record.version} trades {trained}, not {req.symbols}",
        )
    return trained


def _not_found(exc: ModelNotFoundError) -> HTTPException:
    # The ML registry's words say "model"; here the thing is a policy.
    text = str(exc)
    for old, new in (("no model named", "no policy named"), ("model ", "policy ")):
        if text.startswith(old):
            text = new + text.removeprefix(old)
            break
    return HTTPException(404, text)


def _policy_out(r: ModelRecord) -> PolicyOut:
    env = r.params.get("env", {})
    return PolicyOut(
        name=r.name,
        version=r.version,
        algo=r.kind,
        created_at=r.created_at,
        symbols=[str(s) for s in r.params.get("symbols", [])],
        action=str(env.get("action", "")),
        features=list(r.features),
        seed=r.seed,
        training_start=r.training_start,
        training_end=r.training_end,
        timesteps=r.n_samples,
        data_hash=r.data_hash,
        validation_reward=finite(r.cv_metrics.get("validation_reward", math.nan)),
        params=r.params,
        library_versions=r.library_versions,
    )


def _contender(m: Any) -> ContenderOut:
    return ContenderOut(
        total_return=finite(m.total_return),
        cagr=finite(m.cagr),
        sharpe=finite(m.sharpe),
        sortino=finite(m.sortino),
        max_drawdown=finite(m.max_drawdown),
        volatility=finite(m.volatility),
        trade_count=m.trade_count,
        win_rate=finite(m.win_rate),
        final_equity=finite(m.final_equity),
    )


# ---- routes ----------------------------------------------------------------------------------


@router.post("/train", status_code=202, response_model=RLJobOut)
async def train_rl(req: RLTrainRequest, request: Request) -> RLJobOut:
    """Queue a training job on a Ray worker; poll ``GET /api/rl/jobs/{id}`` for progress and
    the saved version."""
    _needs_rl_extra()
    spec = _spec(req)

    def prepare() -> tuple[MarketData, MarketData | None, MarketData]:
        return _windows(req, load_bars(req, req.symbols))

    windows = await asyncio.to_thread(prepare)
    work = _training(req.name, spec, windows, registry_of(request))
    try:
        job = _jobs(request).submit(req.model_dump(mode="json"), spec.total_timesteps, work)
    except JobsBusy as exc:
        raise HTTPException(429, str(exc)) from None
    return RLJobOut.model_validate(job)


@router.get("/jobs/{job_id}", response_model=RLJobOut)
async def train_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN, description="a training job id")],
    request: Request,
) -> RLJobOut:
    """A training job: status, progress and, once done, the saved version."""
    try:
        return RLJobOut.model_validate(_jobs(request).get(job_id))
    except KeyError:
        raise HTTPException(404, f"no training job {job_id!r}") from None


@router.delete("/jobs/{job_id}", response_model=RLJobOut)
async def cancel_train_job(
    job_id: Annotated[str, Path(pattern=JOB_ID_PATTERN, description="a training job id")],
    request: Request,
) -> RLJobOut:
    """Cancel a queued or running training job; answers once it stopped (409 if finished)."""
    try:
        return RLJobOut.model_validate(await _jobs(request).cancel(job_id))
    except KeyError:
        raise HTTPException(404, f"no training job {job_id!r}") from None
    except JobFinished as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/agents", response_model=PoliciesOut)
async def agents(
    request: Request,
    name: Annotated[str | None, Query(pattern=NAME_QUERY)] = None,
) -> PoliciesOut:
    """Every saved policy version (of ``name`` only, if given), oldest first."""
    registry = registry_of(request)
    try:
        records = await asyncio.to_thread(registry.list, name)
    except ModelNotFoundError as exc:
        raise _not_found(exc) from None
    return PoliciesOut(agents=[_policy_out(r) for r in records])


@router.post("/infer", response_model=InferOut)
async def infer(req: InferRequest, request: Request) -> InferOut:
    """The policy's target weight per symbol at the close of each of the latest ``limit``
    bars (deterministic actions on its own simulated account over the requested range)."""
    from raytrader.rl.infer import infer_targets

    _needs_rl_extra()
    registry = registry_of(request)

    def run() -> InferOut:
        record = registry.metadata(req.name, req.version)
        data = load_bars(req, _policy_symbols(record, req))
        try:
            targets = infer_targets(data, req.name, record.version, req.limit, registry=registry)
        except ValueError as exc:  # too few bars for the policy's warm-up
            raise field_error(("body", "start"), str(exc)) from None
        return InferOut(
            name=record.name,
            version=record.version,
            algo=record.kind,
            action=str(record.params.get("env", {}).get("action", "")),
            training_end=record.training_end,
            count=len({t.ts for t in targets}),
            targets=[TargetOut(**t.model_dump()) for t in targets],
        )

    try:
        return await asyncio.to_thread(run)
    except ModelNotFoundError as exc:
        raise _not_found(exc) from None


@router.post("/evaluate", response_model=EvaluateOut)
async def evaluate(req: EvaluateRequest, request: Request) -> EvaluateOut:
    """Backtests of the policy, buy-and-hold and ``n_random`` seeded random policies over the
    same bars after the policy's training window, with the policy's costs and limits."""
    from raytrader.rl.evaluate import evaluate_policy

    _needs_rl_extra()
    registry = registry_of(request)

    def run() -> EvaluateOut:
        record = registry.metadata(req.name, req.version)
        data = load_bars(req, _policy_symbols(record, req))
        try:
            ev = evaluate_policy(
                data,
                req.name,
                record.version,
                n_random=req.n_random,
                seed=req.seed,
                trade_in_sample=req.trade_in_sample,
                registry=registry,
            )
        except ValueError as exc:  # no bar after the training window, or too few bars
            raise field_error(("body", "start"), str(exc)) from None
        return EvaluateOut(
            name=ev.model,
            version=ev.version,
            symbols=list(data.symbols),
            start=ev.policy.start,
            end=ev.policy.end,
            bars=ev.policy.bars,
            policy=_contender(ev.policy),
            buy_and_hold=_contender(ev.buy_and_hold),
            random=[_contender(r) for r in ev.random],
            beats_buy_and_hold=ev.beats_buy_and_hold,
            beats_random=ev.beats_random,
        )

    try:
        return await asyncio.to_thread(run)
    except ModelNotFoundError as exc:
        raise _not_found(exc) from None
