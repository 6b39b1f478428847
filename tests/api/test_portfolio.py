"""Portfolio endpoints: orders for targets, desired vs held, rebalances and their schedule."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from raytrader.portfolio.reconcile import reconcile
from raytrader.portfolio.schedule import RebalanceSchedule

pytestmark = pytest.mark.asyncio

ORDERS = "/api/portfolio/generate-orders"
DESIRED = "/api/portfolio/desired-state"
REBALANCE = "/api/portfolio/trigger-rebalance"
SCHEDULE = "/api/portfolio/update-rebalance-schedule"
MISSING = "s-000000000000"


async def test_generate_orders_for_targets(api: Any) -> None:
    req = {
        "account": {"cash": 1_000, "positions": {"A": 100}},
        "prices": {"A": 100, "B": 50, "C": 20},
        "targets": {"A": 0.25, "B": 0.5},
        "signals": [{"symbol": "C", "quantity": 10, "order_type": "limit", "limit_price": 19}],
        "portfolio": {"lot_size": 1},
    }
    resp = await api.client.post(ORDERS, json=req)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["account"] == {"cash": 1_000, "equity": 11_000, "gross_exposure": 10_000}
    got = [(o["symbol"], o["side"], o["quantity"], o["type"]) for o in body["orders"]]
    # Sells first (their cash funds the buys); A's target is 2750 / 100 -> 27 units.
    assert got == [
        ("A", "sell", 73, "market"),
        ("C", "buy", 10, "limit"),
        ("B", "buy", 110, "market"),
    ]
    assert body["orders"][1]["limit_price"] == 19
    assert all(o["risk_passed"] for o in body["orders"])
    assert body["adjustments"] == []

    short = {**req, "targets": {"A": -0.5}, "signals": []}
    cut = (await api.client.post(ORDERS, json=short)).json()
    assert cut["orders"][0]["quantity"] == 100  # sell down to flat, not short
    assert cut["adjustments"][0]["reason"] == "short selling not allowed"

    poor = {
        "account": {"cash": 100, "positions": {}},
        "prices": {"A": 10},
        "targets": {"A": 1.0},
        "check_risk": False,
    }
    body = (await api.client.post(ORDERS, json=poor)).json()
    assert body["orders"][0]["risk_passed"] is None


async def test_generate_orders_errors(api: Any) -> None:
    c = api.client
    acct = {"cash": 1000}
    assert api.names(await c.post(ORDERS, json={"account": acct}), "body", "signals")
    assert api.names(await c.post(ORDERS, json={"targets": {"A": 1}}), "body", "account")
    over = {"account": acct, "targets": {"A": 11}}
    assert api.names(await c.post(ORDERS, json=over), "body", "targets", "A")
    both = {"account": acct, "signals": [{"symbol": "A", "weight": 1, "quantity": 2}]}
    assert api.names(await c.post(ORDERS, json=both), "signals", "0", "quantity")
    stop = {"account": acct, "signals": [{"symbol": "A", "order_type": "stop"}]}
    assert api.names(await c.post(ORDERS, json=stop), "signals", "0", "stop_price")
    atr = {
        "account": acct,
        "prices": {"A": 10},
        "signals": [{"symbol": "A", "direction": 1}],
        "portfolio": {"sizing": {"method": "atr_risk"}},
    }
    assert api.names(await c.post(ORDERS, json=atr), "body", "atr")
    sized = await c.post(ORDERS, json={**atr, "atr": {"A": 0.5}})
    assert sized.status_code == 200, sized.text
    assert sized.json()["orders"][0]["quantity"] == 2  # 1000 x 0.001 / 0.5
    unknown = await c.post(ORDERS, json={"session_id": MISSING, "targets": {"A": 1}})
    assert unknown.status_code == 404


async def test_desired_state(api: Any) -> None:
    req = {
        "account": {"cash": 5_000, "positions": {"A": 50, "Z": 3}},
        "prices": {"A": 100, "B": 10},
        "targets": {"A": 0.2, "B": 0.1},
        "portfolio": {"lot_size": 1},
    }
    resp = await api.client.post(DESIRED, json=req)
    assert resp.status_code == 200, resp.text
    rows = {r["symbol"]: r for r in resp.json()["rows"]}
    assert rows["A"]["held"] == 50 and rows["A"]["target"] == 20 and rows["A"]["delta"] == -30
    assert rows["A"]["held_weight"] == pytest.approx(0.5)
    assert rows["A"]["target_weight"] == pytest.approx(0.2)
    assert rows["B"]["target"] == 100 and rows["B"]["held"] == 0
    assert rows["Z"]["target"] == 3 and rows["Z"]["delta"] == 0 and rows["Z"]["price"] is None
    # Without a session nothing is in flight: the gap is the delta.
    assert rows["A"]["desired"] == 20 and rows["A"]["in_flight"] == 0 and rows["A"]["gap"] == -30
    assert rows["A"]["flags"] == ["over"] and rows["B"]["flags"] == ["under"]
    assert rows["Z"]["desired"] is None and rows["Z"]["flags"] == [] and rows["Z"]["gap"] == 0


async def test_desired_state_reconciles_working_orders(api: Any) -> None:
    sid = await api.start_session(
        agents=[{"name": "sma_cross", "params": {"fast": 500, "slow": 900}}],
        portfolio={"lot_size": 0.001, "limits": {"allow_short": True}},
    )
    submit = "/api/execution/submit-order"
    for cid, side, qty, price in (("low-buy", "buy", 30, 0.01), ("high-sell", "sell", 5, 1e8)):
        order = {"session_id": sid, "symbol": "SYN", "side": side, "quantity": qty,
                 "type": "limit", "limit_price": price, "client_order_id": cid}  # fmt: skip
        assert (await api.client.post(submit, json=order)).status_code == 201
    for cid in ("low-buy", "high-sell"):
        await api.order_in(sid, cid, {"new", "accepted"})

    resp = await api.client.post(DESIRED, json={"session_id": sid, "targets": {"SYN": 0.001}})
    assert resp.status_code == 200, resp.text
    (row,) = resp.json()["rows"]
    assert row["held"] == 0 and row["in_flight"] == 25  # 30 to buy, 5 to sell
    assert row["desired"] == row["target"] > 0
    rec = reconcile({"SYN": row["desired"]}, {}, {"SYN": 25}).row("SYN")
    assert row["gap"] == pytest.approx(rec.gap) and row["flags"] == sorted(rec.flags)
    assert row["flags"] == ["over", "overshoot"]  # 25 in flight, about 1 wanted

    # No target for SYN (it keeps what it holds: nothing): its working buy is an orphan
    # that works against that.
    flat = await api.client.post(
        "/api/execution/cancel-order", json={"session_id": sid, "client_order_id": "high-sell"}
    )
    assert flat.status_code == 200, flat.text
    orphan = await api.client.post(
        DESIRED, json={"session_id": sid, "signals": [{"symbol": "XYZ", "weight": 0.1}],
                       "prices": {"XYZ": 10}},
    )  # fmt: skip
    assert orphan.status_code == 200, orphan.text
    rows = {r["symbol"]: r for r in orphan.json()["rows"]}
    assert rows["SYN"]["desired"] is None and rows["SYN"]["in_flight"] == 30
    assert rows["SYN"]["target"] == 0 and rows["SYN"]["gap"] == -30
    assert rows["SYN"]["flags"] == ["against", "orphan", "over"]
    assert rows["XYZ"]["flags"] == ["under"] and rows["XYZ"]["in_flight"] == 0
    await api.stop(sid)


async def test_rebalance_a_running_session(api: Any) -> None:
    sid = await api.start_session(
        agents=[{"name": "sma_cross", "params": {"fast": 500, "slow": 900}}]
    )
    resp = await api.client.post(REBALANCE, json={"session_id": sid, "targets": {"SYN": 0.5}})
    assert resp.status_code == 202, resp.text
    assert resp.json()["queued"] == [{"symbol": "SYN", "weight": 0.5}]

    async def held() -> dict[str, Any] | None:
        resp = await api.client.get("/api/execution/portfolio", params={"session_id": sid})
        body: dict[str, Any] = resp.json()
        return body if body["positions"] else None

    body = await api.eventually(held, what="the rebalance to fill")
    assert body["positions"][0]["weight"] == pytest.approx(0.5, abs=0.03)

    desired = await api.client.post(DESIRED, json={"session_id": sid, "targets": {"SYN": 0.25}})
    assert desired.status_code == 200, desired.text
    (row,) = desired.json()["rows"]
    assert row["target_weight"] == pytest.approx(0.25, abs=0.01) and row["delta"] < 0
    orders = await api.client.post(ORDERS, json={"session_id": sid, "targets": {"SYN": 0.0}})
    assert orders.status_code == 200, orders.text
    assert orders.json()["orders"][0]["side"] == "sell"

    flat = await api.client.post(
        REBALANCE, json={"session_id": sid, "targets": {"SYN": 0.0}, "close_others": True}
    )
    assert flat.status_code == 202

    other = await api.client.post(REBALANCE, json={"session_id": sid, "targets": {"XYZ": 0.1}})
    assert api.names(other, "body", "targets")
    assert api.names(
        await api.client.post(REBALANCE, json={"session_id": sid, "targets": {}}), "targets"
    )
    gone = await api.client.post(REBALANCE, json={"session_id": MISSING, "targets": {"SYN": 0.1}})
    assert gone.status_code == 404
    await api.stop(sid)
    late = await api.client.post(REBALANCE, json={"session_id": sid, "targets": {"SYN": 0.1}})
    assert late.status_code == 409


async def test_rebalance_schedule(api: Any) -> None:
    sid = await api.start_session()
    read = "/api/portfolio/rebalance-schedule"
    assert (await api.client.get(read, params={"session_id": sid})).status_code == 404
    sched = {"session_id": sid, "frequency": "monthly", "weekday": 2, "week_of_month": 2}
    resp = await api.client.post(SCHEDULE, json=sched)
    assert resp.status_code == 200, resp.text
    stored = (await api.client.get(read, params={"session_id": sid})).json()
    assert stored["schedule"]["frequency"] == "monthly" and stored["schedule"]["enabled"] is True
    assert stored["updated"] == resp.json()["updated"]

    assert stored["schedule"]["on_missed"] == "next_bar"  # the default
    timing = RebalanceSchedule.from_stored(stored)
    assert (timing.kind, timing.weekday, timing.nth) == ("monthly", 2, 2)

    last = {"session_id": sid, "kind": "monthly", "weekday": 4, "nth": "last", "on_missed": "skip"}
    resp = await api.client.post(SCHEDULE, json=last)
    assert resp.status_code == 200, resp.text
    stored = (await api.client.get(read, params={"session_id": sid})).json()
    assert stored["schedule"]["frequency"] == "monthly"
    assert stored["schedule"]["week_of_month"] == "last"
    timing = RebalanceSchedule.from_stored(stored)
    assert (timing.kind, timing.weekday, timing.nth, timing.on_missed) == (
        "monthly",
        4,
        "last",
        "skip",
    )
    assert [d.day for d in timing.scheduled_dates(date(2024, 1, 1), date(2024, 3, 31))] == [
        26,
        23,
        29,
    ]  # the last Fridays
    weekly = await api.client.post(SCHEDULE, json={"session_id": sid, "week_of_month": "last"})
    assert weekly.json()["schedule"]["frequency"] == "weekly"

    bad = await api.client.post(SCHEDULE, json={**sched, "weekday": 7})
    assert api.names(bad, "body", "weekday")
    for over, name in (
        ({"week_of_month": "first"}, "week_of_month"),
        ({"week_of_month": 6}, "week_of_month"),
        ({"nth": 0}, "nth"),
        ({"on_missed": "later"}, "on_missed"),
        ({"kind": "hourly"}, "kind"),
        ({"kind": "daily"}, "kind"),  # and frequency: both
        ({"nth": 1}, "nth"),  # and week_of_month
    ):
        resp = await api.client.post(SCHEDULE, json={**sched, **over})
        assert api.names(resp, "body", name), (over, resp.text)
    unknown = await api.client.post(SCHEDULE, json={**sched, "session_id": MISSING})
    assert unknown.status_code == 404
    await api.stop(sid)
    assert (await api.client.post(SCHEDULE, json=sched)).status_code == 409
