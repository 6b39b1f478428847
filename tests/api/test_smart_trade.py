"""Smart trades: an entry with OCO take-profit / stop-loss exits on a running session."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.asyncio

MISSING = "s-000000000000"
# The agent's slow average never warms up within the session: it sends no signal, so
# nothing supersedes the trades under test.
QUIET = [{"name": "sma_cross", "params": {"fast": 5, "slow": 10_000}}]


def trade(sid: str, **over: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "session_id": sid,
        "client_order_id": "st-1",
        "symbol": "SYN",
        "side": "buy",
        "quantity": 10,
    }
    raw.update(over)
    return raw


def last_close(api: Any, sid: str) -> float:
    return float(api.manager.runs[sid].last_close["SYN"])


async def test_entry_fills_one_exit_fills_and_the_other_is_cancelled(api: Any) -> None:
    sid = await api.start_session(agents=QUIET)
    px = last_close(api, sid)
    body = trade(sid, take_profit=round(px * 1.003, 4), stop_loss=round(px * 0.997, 4))
    resp = await api.client.post("/api/trading/smart-trade", json=body)
    assert resp.status_code == 201, resp.text
    placed = resp.json()
    assert placed["created"] is True and placed["entry"]["status"] == "accepted"
    exits = {e["client_order_id"]: e for e in placed["exits"]}
    assert set(exits) == {"st-1-tp", "st-1-sl"}
    assert {e["status"] for e in exits.values()} == {"new"}  # held until the entry fills
    assert {e["oco_group"] for e in exits.values()} == {"st-1-oco"}
    assert {e["parent_id"] for e in exits.values()} == {"st-1"}
    assert exits["st-1-tp"]["type"] == "limit" and exits["st-1-tp"]["side"] == "sell"
    assert exits["st-1-sl"]["type"] == "stop" and exits["st-1-sl"]["side"] == "sell"

    again = await api.client.post("/api/trading/smart-trade", json=body)
    assert again.status_code == 200, again.text
    assert again.json()["created"] is False and again.json()["entry"]["ts"] == placed["entry"]["ts"]
    clash = await api.client.post("/api/trading/smart-trade", json={**body, "quantity": 11})
    assert clash.status_code == 409, clash.text

    entry = await api.order_in(sid, "st-1", {"filled"})
    assert entry["filled_quantity"] == 10

    async def one_exit_done() -> list[dict[str, Any]] | None:
        tp, sl = await api.order(sid, "st-1-tp"), await api.order(sid, "st-1-sl")
        assert tp is not None and sl is not None
        done = [o for o in (tp, sl) if o["status"] in ("filled", "cancelled")]
        return [tp, sl] if len(done) == 2 else None

    tp, sl = await api.eventually(one_exit_done, what="one exit filled, the other cancelled")
    filled, cancelled = (tp, sl) if tp["status"] == "filled" else (sl, tp)
    assert filled["status"] == "filled" and filled["filled_quantity"] == 10
    assert cancelled["status"] == "cancelled"
    assert cancelled["reason"] == "oco: st-1-oco filled"

    async def flat() -> dict[str, Any] | None:
        resp = await api.client.get("/api/execution/portfolio", params={"session_id": sid})
        out: dict[str, Any] = resp.json()
        return out if all(p["quantity"] == 0 for p in out["positions"]) else None

    await api.eventually(flat, what="a flat position")

    journal = await api.manager.c.state.read_journal.remote(sid, "order")
    seen = {
        cid: [e.payload["status"] for e in journal if e.key == cid]
        for cid in ("st-1", "st-1-tp", "st-1-sl")
    }
    assert seen["st-1"] == ["new", "accepted", "filled"]
    assert seen[filled["client_order_id"]] == ["new", "accepted", "filled"]
    assert seen[cancelled["client_order_id"]] == ["new", "accepted", "cancelled"]
    fills = await api.manager.c.state.read_journal.remote(sid, "fill")
    assert sorted({f.payload["client_order_id"] for f in fills}) == sorted(
        ["st-1", filled["client_order_id"]]
    )
    await api.stop(sid)


async def test_cancelling_the_entry_cancels_its_held_exits(api: Any) -> None:
    sid = await api.start_session(agents=QUIET)
    px = last_close(api, sid)
    body = trade(
        sid,
        client_order_id="far",
        type="limit",
        limit_price=round(px * 0.5, 4),
        take_profit=round(px * 0.6, 4),
        trail_percent=0.05,
    )
    resp = await api.client.post("/api/trading/smart-trade", json=body)
    assert resp.status_code == 201, resp.text
    exits = resp.json()["exits"]
    assert [e["client_order_id"] for e in exits] == ["far-tp", "far-ts"]
    assert exits[1]["type"] == "trailing_stop" and exits[1]["trail_percent"] == 0.05

    resp = await api.client.post(
        "/api/execution/cancel-order", json={"session_id": sid, "client_order_id": "far"}
    )
    assert resp.status_code == 200, resp.text
    for cid in ("far-tp", "far-ts"):
        child = await api.order(sid, cid)
        assert child is not None and child["status"] == "cancelled"
        assert child["reason"].startswith("bracket: entry far")
    assert api.manager.runs[sid].open_orders == {}
    await api.stop(sid)


async def test_bad_requests(api: Any) -> None:
    url = "/api/trading/smart-trade"
    missing = await api.client.post(url, json=trade(MISSING, stop_loss=1.0))
    assert missing.status_code == 404, missing.text

    sid = await api.start_session(agents=QUIET)
    px = last_close(api, sid)
    limit = {"type": "limit", "limit_price": round(px, 4)}
    cases = [
        (trade(sid, **limit, take_profit=round(px * 0.9, 4)), "take_profit"),
        (trade(sid, **limit, stop_loss=round(px * 1.1, 4)), "stop_loss"),
        (trade(sid, take_profit=round(px * 0.9, 4), stop_loss=round(px, 4)), "take_profit"),
        (trade(sid, side="sell", **limit, take_profit=round(px * 1.1, 4)), "take_profit"),
        (trade(sid), "trail_amount"),  # no exit at all
        (trade(sid, trail_percent=0.1, trail_amount=1.0), "trail_amount"),
        (trade(sid, trail_percent=1.5), "trail_percent"),
        (trade(sid, type="limit", stop_loss=1.0), "limit_price"),
        (trade(sid, type="stop", stop_loss=1.0), "type"),
        (trade(sid, symbol="NOPE", stop_loss=1.0), "symbol"),
        (trade(sid, client_order_id="s-mine", stop_loss=1.0), "client_order_id"),
        (trade(sid, client_order_id="x" * 62, stop_loss=1.0), "client_order_id"),
    ]
    for body, field in cases:
        resp = await api.client.post(url, json=body)
        assert api.names(resp, "body", field), (field, resp.text)
    journal = await api.manager.c.state.read_journal.remote(sid, "order")
    assert [e for e in journal if e.key == "st-1"] == []  # nothing reached the journal

    await api.stop(sid)
    stopped = await api.client.post(url, json=trade(sid, stop_loss=1.0))
    assert stopped.status_code == 409, stopped.text
