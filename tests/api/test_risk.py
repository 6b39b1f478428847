"""Risk endpoints: position sizing, pre-trade limit checks, a session's portfolio risk."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from raytrader.orchestrator.api.risk import historical_var

pytestmark = pytest.mark.asyncio

SIZE = "/api/risk/calculate-position-size"
CHECK = "/api/risk/check-limits"
RISK = "/api/risk/portfolio-risk"


async def test_position_size(api: Any) -> None:
    c = api.client
    fixed = (await c.post(SIZE, json={"equity": 100_000, "price": 50, "fraction": 0.1})).json()
    assert fixed["quantity"] == pytest.approx(200) and fixed["weight"] == pytest.approx(0.1)
    assert fixed["clipped_by"] is None and fixed["atr"] is None

    costly = await c.post(
        SIZE,
        json={"equity": 100_000, "price": 50, "fraction": 0.1, "commission_bps": 10, "lot_size": 1},
    )
    assert costly.json()["quantity"] == 199  # fees make 200 units unaffordable

    atr = {"method": "atr_risk", "equity": 100_000, "price": 50, "atr": 2.0}
    sized = (await c.post(SIZE, json=atr)).json()
    assert sized["quantity"] == pytest.approx(50)  # 100000 x 0.001 / 2
    assert sized["risk_amount"] == pytest.approx(100)

    from_data = await c.post(
        SIZE, json={"method": "atr_risk", "equity": 100_000, "price": 50, "symbol": "S01"}
    )
    assert from_data.status_code == 200, from_data.text
    assert from_data.json()["atr"] > 0

    clipped = await c.post(
        SIZE,
        json={
            "equity": 100_000,
            "price": 50,
            "fraction": 2,
            "limits": {"max_position_weight": 0.5},
        },
    )
    assert clipped.json()["clipped_by"] == "max_position_weight"
    assert clipped.json()["weight"] == pytest.approx(0.5)

    sell = await c.post(
        SIZE,
        json={"equity": 100_000, "price": 50, "side": "sell", "limits": {"allow_short": False}},
    )
    assert sell.json()["quantity"] == 0 and sell.json()["clipped_by"] == "short selling not allowed"


BAD_SIZES: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"method": "atr_risk"}, ("atr",)),
    ({"method": "atr_risk", "atr": 1.0, "symbol": "S01"}, ("atr",)),
    ({"method": "atr_risk", "symbol": "NOPE"}, ("symbol",)),
    ({"method": "atr_risk", "symbol": "S01", "atr_period": 5000}, ("atr_period",)),
    ({"equity": 0}, ("equity",)),
    ({"price": -1}, ("price",)),
    ({"fraction": 11}, ("fraction",)),
    ({"method": "kelly"}, ("method",)),
    ({"limits": {"max_position_weight": 0}}, ("limits", "max_position_weight")),
    ({"leverage": 2}, ("leverage",)),
]


async def test_bad_position_size_requests_name_the_field(api: Any) -> None:
    for over, names in BAD_SIZES:
        resp = await api.client.post(SIZE, json={"equity": 100_000, "price": 50, **over})
        assert api.names(resp, "body", *names), (over, resp.text)


async def test_check_limits_with_a_given_account(api: Any) -> None:
    req = {
        "account": {"cash": 10_000, "positions": {"A": 10}},
        "prices": {"A": 100, "B": 50},
        "limits": {"max_position_weight": 0.5, "max_gross_exposure": 1.0},
        "orders": [
            {"symbol": "A", "side": "buy", "quantity": 40},  # 50 x 100 = 5500 / 11000 passes
            {"symbol": "B", "side": "buy", "quantity": 200},  # 10000 > half of equity
            {"symbol": "B", "side": "buy", "quantity": 100},  # gross 10000 > 11000? no: passes
            {"symbol": "A", "side": "sell", "quantity": 100},  # would go short
            {"symbol": "C", "side": "buy", "quantity": 1, "client_order_id": "c-1"},  # no price
        ],
    }
    resp = await api.client.post(CHECK, json=req)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["equity"] == pytest.approx(11_000) and body["gross_exposure"] == pytest.approx(1000)
    verdicts = [(o["passed"], o["reason"]) for o in body["orders"]]
    assert verdicts == [
        (True, None),
        (False, "max_position_weight: 0.9091 > 0.5000"),
        (True, None),
        (False, "short selling not allowed"),
        (False, "no price for C"),
    ]
    assert body["orders"][4]["client_order_id"] == "c-1"
    assert (body["passed"], body["refused"]) == (2, 3)


async def test_check_limits_with_the_optional_limits(api: Any) -> None:
    req = {
        "account": {"cash": 100_000},
        "prices": {"A": 100},
        "limits": {"max_order_notional": 10_000, "price_band": 0.05, "max_open_orders": 2},
        "orders": [
            {"symbol": "A", "side": "buy", "quantity": 125},
            {"symbol": "A", "side": "buy", "quantity": 10, "type": "limit", "limit_price": 110},
            {"symbol": "A", "side": "buy", "quantity": 10},
            {"symbol": "A", "side": "buy", "quantity": 10},
            {"symbol": "A", "side": "buy", "quantity": 10},
        ],
    }
    resp = await api.client.post(CHECK, json=req)
    assert resp.status_code == 200, resp.text
    assert [o["reason"] for o in resp.json()["orders"]] == [
        "max_order_notional: 12,500.00 > 10,000.00",
        "price_band: limit 110.00 vs last 100.00 is 0.1000 > 0.0500",
        None,
        None,
        "max_open_orders: 3 > 2",
    ]
    bad = await api.client.post(CHECK, json={**req, "limits": {"max_var": 0}})
    assert bad.status_code == 422 and "max_var" in bad.text


async def test_check_limits_errors(api: Any) -> None:
    c = api.client
    one = [{"symbol": "A", "side": "buy", "quantity": 1}]
    assert api.names(await c.post(CHECK, json={"orders": one}), "body", "account")
    assert api.names(await c.post(CHECK, json={"orders": [], "account": {"cash": 1}}), "orders")
    bad = {"orders": [{"symbol": "A", "side": "buy", "quantity": 1, "type": "limit"}]}
    resp = await c.post(CHECK, json={**bad, "account": {"cash": 1}})
    assert api.names(resp, "body", "orders", "0", "limit_price")
    missing = await c.post(CHECK, json={"orders": one, "session_id": "s-000000000000"})
    assert missing.status_code == 404


async def test_session_risk(api: Any) -> None:
    sid = await api.start_session(min_bars=30, speed=200.0)
    assert (
        await api.client.post(
            "/api/execution/submit-order",
            json={"session_id": sid, "symbol": "SYN", "side": "buy", "quantity": 100},
        )
    ).status_code == 201
    await api.wait_bars(sid, 3)

    resp = await api.client.get(RISK, params={"session_id": sid, "confidence": 0.9, "window": 20})
    assert resp.status_code == 200, resp.text
    risk = resp.json()
    assert risk["positions"] and risk["positions"][0]["symbol"] == "SYN"
    assert risk["gross_exposure"] > 0 and risk["leverage"] == pytest.approx(
        risk["gross_exposure"] / risk["equity"]
    )
    assert risk["limits"]["max_position_weight"] == 1.0
    var = risk["var"]
    assert var is not None and var["observations"] == 20 and var["confidence"] == 0.9
    assert 0 <= var["var"] <= var["expected_shortfall"]

    checked = await api.client.post(
        CHECK,
        json={"session_id": sid, "orders": [{"symbol": "SYN", "side": "sell", "quantity": 1e6}]},
    )
    assert checked.status_code == 200, checked.text
    assert checked.json()["orders"][0]["reason"] == "short selling not allowed"

    missing = await api.client.get(RISK, params={"session_id": "s-000000000000"})
    assert missing.status_code == 404
    bad = await api.client.get(RISK, params={"session_id": sid, "confidence": 1.5})
    assert api.names(bad, "query", "confidence")


def test_historical_var() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0, 0.01, 2000)
    equity = pd.Series(100 * np.cumprod(1 + returns))
    estimate = historical_var(equity, 0.99, 2000)
    assert estimate is not None
    var, es, n = estimate
    assert n == 1999
    assert var == pytest.approx(-np.quantile(returns[1:], 0.01), rel=1e-9)
    assert es > var > 0.015  # about 2.33 sigma
    assert historical_var(equity.iloc[:10], 0.95, 250) is None
