"""The kill switch in paper sessions over real actors: a replayed price path crashes through the
drawdown limit mid-session; the session halts with the reason, refuses orders, survives a
restart, and trades again once resumed through the API."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import pytest_asyncio

from raytrader.backtesting.runner import run_backtest
from raytrader.data.loaders import save_ohlcv
from raytrader.domain import OrderStatus, Side
from raytrader.orchestrator.api.app import create_app
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.control import ManualOrder, submit_order
from raytrader.orchestrator.sessions import SessionError, SessionManager
from raytrader.settings import Settings

pytestmark = pytest.mark.asyncio

CRASH = 60  # the bar whose close crosses the drawdown limit
SYMBOL = "CRASH"


def crash_path(n: int) -> pd.DataFrame:
    """A dip, a steady rise (the agent goes long), a 20% crash at bar CRASH, then waves (the
    agent keeps crossing, so it keeps sending orders)."""
    i = np.arange(n, dtype=float)
    close = np.where(i < 15, 100.0 - 0.15 * i, 97.75 * 1.004 ** (i - 15))
    after = i > CRASH
    crashed = 0.8 * close[CRASH - 1]
    close[CRASH] = crashed
    close[after] = crashed * (1.0 + 0.05 * np.sin(2 * math.pi * (i[after] - CRASH) / 20.0))
    index = pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1e6}, index=index
    )


def session_body(path: Path, speed: float | None, flatten: bool = True) -> dict[str, Any]:
    return {
        "name": "kill-switch",
        "agents": [{"name": "sma_cross", "params": {"fast": 3, "slow": 8, "weight": 0.9}}],
        # The agent's 0.9 leaves room for a manual buy while it is long.
        "initial_cash": 100_000,
        "broker": {"commission": {"bps": 5}},
        "portfolio": {
            "lot_size": 0.001,
            "kill_switch": {"max_drawdown": 0.1, "flatten": flatten},
        },
        "feed": {"data": {"path": str(path)}, "speed": speed},
    }


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    return save_ohlcv(crash_path(2_000), tmp_path / "data" / f"{SYMBOL}.csv")


@pytest_asyncio.fixture
async def client(manager: SessionManager, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path), manager=manager)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 90.0, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def events(mgr: SessionManager, sid: str) -> list[dict[str, Any]]:
    return [e for _, e in await mgr.read_events(sid, None, 1_000_000, None)]


def manual(sid: str, cid: str, side: str = "buy", quantity: float = 10.0) -> dict[str, Any]:
    return {
        "session_id": sid,
        "client_order_id": cid,
        "symbol": SYMBOL,
        "side": side,
        "quantity": quantity,
    }


async def test_a_crash_halts_the_session_until_it_is_resumed_through_the_api(
    client: httpx.AsyncClient, manager: SessionManager, data_path: Path
) -> None:
    resp = await client.post("/api/trading/start-session", json=session_body(data_path, 40.0))
    assert resp.status_code == 202, resp.text
    sid = resp.json()["session_id"]

    async def halted() -> dict[str, Any] | None:
        info: dict[str, Any] = (await client.get(f"/api/trading/sessions/{sid}")).json()
        return info if info["status"] == "halted" else None

    info = await eventually(halted, what="the halt")
    reason = info["reason"]
    assert reason.startswith("max_drawdown: ") and reason.endswith(")") and " > 0.1000 " in reason
    status = (await client.get("/api/trading/status")).json()
    assert [s["status"] for s in status["sessions"] if s["id"] == sid] == ["halted"]

    # The events: a risk event with the reason, then the status event.
    evs = await events(manager, sid)
    (halt,) = [e for e in evs if e["type"] == "risk" and e.get("action") == "halt"]
    assert halt["reason"] == reason and halt["bar"] == CRASH
    assert halt["equity"] < 0.9 * halt["high_water"]
    assert {"type": "status", "status": "halted", "reason": reason} in evs
    crash_ts = pd.Timestamp(halt["ts"])

    # Flattened: sold at the next open; the position is gone.
    (flat,) = halt["flatten"]
    assert flat["side"] == "sell" and flat["tag"] == "kill switch: flatten"
    fill_rows = await eventually(
        lambda: _fills_of(client, sid, flat["client_order_id"]), what="the flattening fill"
    )
    assert pd.Timestamp(fill_rows[0]["ts"]) == crash_ts + pd.Timedelta(hours=1)
    positions = (await client.get(f"/api/trading/sessions/{sid}/positions")).json()
    assert all(p["quantity"] == 0 for p in positions.values())

    # A manual order is refused with the halt's reason, and journaled.
    resp = await client.post("/api/execution/submit-order", json=manual(sid, "while-halted"))
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] == "rejected"
    assert resp.json()["reason"] == f"halted: {reason}"
    # So are the agent's orders (the price keeps waving: the averages keep crossing).

    async def agent_refused() -> list[dict[str, Any]]:
        orders = (await client.get(f"/api/trading/sessions/{sid}/orders")).json()
        return [
            o
            for o in orders
            if o["reason"] == f"halted: {reason}" and o["order"]["client_order_id"].startswith(sid)
        ]

    refused = await eventually(agent_refused, what="a refused agent order")
    assert all(o["status"] == "rejected" for o in refused)
    # No fill after the flattening while halted.
    fills = (await client.get(f"/api/trading/sessions/{sid}/fills")).json()
    assert max(pd.Timestamp(f["ts"]) for f in fills) == crash_ts + pd.Timedelta(hours=1)

    # Resume: 404 unknown, then resumed, then 409 (no longer halted).
    bad = await client.post("/api/trading/resume-session", json={"session_id": "nope"})
    assert bad.status_code == 422  # not a session id
    unknown = await client.post(
        "/api/trading/resume-session", json={"session_id": "s-000000000000"}
    )
    assert unknown.status_code == 404, unknown.text
    resp = await client.post("/api/trading/resume-session", json={"session_id": sid})
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"session_id": sid, "status": "running"}
    again = await client.post("/api/trading/resume-session", json={"session_id": sid})
    assert again.status_code == 409 and "not halted" in again.json()["detail"]
    info = (await client.get(f"/api/trading/sessions/{sid}")).json()
    assert info["status"] == "running" and info["reason"] == ""
    evs = await events(manager, sid)
    assert {"type": "status", "status": "running", "reason": f"resumed after: {reason}"} in evs

    # Trading continues: a manual order passes and fills, and so do the agent's orders.
    resp = await client.post("/api/execution/submit-order", json=manual(sid, "after-resume"))
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] in {"accepted", "filled"}, resp.json()["reason"]

    async def manual_done() -> dict[str, Any] | None:
        orders = (await client.get(f"/api/trading/sessions/{sid}/orders")).json()
        (o,) = [o for o in orders if o["order"]["client_order_id"] == "after-resume"]
        return o if o["status"] not in {"new", "accepted", "partially_filled"} else None

    done = await eventually(manual_done, what="the manual order to be done")
    # Filled at the next open, unless a signal of the agent for the symbol superseded it there.
    assert done["status"] == "filled" or (
        done["status"] == "cancelled" and done["reason"] == "superseded by a new signal"
    ), done

    async def agent_filled_after_resume() -> list[dict[str, Any]]:
        fills = (await client.get(f"/api/trading/sessions/{sid}/fills")).json()
        return [
            f
            for f in fills
            if f["client_order_id"].startswith(sid)
            and "halt" not in f["client_order_id"]
            and pd.Timestamp(f["ts"]) > crash_ts + pd.Timedelta(hours=1)
        ]

    await eventually(agent_filled_after_resume, what="an agent fill after the resume")
    resp = await client.post("/api/trading/stop-session", json={"session_id": sid})
    assert resp.status_code == 200
    assert await manager.wait(sid, timeout=60) == "stopped"


async def _fills_of(client: httpx.AsyncClient, sid: str, cid: str) -> list[dict[str, Any]]:
    fills = (await client.get(f"/api/trading/sessions/{sid}/fills")).json()
    return [f for f in fills if f["client_order_id"] == cid]


async def test_a_halted_session_stays_halted_across_a_restart(
    manager: SessionManager, data_path: Path
) -> None:
    config = SessionConfig.model_validate(session_body(data_path, 40.0, flatten=False))
    sid = await manager.start(config)
    run = manager.runs[sid]
    await eventually(lambda: _true(run.status == "halted"), what="the halt")
    reason = run.reason
    await manager.shutdown()  # the server goes away; the store keeps the session

    restarted = SessionManager(manager.c)
    try:
        assert sid in await restarted.resume_all()
        again = restarted.runs[sid]

        async def driven_and_halted() -> bool:
            record = await restarted.record(sid)
            return (
                again.status == "halted"
                and sid in restarted._ticking
                and (record.status == "halted")
            )

        await eventually(driven_and_halted, what="the halted session to be driven again")
        assert again.reason == reason and again.kill.halted
        # Not flattened: the position is still held, and orders are still refused.
        assert any(q != 0 for q in again.account.positions.values())
        order = ManualOrder("after-restart", SYMBOL, Side.BUY, 1.0)
        state, _ = await submit_order(restarted, sid, order)
        assert state.status is OrderStatus.REJECTED and state.reason == f"halted: {reason}"
        assert await restarted.resume(sid) == "running"
        with pytest.raises(SessionError, match="is running, not halted"):
            await restarted.resume(sid)
        sell = ManualOrder("resumed", SYMBOL, Side.SELL, 1.0)
        state, _ = await submit_order(restarted, sid, sell)
        assert state.status is OrderStatus.ACCEPTED
        assert not again.kill.halted
        assert (await restarted.record(sid)).status == "running"
        await restarted.stop(sid)
        assert await restarted.wait(sid, timeout=60) == "stopped"
    finally:
        await restarted.shutdown()


async def _true(value: bool) -> bool:
    return value


async def test_a_replayed_session_with_a_kill_switch_trades_as_its_backtest(
    manager: SessionManager, tmp_path: Path
) -> None:
    path = save_ohlcv(crash_path(200), tmp_path / "parity" / f"{SYMBOL}.csv")
    config = SessionConfig.model_validate(session_body(path, None))
    backtest = run_backtest(config.as_backtest())
    assert backtest.halted is not None and backtest.halted[0] == crash_path(200).index[CRASH]

    sid = await manager.start(config)
    assert await manager.wait(sid, timeout=300) == "stopped"
    fills = await manager.fills(sid)
    assert [(f["ts"], f["side"], f["quantity"], f["price"]) for f in fills] == [
        (f.ts.isoformat(), f.side.value, f.quantity, f.price) for f in backtest.fills
    ]
    orders = await manager.orders(sid)
    session_refused = sorted(
        (o["updated"], o["reason"]) for o in orders if o["status"] == "rejected"
    )
    backtest_refused = sorted(
        (st.updated.isoformat() if st.updated else None, st.reason)
        for st in backtest.journal
        if st.status.value == "rejected"
    )
    assert session_refused == backtest_refused and len(session_refused) >= 2
    assert all(why.startswith("halted: max_drawdown: ") for _, why in session_refused)
    evs = await events(manager, sid)
    halts = [e for e in evs if e.get("status") == "halted"]
    assert [e["reason"] for e in halts] == [backtest.halted[1]]
