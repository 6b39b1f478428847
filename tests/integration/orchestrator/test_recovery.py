"""Sessions survive a killed component actor and a SIGKILLed server, without double orders."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from raytrader.backtesting.runner import run_backtest
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.sessions import SessionManager
from raytrader.state.stores import open_store

pytestmark = pytest.mark.asyncio


def config(seed: int, speed: float | None, n_bars: int = 700) -> dict[str, Any]:
    return {
        "name": f"recovery-{seed}",
        "agents": [{"name": "sma_cross", "params": {"fast": 4, "slow": 12}}],
        "initial_cash": 50_000,
        "broker": {"commission": {"bps": 10}},
        "portfolio": {"lot_size": 0.001},
        "feed": {
            "data": {"synthetic": {"kind": "single", "n_bars": n_bars, "seed": seed, "freq": "1h"}},
            "speed": speed,
        },
    }


def expected_fills(raw: dict[str, Any]) -> list[tuple[Any, ...]]:
    result = run_backtest(SessionConfig.model_validate(raw).as_backtest())
    return [(f.ts.isoformat(), f.side.value, f.quantity, f.price) for f in result.fills]


def fill_rows(fills: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(f["ts"], f["side"], f["quantity"], f["price"]) for f in fills]


async def test_killed_execution_actor_is_reloaded_and_the_session_carries_on(
    manager: SessionManager,
) -> None:
    raw = config(seed=21, speed=150.0)
    sid = await manager.start(SessionConfig.model_validate(raw))
    run = manager.runs[sid]
    deadline = time.monotonic() + 60
    while run.fills < 4:
        assert time.monotonic() < deadline, "session made no progress"
        await asyncio.sleep(0.05)
    ray.kill(manager.c.execution, no_restart=False)  # Ray restarts it, empty
    assert await manager.wait(sid, timeout=120) == "stopped"
    assert run.reason == "feed ended"
    assert run.recoveries >= 1
    assert fill_rows(await manager.fills(sid)) == expected_fills(raw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _start_server(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAYTRADER_DATA_DIR": str(data_dir), "RAYTRADER_LOG_JSON": "1"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "raytrader", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: SIGKILL takes Ray with it, like a pod
    )


async def _wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            if (await client.get("/ready")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.3)
    raise AssertionError("server not ready in 90 s")


async def test_sigkilled_server_resumes_sessions_without_double_orders(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "server.log"
    raws = [config(seed=31, speed=60.0), config(seed=32, speed=60.0)]
    proc = _start_server(tmp_path, port, log)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            await _wait_ready(client, proc)
            ids = []
            for raw in raws:
                resp = await client.post("/api/trading/start-session", json=raw)
                assert resp.status_code == 202, resp.text
                ids.append(resp.json()["session_id"])
            # Let both trade for a while, then pull the plug mid-session.
            deadline = time.monotonic() + 60
            while True:
                bars = [
                    (await client.get(f"/api/trading/sessions/{s}")).json()["bars"] for s in ids
                ]
                if min(bars) >= 250:
                    break
                assert time.monotonic() < deadline, f"too slow: {bars}"
                await asyncio.sleep(0.2)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

            proc = _start_server(tmp_path, port, log)
            await _wait_ready(client, proc)
            deadline = time.monotonic() + 120
            for sid in ids:
                while (await client.get(f"/api/trading/sessions/{sid}")).json()[
                    "status"
                ] != "stopped":
                    assert time.monotonic() < deadline, "resumed session did not finish"
                    await asyncio.sleep(0.3)
            for sid, raw in zip(ids, raws, strict=True):
                summary = (await client.get(f"/api/trading/sessions/{sid}")).json()
                assert summary["reason"] == "feed ended"
                fills = (await client.get(f"/api/trading/sessions/{sid}/fills")).json()
                assert fill_rows(fills) == expected_fills(raw)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of its Ray outlived it

    # The journal itself: every order announced once, every fill booked once.
    store = open_store(None, tmp_path)
    try:
        for sid in ids:
            orders = await store.read_journal(sid, "order")
            news = collections.Counter(e.key for e in orders if e.payload["status"] == "new")
            assert news and max(news.values()) == 1
            fills = await store.read_journal(sid, "fill")
            assert len({e.key for e in fills}) == len(fills)
            ledger = (await store.load_snapshot(sid, "checkpoint"))["book"]["ledger"]
            assert len([t for t in ledger["transactions"] if t["kind"] == "fill"]) == len(fills)
    finally:
        await store.close()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(e.get("event") == "session resumed" for e in lines)
