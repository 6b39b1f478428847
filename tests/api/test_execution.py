"""Execution endpoints: manual orders on a running session, idempotent and journaled first."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import ray

pytestmark = pytest.mark.asyncio

MISSING = "s-000000000000"


def order(sid: str, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "session_id": sid,
        "client_order_id": "ext-1",
        "symbol": "SYN",
        "side": "buy",
        "quantity": 10,
    }
    raw.update(over)
    return raw


async def test_market_order_fills_and_shows_in_the_portfolio(api: Any) -> None:
    sid = await api.start_session()
    before = (await api.client.get("/api/execution/portfolio", params={"session_id": sid})).json()
    assert before["cash"] == pytest.approx(100_000) and before["positions"] == []

    resp = await api.client.post("/api/execution/submit-order", json=order(sid))
    assert resp.status_code == 201, resp.text
    placed = resp.json()
    assert placed["created"] is True and placed["status"] == "accepted"
    assert placed["client_order_id"] == "ext-1" and placed["tag"] == "manual"

    filled = await api.order_in(sid, "ext-1", {"filled"})
    assert filled["filled_quantity"] == 10 and filled["avg_fill_price"] > 0

    async def holding() -> dict[str, Any] | None:
        resp = await api.client.get("/api/execution/portfolio", params={"session_id": sid})
        body: dict[str, Any] = resp.json()
        return body if body["positions"] else None

    after = await api.eventually(holding, what="a position")
    assert after["source"] == "live"
    (pos,) = after["positions"]
    assert pos["symbol"] == "SYN" and pos["quantity"] >= 10  # the agent may trade SYN too
    assert after["equity"] == pytest.approx(after["cash"] + after["market_value"])
    assert after["gross_exposure"] >= abs(after["net_exposure"])

    # Journaled before it was sent: new, then accepted, then filled.
    journal = await api.manager.c.state.read_journal.remote(sid, "order")
    statuses = [e.payload["status"] for e in journal if e.key == "ext-1"]
    assert statuses[:2] == ["new", "accepted"] and statuses[-1] == "filled"
    assert len(statuses) == len(set(statuses))  # never journaled twice


async def test_client_order_ids_are_idempotent(api: Any) -> None:
    sid = await api.start_session()
    first = await api.client.post("/api/execution/submit-order", json=order(sid))
    assert first.status_code == 201
    again = await api.client.post("/api/execution/submit-order", json=order(sid))
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False
    assert again.json()["ts"] == first.json()["ts"]

    clash = await api.client.post("/api/execution/submit-order", json=order(sid, quantity=11))
    assert clash.status_code == 409 and "different order" in clash.json()["detail"]

    await api.order_in(sid, "ext-1", {"filled"})
    journal = await api.manager.c.state.read_journal.remote(sid, "order")
    assert [e.payload["status"] for e in journal if e.key == "ext-1"].count("new") == 1
    fills = await api.manager.c.state.read_journal.remote(sid, "fill")
    assert len([f for f in fills if f.payload["client_order_id"] == "ext-1"]) == 1


async def test_concurrent_submissions_land_between_bars(api: Any) -> None:
    sid = await api.start_session(speed=None, n_bars=3000)  # the driver runs flat out
    resps = await asyncio.gather(
        *(
            api.client.post(
                "/api/execution/submit-order",
                json=order(sid, client_order_id=f"burst-{k}", quantity=1),
            )
            for k in range(12)
        )
    )
    assert {r.status_code for r in resps} == {201}, [r.text for r in resps]
    assert {r.json()["status"] for r in resps} == {"accepted"}
    fills = await api.eventually(
        lambda: _burst_fills(api, sid), what="a fill for every burst order"
    )
    assert sorted(fills) == sorted(f"burst-{k}" for k in range(12))


async def _burst_fills(api: Any, sid: str) -> list[str] | None:
    fills = await api.manager.c.state.read_journal.remote(sid, "fill")
    ids = [f.payload["client_order_id"] for f in fills]
    burst = [i for i in ids if i.startswith("burst-")]
    return burst if len(burst) >= 12 else None


async def test_risk_refuses_an_order_over_the_limits(api: Any) -> None:
    sid = await api.start_session()
    resp = await api.client.post(
        "/api/execution/submit-order", json=order(sid, client_order_id="big", quantity=1e7)
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["status"] == "rejected"
    assert body["reason"].startswith("max_position_weight: ") and body["reason"].endswith(
        " > 1.0000"
    )
    listed = await api.order(sid, "big")
    assert listed is not None and listed["status"] == "rejected"
    again = await api.client.post(
        "/api/execution/submit-order", json=order(sid, client_order_id="big", quantity=1e7)
    )
    assert again.status_code == 200 and again.json()["status"] == "rejected"


async def test_cancel_a_resting_order(api: Any) -> None:
    sid = await api.start_session()
    limit = order(sid, client_order_id="low", type="limit", limit_price=0.01, quantity=5)
    resp = await api.client.post("/api/execution/submit-order", json=limit)
    assert resp.status_code == 201, resp.text

    open_ = await api.client.get(
        "/api/execution/orders", params={"session_id": sid, "status": "open", "symbol": "SYN"}
    )
    assert "low" in [o["client_order_id"] for o in open_.json()["orders"]]

    cancel = {"session_id": sid, "client_order_id": "low"}
    done = await api.client.post("/api/execution/cancel-order", json=cancel)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"
    assert (await api.order(sid, "low"))["status"] == "cancelled"

    twice = await api.client.post("/api/execution/cancel-order", json=cancel)
    assert twice.status_code == 409 and "cancelled" in twice.json()["detail"]
    unknown = await api.client.post(
        "/api/execution/cancel-order", json={"session_id": sid, "client_order_id": "nope"}
    )
    assert unknown.status_code == 404

    closed = await api.client.get(
        "/api/execution/orders", params={"session_id": sid, "status": "closed"}
    )
    assert "low" in [o["client_order_id"] for o in closed.json()["orders"]]


async def test_an_order_survives_a_restarted_execution_actor(api: Any) -> None:
    sid = await api.start_session(speed=20.0)
    limit = order(sid, client_order_id="keep", type="limit", limit_price=0.01, quantity=5)
    assert (await api.client.post("/api/execution/submit-order", json=limit)).status_code == 201
    ray.kill(api.manager.c.execution, no_restart=False)

    async def recovered() -> bool:
        info = await api.info(sid)
        return bool(info["recoveries"] >= 1 and info["status"] == "running")

    await api.eventually(recovered, what="a recovery")
    await api.wait_bars(sid, 2)
    # Back in the restored book: it can still be cancelled there.
    done = await api.client.post(
        "/api/execution/cancel-order", json={"session_id": sid, "client_order_id": "keep"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "cancelled"


BAD_ORDERS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"type": "limit"}, ("limit_price",)),
    ({"type": "trailing_stop"}, ("type",)),  # needs trail fields: not an order type here
    ({"limit_price": 10.0}, ("limit_price",)),
    ({"type": "stop_limit", "limit_price": 10.0}, ("stop_price",)),
    ({"quantity": 0}, ("quantity",)),
    ({"quantity": -3}, ("quantity",)),
    ({"side": "hold"}, ("side",)),
    ({"symbol": "no spaces"}, ("symbol",)),
    ({"client_order_id": "{brace}"}, ("client_order_id",)),
    ({"colour": "red"}, ("colour",)),
    ({"session_id": "x"}, ("session_id",)),
]


async def test_bad_orders_are_422s_naming_the_field(api: Any) -> None:
    for over, names in BAD_ORDERS:
        resp = await api.client.post("/api/execution/submit-order", json=order(MISSING, **over))
        assert api.names(resp, "body", *names), (over, resp.text)


async def test_orders_that_do_not_fit_the_session(api: Any) -> None:
    sid = await api.start_session()
    other = await api.client.post("/api/execution/submit-order", json=order(sid, symbol="XYZ"))
    assert api.names(other, "body", "symbol") and "not traded" in other.text
    reserved = order(sid, client_order_id=f"{sid}-3-1")
    resp = await api.client.post("/api/execution/submit-order", json=reserved)
    assert api.names(resp, "body", "client_order_id")

    unknown = await api.client.post("/api/execution/submit-order", json=order(MISSING))
    assert unknown.status_code == 404

    await api.stop(sid)
    stopped = await api.client.post("/api/execution/submit-order", json=order(sid))
    assert stopped.status_code == 409 and "stopped" in stopped.json()["detail"]
    cancel = {"session_id": sid, "client_order_id": "ext-1"}
    assert (await api.client.post("/api/execution/cancel-order", json=cancel)).status_code == 409
    # A stopped session's portfolio comes from its final checkpoint.
    resp = await api.client.get("/api/execution/portfolio", params={"session_id": sid})
    assert resp.status_code == 200 and resp.json()["source"] == "checkpoint"


async def test_reads_of_unknown_sessions_are_404s(api: Any) -> None:
    for path in ("/api/execution/orders", "/api/execution/portfolio"):
        assert (await api.client.get(path, params={"session_id": MISSING})).status_code == 404
        bad = await api.client.get(path, params={"session_id": "nope"})
        assert api.names(bad, "query", "session_id")
    bad = await api.client.get(
        "/api/execution/orders", params={"session_id": MISSING, "status": "half"}
    )
    assert api.names(bad, "query", "status")


async def test_resting_sells_cannot_together_take_a_long_position_short(api: Any) -> None:
    # The agent never warms up, so nothing supersedes the orders under test.
    sid = await api.start_session(
        agents=[{"name": "sma_cross", "params": {"fast": 5, "slow": 10_000}}]
    )
    resp = await api.client.post(
        "/api/execution/submit-order", json=order(sid, client_order_id="long")
    )
    assert resp.status_code == 201, resp.text
    await api.order_in(sid, "long", {"filled"})
    px = float(api.manager.runs[sid].last_close["SYN"])
    high = {"type": "limit", "side": "sell", "limit_price": round(px * 10, 4)}
    first = await api.client.post(
        "/api/execution/submit-order", json=order(sid, client_order_id="out-1", **high)
    )
    assert first.status_code == 201 and first.json()["status"] == "accepted", first.text
    second = await api.client.post(
        "/api/execution/submit-order",
        json=order(sid, client_order_id="out-2", quantity=5, **high),
    )
    assert second.status_code == 201, second.text
    why = "short selling not allowed: position 10 - resting sells 10 - this sell 5 = -5"
    assert second.json()["status"] == "rejected" and second.json()["reason"] == why
    journal = await api.manager.c.state.read_journal.remote(sid, "order")
    assert [(e.payload["status"], e.payload["reason"]) for e in journal if e.key == "out-2"] == [
        ("rejected", why)
    ]
    assert (await api.order(sid, "out-1"))["status"] == "accepted"
    await api.stop(sid)
