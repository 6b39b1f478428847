"""The FastAPI application: lifespan (Ray, actors, resumed sessions and backtest jobs),
routers, operations."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from raytrader import __version__
from raytrader.orchestrator import metrics
from raytrader.orchestrator.api import (
    backtest,
    dashboard,
    data,
    execution,
    ml,
    portfolio,
    regime,
    risk,
    rl,
    strategy,
    trading,
)
from raytrader.orchestrator.api.deps import ERRORS, require_api_key
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.control import FieldError
from raytrader.orchestrator.jobs import JobManager
from raytrader.orchestrator.runtime import init_ray, start_components
from raytrader.orchestrator.sessions import SessionError, SessionManager
from raytrader.settings import Settings
from raytrader.state.stores import open_store

log = structlog.get_logger("raytrader.api")


def create_app(
    settings: Settings | None = None,
    manager: SessionManager | None = None,
    demo_session: dict[str, Any] | None = None,
    announce: str | None = None,
) -> FastAPI:
    """The app; with no ``manager`` its lifespan starts Ray and the component actors.

    ``demo_session`` (a session config) is started once the app is up unless sessions were
    resumed; ``announce`` (the base URL) prints where the docs and sessions are.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        mgr = manager
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        if mgr is None:
            init_ray()
            mgr = SessionManager(start_components(settings.store_url, str(settings.data_dir)))
        app.state.manager = mgr
        # Backtest jobs run from this process, on its own connection to the same store.
        jobs_store = open_store(settings.store_url, settings.data_dir)
        app.state.jobs = jobs = JobManager(jobs_store)
        resumed_jobs = await jobs.start()
        resumed = await mgr.resume_all()
        log.info(
            "orchestrator ready",
            resumed=len(resumed),
            resumed_jobs=len(resumed_jobs),
            store=_store_label(settings),
        )
        if demo_session is not None and not resumed:
            sid = await mgr.start(SessionConfig.model_validate(demo_session))
            resumed = [sid]
        if announce:
            _announce(announce, resumed)
        yield
        await jobs.shutdown()
        await jobs_store.close()
        await mgr.shutdown()

    app = FastAPI(
        title="raytrader",
        version=__version__,
        lifespan=lifespan,
        # Without a configured key the API is open, and its schema says so.
        dependencies=[Depends(require_api_key)] if settings.api_key is not None else [],
        responses=ERRORS,
    )
    app.state.settings = settings
    dashboard.install(app)  # the page at / and /static: no key needed, no data in them
    app.include_router(trading.router)
    for router in (execution, risk, portfolio, data, strategy, backtest):
        app.include_router(router.router)
    app.include_router(ml.router)
    app.include_router(regime.router)
    app.include_router(rl.router)

    @app.exception_handler(SessionError)
    async def session_error(_: Request, exc: SessionError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(FieldError)
    async def field_error(_: Request, exc: FieldError) -> JSONResponse:
        # A field that does not fit the session (an unknown symbol): named as pydantic would.
        detail = [{"loc": list(exc.loc), "msg": exc.message, "type": "value_error"}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Name every bad field with its location; never echo a secret-looking input back.
        detail = [
            {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.get("/health", tags=["operations"], openapi_extra={"security": []})
    async def health() -> dict[str, str]:
        """The process answers."""
        return {"status": "ok"}

    @app.get(
        "/ready",
        tags=["operations"],
        responses={503: {"description": "Not ready"}},
        openapi_extra={"security": []},
    )
    async def ready(request: Request) -> JSONResponse:
        """Ray actors and the store are reachable."""
        mgr: SessionManager | None = getattr(request.app.state, "manager", None)
        if mgr is None:
            return JSONResponse({"status": "starting"}, status_code=503)
        actors = await mgr.health()
        try:
            store_ok = bool(await mgr.c.state.store_ping.remote())
        except Exception:
            store_ok = False
        ok = store_ok and all(v == "ok" for v in actors.values())
        body: dict[str, Any] = {
            "status": "ready" if ok else "degraded",
            "store": store_ok,
            "actors": actors,
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        """Prometheus exposition of the orchestrator's metrics."""
        return PlainTextResponse(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return app


def _announce(base: str, sessions: list[str]) -> None:
    lines = [f"raytrader API docs: {base}/docs"]
    for sid in sessions:
        lines.append(f"session {sid}: {base}/api/trading/sessions/{sid}")
        lines.append(f"  events: curl -N {base}/api/trading/sessions/{sid}/events")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


def _store_label(settings: Settings) -> str:
    # Never the URL itself: it may carry a password.
    return "redis" if settings.redis_url else f"sqlite:{settings.data_dir / 'state.db'}"
