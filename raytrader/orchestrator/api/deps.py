"""Shared pieces of the routers: the manager, the API key check, error bodies."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyHeader

from raytrader.orchestrator.sessions import SessionManager
from raytrader.settings import Settings

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False)
OPEN_PATHS = frozenset({"/health", "/ready"})

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Malformed request"},
    401: {"description": "Missing or wrong API key"},
    404: {"description": "Unknown id"},
    409: {"description": "Not possible in the current state"},
    422: {"description": "Invalid input; the body names the field"},
}


def settings(request: Request) -> Settings:
    s: Settings = request.app.state.settings
    return s


def manager(request: Request) -> SessionManager:
    m: SessionManager = request.app.state.manager
    return m


async def require_api_key(
    request: Request, key: Annotated[str | None, Security(API_KEY_HEADER)] = None
) -> None:
    expected = request.app.state.settings.api_key
    if expected is None or request.url.path in OPEN_PATHS:
        return
    if key is None or not hmac.compare_digest(key, expected.get_secret_value()):
        raise HTTPException(status_code=401, detail="missing or wrong X-API-Key")


Manager = Annotated[SessionManager, Depends(manager)]
