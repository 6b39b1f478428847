"""The web dashboard: a static page at ``/`` (assets under ``/static``, shipped in the
package) and the one read it needs that the other routers do not give: every session this
server drives with its PnL and risk state.

The page and its assets load without the API key (they hold no data); every data request
the page makes carries the key in the ``X-API-Key`` header, never in a URL.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from raytrader.orchestrator.api.backtest import JobId, Jobs
from raytrader.orchestrator.api.deps import ERRORS, Manager
from raytrader.orchestrator.jobs import FINISHED, JOBS, JobNotFound
from raytrader.orchestrator.sweep_runner import trials_namespace

STATIC = Path(__file__).resolve().parent.parent / "static"

router = APIRouter(prefix="/api/dashboard", tags=["dashboard"], responses=ERRORS)


class SessionRow(BaseModel):
    id: str
    name: str
    status: str
    reason: str
    agents: list[dict[str, Any]] = Field(description="name and params of each agent")
    bars: int
    orders: int
    fills: int
    initial_cash: float
    equity: float
    pnl: float = Field(description="equity minus the initial cash")
    pnl_pct: float = Field(description="pnl over the initial cash")
    halted: bool
    limits: dict[str, Any] = Field(description="the portfolio's risk limits that are set")
    kill_switch: dict[str, Any] | None


class SessionList(BaseModel):
    sessions: list[SessionRow]


@router.get("/sessions", response_model=SessionList)
async def sessions(mgr: Manager) -> SessionList:
    """Every session this server drives (running or ended), newest first."""
    rows = []
    for run in reversed(list(mgr.runs.values())):
        live = mgr.live_summary(run)
        cash = float(run.config.initial_cash)
        equity = float(live["equity"])
        portfolio = run.config.portfolio
        ks = portfolio.kill_switch
        rows.append(
            SessionRow(
                id=run.id,
                name=run.config.name,
                status=run.status,
                reason=run.reason,
                agents=[a.model_dump(mode="json") for a in run.config.agents],
                bars=int(live["bars"]),
                orders=int(live["orders"]),
                fills=int(live["fills"]),
                initial_cash=cash,
                equity=equity,
                pnl=equity - cash,
                pnl_pct=equity / cash - 1.0,
                halted=run.status == "halted",
                limits=portfolio.limits.model_dump(mode="json", exclude_none=True),
                kill_switch=None if ks is None else ks.model_dump(mode="json", exclude_none=True),
            )
        )
    return SessionList(sessions=rows)


class JobRow(BaseModel):
    id: str
    kind: str
    mode: str
    name: str
    status: str
    created: str
    done: int
    total: int


class JobList(BaseModel):
    jobs: list[JobRow]


@router.get("/jobs", response_model=JobList)
async def jobs_list(
    jobs: Jobs, limit: Annotated[int, Query(ge=1, le=500, description="newest first")] = 100
) -> JobList:
    """Backtest jobs (runs, sweeps, walk-forwards), newest first, without their results."""
    records = sorted(
        (await jobs.store.list_records(JOBS)).values(),
        key=lambda r: str(r.get("created", "")),
        reverse=True,
    )[:limit]
    rows = []
    for record in records:
        if record.get("status") not in FINISHED:
            # The live record: the store's copy of a running job's progress lags a second.
            try:
                record = await jobs.get(str(record["id"]))
            except JobNotFound:
                continue
        progress = record.get("progress") or {}
        rows.append(
            JobRow(
                id=str(record["id"]),
                kind=str(record["kind"]),
                mode=str(record["mode"]),
                name=str(record["name"]),
                status=str(record["status"]),
                created=str(record["created"]),
                done=int(progress.get("done", 0)),
                total=int(progress.get("total", 0)),
            )
        )
    return JobList(jobs=rows)


class Trial(BaseModel):
    params: dict[str, Any]
    value: float | None = Field(description="the objective; None when it is not finite")


class Trials(BaseModel):
    id: str
    names: list[str] = Field(description="the searched parameters")
    objective: str
    direction: str
    trials: list[Trial]


@router.get("/trials/{job_id}", response_model=Trials)
async def trials(job_id: JobId, jobs: Jobs) -> Trials:
    """Every finished trial of a sweep (so far), for the heatmap; 409 for a single backtest."""
    try:
        record = await jobs.get(job_id)
    except JobNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    if record["kind"] != "optimize":
        raise HTTPException(409, f"job {job_id} is a single backtest: it has no trials")
    config = record["config"]
    objective = str(config["objective"])
    out = []
    for rec in (await jobs.store.list_records(trials_namespace(job_id))).values():
        value = (rec.get("metrics") or {}).get(objective)
        if not (isinstance(value, int | float) and math.isfinite(value)):
            value = None
        out.append(Trial(params=rec["params"], value=value))
    return Trials(
        id=job_id,
        names=list(config["space"]),
        objective=objective,
        direction=str(config.get("direction", "maximize")),
        trials=out,
    )


async def index(_: Request) -> Response:
    # no-cache: a new version of the package shows at the next load, not a stale page.
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets at ``/static``, both outside the API schema and
    outside the app's dependencies (so without the key), plus the dashboard's API route."""
    app.add_route("/", index, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(router)
