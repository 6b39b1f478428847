"""Sessions on the Redis store: the same trades as the backtest, events in a Redis stream."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import ray

from raytrader.backtesting.runner import run_backtest
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.runtime import start_components
from raytrader.orchestrator.sessions import SessionManager
from raytrader.state.stores import open_store

pytestmark = pytest.mark.asyncio


async def test_a_session_on_redis_matches_the_backtest_and_resumes_nothing_twice(
    ray_runtime: None, redis_url: str, tmp_path: Path
) -> None:
    prefix = f"rt-test-{uuid.uuid4().hex[:8]}:"
    config = SessionConfig.model_validate(
        {
            "name": "on-redis",
            "agents": [{"name": "rsi_reversion", "params": {"period": 7}}],
            "initial_cash": 30_000,
            "broker": {"commission": {"bps": 5}, "slippage": {"bps": 2}},
            "portfolio": {"lot_size": 0.01},
            "feed": {"data": {"synthetic": {"kind": "single", "n_bars": 500, "seed": 12}}},
        }
    )
    components = start_components(
        redis_url, str(tmp_path), prefix=f"r{uuid.uuid4().hex[:8]}", store_prefix=prefix
    )
    manager = SessionManager(components)
    try:
        sid = await manager.start(config)
        assert await manager.wait(sid, timeout=120) == "stopped"
        fills = await manager.fills(sid)
        backtest = run_backtest(config.as_backtest())
        assert [(f["ts"], f["quantity"], f["price"]) for f in fills] == [
            (f.ts.isoformat(), f.quantity, f.price) for f in backtest.fills
        ]
        assert len(fills) > 4
        # A second manager on the same store finds nothing left to resume.
        assert await SessionManager(components).resume_all() == []
    finally:
        await manager.shutdown()
        for handle in components.handles().values():
            ray.kill(handle, no_restart=True)

    store = open_store(redis_url, tmp_path, prefix=prefix)
    try:
        record = await store.get_session(sid)
        assert record is not None and record.status == "stopped"
        events = await store.read_events(sid, None, 100_000)
        assert sum(e["type"] == "equity" for _, e in events) == 500
        assert sum(e["type"] == "fill" for _, e in events) == len(fills)
    finally:
        await store.delete_session(sid)
        await store.close()
