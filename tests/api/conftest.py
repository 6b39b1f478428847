"""The app over real actors (the ``manager`` fixture of tests/conftest.py), and sessions.

Conftest modules are not importable under ``--import-mode=importlib``, so the helpers come
as the ``api`` fixture.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest_asyncio

from raytrader.orchestrator.api.app import create_app
from raytrader.orchestrator.sessions import SessionManager
from raytrader.settings import Settings


def session_body(speed: float | None = 40.0, n_bars: int = 20_000, **over: Any) -> dict[str, Any]:
    """A paper session on one synthetic symbol ``SYN``, paced so that it keeps running."""
    raw: dict[str, Any] = {
        "name": "api",
        "agents": [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}],
        "initial_cash": 100_000,
        "broker": {"commission": {"bps": 10}},
        "portfolio": {"lot_size": 0.001},
        "feed": {
            "data": {"synthetic": {"kind": "single", "n_bars": n_bars, "seed": 8, "freq": "1h"}},
            "speed": speed,
        },
    }
    raw.update(over)
    return raw


class Api:
    """The client plus the waits the tests share."""

    def __init__(self, client: httpx.AsyncClient, manager: SessionManager) -> None:
        self.client = client
        self.manager = manager

    @staticmethod
    async def eventually(
        probe: Callable[[], Awaitable[Any]], timeout: float = 60.0, what: str = "condition"
    ) -> Any:
        """Poll ``probe`` until it returns something truthy; that value."""
        deadline = time.monotonic() + timeout
        while True:
            value = await probe()
            if value:
                return value
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.05)

    @staticmethod
    def names(resp: httpx.Response, *names: str) -> bool:
        """True for a 422 whose detail names all of ``names`` in one error's location."""
        assert resp.status_code == 422, resp.text
        detail = resp.json()["detail"]
        return any(all(n in [str(p) for p in d["loc"]] for n in names) for d in detail)

    async def info(self, sid: str) -> dict[str, Any]:
        resp = await self.client.get(f"/api/trading/sessions/{sid}")
        assert resp.status_code == 200, resp.text
        info: dict[str, Any] = resp.json()
        return info

    async def start_session(self, min_bars: int = 1, **over: Any) -> str:
        """Start a session and wait until it runs and has seen ``min_bars`` bars."""
        resp = await self.client.post("/api/trading/start-session", json=session_body(**over))
        assert resp.status_code == 202, resp.text
        sid: str = resp.json()["session_id"]

        async def ready() -> bool:
            info = await self.info(sid)
            return bool(info["status"] == "running" and info.get("bars", 0) >= min_bars)

        await self.eventually(ready, what=f"session {sid} running with {min_bars} bars")
        return sid

    async def wait_bars(self, sid: str, more: int) -> None:
        """Wait until the session has seen ``more`` bars beyond the present."""
        target = (await self.info(sid))["bars"] + more

        async def done() -> bool:
            return bool((await self.info(sid))["bars"] >= target)

        await self.eventually(done, what=f"{more} more bars")

    async def stop(self, sid: str) -> None:
        resp = await self.client.post("/api/trading/stop-session", json={"session_id": sid})
        assert resp.status_code == 200, resp.text
        await self.manager.wait(sid, timeout=60)

    async def order(self, sid: str, cid: str) -> dict[str, Any] | None:
        resp = await self.client.get("/api/execution/orders", params={"session_id": sid})
        assert resp.status_code == 200, resp.text
        found = [o for o in resp.json()["orders"] if o["client_order_id"] == cid]
        return found[-1] if found else None

    async def order_in(self, sid: str, cid: str, statuses: set[str]) -> dict[str, Any]:
        async def probe() -> dict[str, Any] | None:
            order = await self.order(sid, cid)
            return order if order is not None and order["status"] in statuses else None

        found: dict[str, Any] = await self.eventually(probe, what=f"{cid} in {statuses}")
        return found


@pytest_asyncio.fixture
async def client(manager: SessionManager, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path, api_key=None), manager=manager)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


@pytest_asyncio.fixture
async def api(client: httpx.AsyncClient, manager: SessionManager) -> Api:
    return Api(client, manager)
