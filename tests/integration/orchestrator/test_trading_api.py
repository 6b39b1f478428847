"""The trading REST API over real actors: validation, the session flow, SSE, security."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from raytrader.orchestrator.api.app import create_app
from raytrader.orchestrator.sessions import SessionManager
from raytrader.settings import Settings

pytestmark = pytest.mark.asyncio

SECRET = "test-key-9f8e7d6c5b4a"


def body(**over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "api",
        "agents": [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}],
        "initial_cash": 20_000,
        "broker": {"commission": {"bps": 10}},
        "portfolio": {"lot_size": 0.001},
        "feed": {"data": {"synthetic": {"kind": "single", "n_bars": 400, "seed": 8, "freq": "1h"}}},
    }
    raw.update(over)
    return raw


@pytest_asyncio.fixture
async def client(manager: SessionManager, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path), manager=manager)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def wait_status(
    client: httpx.AsyncClient, sid: str, status: str, timeout: float = 60
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info: dict[str, Any] = (await client.get(f"/api/trading/sessions/{sid}")).json()
        if info["status"] == status:
            return info
        assert time.monotonic() < deadline, f"still {info['status']}"
        await asyncio.sleep(0.05)


BAD_CONFIGS: list[tuple[dict[str, Any], str, str]] = [
    ({"agents": []}, "agents", "at least 1"),
    ({"initial_cash": -5}, "initial_cash", "greater than 0"),
    ({"mode": "live"}, "", "RAYTRADER_ALLOW_LIVE"),
    ({"agents": [{"name": "sma_crss"}]}, "agents", "did you mean 'sma_cross'"),
    (
        {"agents": [{"name": "sma_cross", "params": {"fast": 50, "slow": 20}}]},
        "agents",
        "fast (50) must be below slow (20)",
    ),
    ({"feed": {"data": {}}}, "feed", "exactly one data source"),
    ({"colour": "red"}, "colour", "Extra inputs"),
]


async def test_bad_session_config_is_a_422_naming_the_field(client: httpx.AsyncClient) -> None:
    for over, field, text in BAD_CONFIGS:
        resp = await client.post("/api/trading/start-session", json=body(**over))
        assert resp.status_code == 422, over
        detail = resp.json()["detail"]
        assert not field or any(field in [str(p) for p in d["loc"]] for d in detail), detail
        assert any(text in d["msg"] for d in detail), detail
    assert (await client.get("/api/trading/status")).json()["active_sessions"] == 0


async def test_a_session_from_start_to_feed_end(client: httpx.AsyncClient) -> None:
    resp = await client.post("/api/trading/start-session", json=body())
    assert resp.status_code == 202
    sid = resp.json()["session_id"]
    info = await wait_status(client, sid, "stopped")
    assert info["reason"] == "feed ended" and info["bars"] == 400

    fills = (await client.get(f"/api/trading/sessions/{sid}/fills")).json()
    orders = (await client.get(f"/api/trading/sessions/{sid}/orders")).json()
    assert len(fills) > 4
    assert {o["status"] for o in orders} <= {"filled", "cancelled", "rejected", "expired"}
    equity = (await client.get(f"/api/trading/sessions/{sid}/equity")).json()
    assert len(equity) == 400 and equity[0]["equity"] == 20_000
    perf = (await client.get("/api/trading/performance", params={"session_id": sid})).json()
    metrics = perf["sessions"][0]["metrics"]
    assert metrics["final_equity"] == pytest.approx(equity[-1]["equity"])
    assert metrics["trade_count"] >= len(fills) // 2 - 1

    stream = await client.get(f"/api/trading/sessions/{sid}/events", params={"follow": "false"})
    assert stream.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[5:]) for line in stream.text.splitlines() if line.startswith("data:")]
    assert sum(e["type"] == "fill" for e in events) == len(fills)
    assert sum(e["type"] == "equity" for e in events) == 400
    assert events[-1] == {"type": "status", "status": "stopped", "reason": "feed ended"}
    ids = [line[4:] for line in stream.text.splitlines() if line.startswith("id:")]
    # Resuming after an id gives only what came later.
    later = await client.get(
        f"/api/trading/sessions/{sid}/events",
        params={"follow": "false"},
        headers={"Last-Event-ID": ids[-3].strip()},
    )
    assert sum(line.startswith("data:") for line in later.text.splitlines()) == 2

    metrics_text = (await client.get("/metrics")).text
    assert "raytrader_fills_total" in metrics_text
    assert "raytrader_bar_to_fill_seconds_bucket" in metrics_text


async def test_stop_session_stops_cleanly(client: httpx.AsyncClient) -> None:
    slow = body(
        feed={
            "data": {"synthetic": {"kind": "single", "n_bars": 5000, "seed": 2, "freq": "1h"}},
            "speed": 200,
        }
    )
    sid = (await client.post("/api/trading/start-session", json=slow)).json()["session_id"]
    await wait_status(client, sid, "running")
    status = (await client.get("/api/trading/status")).json()
    assert sid in [s["id"] for s in status["sessions"]]
    assert set(status["actors"].values()) == {"ok"}
    resp = await client.post("/api/trading/stop-session", json={"session_id": sid})
    assert resp.status_code == 200 and resp.json()["status"] in ("stopping", "stopped")
    info = await wait_status(client, sid, "stopped")
    assert info["reason"] == "stopped on request"
    assert info["bars"] < 5000
    orders = (await client.get(f"/api/trading/sessions/{sid}/orders")).json()
    assert all(o["status"] in ("filled", "cancelled", "rejected", "expired") for o in orders)
    assert sid not in [
        s["id"] for s in (await client.get("/api/trading/status")).json()["sessions"]
    ]


async def test_unknown_and_malformed_session_ids(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/trading/sessions/s-000000000000")).status_code == 404
    assert (await client.get("/api/trading/sessions/nope")).status_code == 422
    resp = await client.post("/api/trading/stop-session", json={"session_id": "s-000000000000"})
    assert resp.status_code == 404


async def test_api_key_guards_everything_but_health_and_never_leaks(
    manager: SessionManager, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = create_app(Settings(data_dir=tmp_path, api_key=SECRET), manager=manager)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            assert (await c.get("/health")).status_code == 200
            assert (await c.get("/ready")).status_code == 200
            denied = await c.get("/api/trading/status")
            assert denied.status_code == 401
            wrong = await c.get("/api/trading/status", headers={"X-API-Key": "nope"})
            assert wrong.status_code == 401
            ok = await c.get("/api/trading/status", headers={"X-API-Key": SECRET})
            assert ok.status_code == 200
            started = await c.post(
                "/api/trading/start-session", json=body(), headers={"X-API-Key": SECRET}
            )
            assert started.status_code == 202
            bodies = denied.text + wrong.text + ok.text + started.text
    out = capsys.readouterr()
    assert SECRET not in bodies
    assert SECRET not in out.out + out.err
