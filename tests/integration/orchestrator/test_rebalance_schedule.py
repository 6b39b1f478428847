"""Rebalance schedules acted on by paper sessions over real actors, changed at run time and
across a restart; capital weights in a session trade as in the backtest."""

from __future__ import annotations

import asyncio
import collections
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
from raytrader.orchestrator.api.app import create_app
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.control import put_schedule
from raytrader.orchestrator.sessions import SessionError, SessionManager
from raytrader.portfolio.schedule import RebalanceSchedule
from raytrader.settings import Settings

pytestmark = pytest.mark.asyncio

# 480 hourly bars from Monday 2016-01-04 00:00 UTC to Saturday 2016-01-23 23:00.
DATA = {"synthetic": {"kind": "universe", "n_bars": 480, "seed": 9, "n_symbols": 3, "freq": "1h"}}


def session_body(speed: float | None) -> dict[str, Any]:
    return {
        "name": "scheduled",
        "agents": [{"name": "sma_cross", "params": {"fast": 5, "slow": 20}}],
        "initial_cash": 100_000,
        "broker": {"commission": {"bps": 5}},
        "portfolio": {"lot_size": 0.001},
        "feed": {"data": DATA, "speed": speed},
    }


def schedule_body(
    sid: str, frequency: str, weekday: int = 2, targets: dict[str, float] | None = None
) -> dict[str, Any]:
    return {"session_id": sid, "frequency": frequency, "weekday": weekday, "targets": targets}


@pytest_asyncio.fixture
async def client(manager: SessionManager, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path), manager=manager)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def eventually(
    probe: Callable[[], Awaitable[Any]], timeout: float = 120.0, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def events(mgr: SessionManager, sid: str) -> list[dict[str, Any]]:
    return [e for _, e in await mgr.read_events(sid, None, 10_000_000, None)]


def expected_due(index: pd.DatetimeIndex, changes: list[dict[str, Any]]) -> set[int]:
    """The due bars of the schedules in force bar by bar (each from its ``from_bar``)."""
    due = np.zeros(len(index), dtype=bool)
    starts = [c["from_bar"] for c in changes]
    for change, start, end in zip(changes, starts, [*starts[1:], len(index)], strict=True):
        schedule = RebalanceSchedule.model_validate(change["schedule"])
        due[start:end] = schedule.due_bars(index)[start:end]
    return {int(i) for i in np.flatnonzero(due)}


async def test_a_schedule_changed_at_run_time_and_across_a_restart_rebalances_on_the_due_bars(
    manager: SessionManager, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    resp = await client.post("/api/trading/start-session", json=session_body(speed=25.0))
    assert resp.status_code == 202, resp.text
    sid = resp.json()["session_id"]
    run = manager.runs[sid]

    # Weekly on Tuesdays, to fixed weights.
    targets = {"S00": 0.3, "S01": 0.2}
    resp = await client.post(
        "/api/portfolio/update-rebalance-schedule",
        json=schedule_body(sid, "weekly", 1, targets),
    )
    assert resp.status_code == 200, resp.text
    # A target the session does not trade is refused, and changes nothing.
    bad = await client.post(
        "/api/portfolio/update-rebalance-schedule",
        json=schedule_body(sid, "daily", targets={"NOPE": 0.1}),
    )
    assert bad.status_code == 422 and "NOPE" in bad.text
    assert run.schedule == RebalanceSchedule(kind="weekly", weekday=1)

    async def past(bar: int, mgr: SessionManager = manager) -> bool:
        return mgr.runs[sid].last_bar >= bar

    # After Tuesday's first bar (bar 24): daily, to other weights.
    await eventually(lambda: past(60), what="bar 60")
    resp = await client.post(
        "/api/portfolio/update-rebalance-schedule",
        json=schedule_body(sid, "daily", targets={"S00": 0.25, "S02": 0.1}),
    )
    assert resp.status_code == 200, resp.text
    got = await client.get("/api/portfolio/rebalance-schedule", params={"session_id": sid})
    assert got.json()["schedule"]["frequency"] == "daily"
    await eventually(lambda: past(150), what="bar 150")

    # The server goes away mid-day and comes back: the session resumes on the daily schedule
    # from its checkpoint, with the previous bar's time (a lost one would make the first bar
    # after the restart due whatever its hour).
    await manager.shutdown()
    restarted = SessionManager(manager.c)
    try:
        assert sid in await restarted.resume_all()
        await eventually(lambda: past(300, restarted), what="bar 300 after the restart")
        assert restarted.runs[sid].prev_ts is not None
        # Thursdays, to the agents' latest targets.
        record = {
            "session_id": sid,
            "schedule": {
                "frequency": "weekly",
                "weekday": 3,
                "week_of_month": 2,
                "targets": None,
                "enabled": True,
            },
            "updated": "2024-01-01T00:00:00Z",
        }
        await put_schedule(restarted, sid, record)
        assert await restarted.wait(sid, timeout=300) == "stopped"
        assert restarted.runs[sid].reason == "feed ended"
        with pytest.raises(SessionError, match="is stopped; its schedule cannot change"):
            await put_schedule(restarted, sid, record)

        evs = await events(restarted, sid)
        changes = [e for e in evs if e["type"] == "schedule"]
        assert [c["schedule"]["kind"] for c in changes] == ["weekly", "daily", "weekly"]
        assert 24 < changes[1]["from_bar"] <= 150 < changes[2]["from_bar"] <= 408
        index = SessionConfig.model_validate(session_body(None)).data_spec().load().index
        want = expected_due(index, changes)
        rebalances = [e for e in evs if e["type"] == "rebalance"]
        assert {e["bar"] for e in rebalances} == want
        # Tuesday 5 January, then the first bar of every day, then Thursday 21 January.
        assert 24 in want and 408 in want and all(index[b].hour == 0 for b in want)
        assert len(want) >= 8

        # With targets: weight signals that win at the next open, as a manual rebalance.
        by_bar = {e["bar"]: e for e in rebalances}
        for bar in want:
            e = by_bar[bar]
            if bar < changes[2]["from_bar"]:
                assert e["targets"] and {s["agent"] for s in e["signals"]} == {-1}
                assert {s["symbol"]: s["weight"] for s in e["signals"]} == e["targets"]
                assert all(s["reason"] == "scheduled rebalance" for s in e["signals"])
            else:  # the agents' latest signals, sent again
                assert e["targets"] is None and e["signals"]
                assert {s["agent"] for s in e["signals"]} == {0}
        orders = await restarted.orders(sid)
        scheduled = [o for o in orders if o["order"]["tag"] == "scheduled rebalance"]
        assert scheduled
        for o in scheduled:
            placed = int(index.get_loc(pd.Timestamp(o["order"]["ts"])))
            assert placed - 1 in want and placed - 1 < changes[2]["from_bar"]
        # Each order announced once, across the restart.
        journal = await restarted.c.state.read_journal.remote(sid, "order")
        news = collections.Counter(e.key for e in journal if e.payload["status"] == "new")
        assert news and max(news.values()) == 1
    finally:
        await restarted.shutdown()


def capital_config() -> SessionConfig:
    return SessionConfig.model_validate(
        {
            "name": "shared",
            "agents": [
                {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
                {"name": "sma_cross", "params": {"fast": 3, "slow": 40, "allow_short": True}},
            ],
            "initial_cash": 100_000,
            "broker": {"commission": {"bps": 10, "minimum": 1}, "slippage": {"bps": 3}},
            "portfolio": {
                "lot_size": 0.01,
                "capital": {"0": 0.6, "1": 0.4},
                "limits": {"allow_short": True},
            },
            "feed": {
                "data": {"synthetic": {"kind": "single", "n_bars": 600, "seed": 3, "freq": "1h"}}
            },
        }
    )


async def test_a_replayed_session_with_capital_weights_matches_the_backtest(
    manager: SessionManager,
) -> None:
    config = capital_config()
    backtest = run_backtest(config.as_backtest())
    assert len(backtest.fills) > 5
    assert any(o.order.tag.startswith("net: ") for o in backtest.orders)
    assert backtest.attribution is not None
    assert (backtest.attribution[["0", "1"]] != 0).any().all()

    sid = await manager.start(config)
    assert await manager.wait(sid, timeout=300) == "stopped"
    fills = await manager.fills(sid)
    got = [
        (f["ts"], f["symbol"], f["side"], f["quantity"], f["price"], f["commission"]) for f in fills
    ]
    want = [
        (f.ts.isoformat(), f.symbol, f.side.value, f.quantity, f.price, f.commission)
        for f in backtest.fills
    ]
    assert got == want
    pd.testing.assert_series_equal(
        manager.equity_series(sid),
        backtest.equity,
        check_names=False,
        check_freq=False,
        rtol=0,
        atol=0,
        check_index_type=False,
    )
    orders = await manager.orders(sid)
    assert sorted(o["order"]["tag"] for o in orders) == sorted(o.order.tag for o in backtest.orders)
