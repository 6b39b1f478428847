"""Trading sessions: start, stop, status, performance and per-session reads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse, ServerSentEvent

from raytrader.orchestrator.api.deps import ERRORS, Manager
from raytrader.orchestrator.config import SessionConfig

router = APIRouter(prefix="/api/trading", tags=["trading"], responses=ERRORS)

SessionId = Annotated[str, Field(pattern=r"^s-[0-9a-f]{12}$", description="a session id")]


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: SessionId


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: SessionId


class SessionStarted(BaseModel):
    session_id: str
    status: str


@router.post("/start-session", status_code=202, response_model=SessionStarted)
async def start_session(config: SessionConfig, mgr: Manager) -> SessionStarted:
    """Start a paper session; answers at once, the session runs in the background."""
    sid = await mgr.start(config)
    return SessionStarted(session_id=sid, status="starting")


@router.post("/stop-session", response_model=SessionStarted)
async def stop_session(req: StopRequest, mgr: Manager) -> SessionStarted:
    """Stop a session: open orders cancelled, final ledger persisted, status ``stopped``."""
    return SessionStarted(session_id=req.session_id, status=await mgr.stop(req.session_id))


@router.post("/resume-session", response_model=SessionStarted)
async def resume_session(req: ResumeRequest, mgr: Manager) -> SessionStarted:
    """Resume a session its kill switch halted: orders are taken again, and the drawdown and
    daily loss limits count from the equity now. 409 if the session is not halted."""
    return SessionStarted(session_id=req.session_id, status=await mgr.resume(req.session_id))


@router.get("/status")
async def status(mgr: Manager) -> dict[str, Any]:
    """Active sessions and the health of every component actor."""
    sessions = [mgr.live_summary(mgr.runs[sid]) for sid in mgr.active()]
    return {"active_sessions": len(sessions), "sessions": sessions, "actors": await mgr.health()}


@router.get("/performance")
async def performance(
    mgr: Manager,
    session_id: Annotated[str | None, Query(pattern=r"^s-[0-9a-f]{12}$")] = None,
) -> dict[str, Any]:
    """Metrics of one session, or of every session this server drives."""
    ids = [session_id] if session_id else list(mgr.runs)
    return {"sessions": [await mgr.performance(sid) for sid in ids]}


@router.get("/sessions/{session_id}")
async def session(session_id: SessionId, mgr: Manager) -> dict[str, Any]:
    return await mgr.summary(session_id)


@router.get("/sessions/{session_id}/orders")
async def orders(session_id: SessionId, mgr: Manager) -> list[dict[str, Any]]:
    return await mgr.orders(session_id)


@router.get("/sessions/{session_id}/fills")
async def fills(session_id: SessionId, mgr: Manager) -> list[dict[str, Any]]:
    return await mgr.fills(session_id)


@router.get("/sessions/{session_id}/positions")
async def positions(session_id: SessionId, mgr: Manager) -> dict[str, Any]:
    return await mgr.positions(session_id)


@router.get("/sessions/{session_id}/equity")
async def equity(session_id: SessionId, mgr: Manager) -> list[dict[str, Any]]:
    await mgr.record(session_id)
    series = mgr.equity_series(session_id)
    return [
        {"ts": ts.isoformat(), "equity": float(v)}
        for ts, v in zip(series.index, series.to_numpy(), strict=True)
    ]


@router.get("/sessions/{session_id}/events", response_class=EventSourceResponse)
async def events(
    session_id: SessionId,
    mgr: Manager,
    # At most 19 digits a part: event ids are pairs of unsigned 64-bit numbers.
    last_event_id: Annotated[str | None, Header(pattern=r"^[0-9]{1,19}-[0-9]{1,19}$")] = None,
    follow: bool = True,
) -> EventSourceResponse:
    """Orders, fills, signals, equity and status events as server-sent events.

    Resumes after ``Last-Event-ID``; with ``follow=false`` it ends after the backlog.
    """
    await mgr.record(session_id)

    async def stream() -> AsyncIterator[ServerSentEvent]:
        after = last_event_id
        while True:
            batch = await mgr.read_events(session_id, after, 500, 1000 if follow else None)
            for event_id, event in batch:
                after = event_id
                yield ServerSentEvent(
                    data=json.dumps(event), event=str(event.get("type", "event")), id=event_id
                )
            if not batch:
                if not follow:
                    return
                record = await mgr.record(session_id)
                if record.status in ("stopped", "failed"):
                    return
                await asyncio.sleep(0)

    return EventSourceResponse(stream(), ping=15)
