"""Data and strategy endpoints: bundled bars, agents' schemas, configurations, signals."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

pytestmark = pytest.mark.asyncio

STOCK = "/api/v1/data/stock"
BATCH = "/api/v1/data/batch"
STRATEGY = "/api/v1/strategy"


async def test_stock_data(api: Any) -> None:
    c = api.client
    resp = await c.get(f"{STOCK}/S01", params={"limit": 10})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["count"] == 10 and body["total"] > 2000 and body["timeframe"] == "1d"
    bars = body["bars"]
    assert bars[-1]["ts"].startswith("2024-01-03")
    assert all(b["low"] <= min(b["open"], b["close"]) <= b["high"] for b in bars)

    week = await c.get(
        f"{STOCK}/S01",
        params={"timeframe": "1w", "start": "2020-01-01", "end": "2020-03-01", "limit": 100},
    )
    assert week.status_code == 200, week.text
    weekly = week.json()["bars"]
    assert 8 <= len(weekly) <= 10 and weekly[0]["ts"] >= "2019-12-30"

    two = await c.get(f"{STOCK}/S01", params={"timeframe": "2d", "limit": 30})
    assert two.status_code == 200, two.text
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    assert all((pd.Timestamp(b["ts"]) - epoch).days % 2 == 0 for b in two.json()["bars"])

    btc = await c.get(f"{STOCK}/BTC/USDT", params={"source": "btc_1h", "limit": 24})
    assert btc.status_code == 200, btc.text
    assert btc.json()["symbol"] == "BTC/USDT" and btc.json()["count"] == 24

    empty = await c.get(f"{STOCK}/S01", params={"start": "2030-01-01"})
    assert empty.status_code == 200 and empty.json()["bars"] == []


async def test_stock_data_errors(api: Any) -> None:
    c = api.client
    unknown = await c.get(f"{STOCK}/AAPL")
    assert unknown.status_code == 404 and "S01" in unknown.json()["detail"]
    assert api.names(await c.get(f"{STOCK}/S01", params={"timeframe": "1h"}), "timeframe")
    assert api.names(await c.get(f"{STOCK}/S01", params={"timeframe": "1month"}), "timeframe")
    backwards = await c.get(f"{STOCK}/S01", params={"start": "2021-01-01", "end": "2020-01-01"})
    assert api.names(backwards, "query", "end")
    assert api.names(await c.get(f"{STOCK}/S01", params={"limit": 0}), "query", "limit")
    assert api.names(await c.get(f"{STOCK}/S01", params={"source": "nasdaq"}), "query", "source")
    assert api.names(await c.get(f"{STOCK}/S01", params={"start": "yesterday"}), "start")
    assert api.names(await c.get(f"{STOCK}/S01", params={"start": "0001-01-01"}), "start")
    assert api.names(await c.get(f"{STOCK}/bad%20symbol"), "path", "symbol")


async def test_batch_data(api: Any) -> None:
    c = api.client
    resp = await c.post(BATCH, json={"symbols": ["S01", "INDEX", "ZZZ", "S01"], "limit": 5})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert list(body["data"]) == ["S01", "INDEX"] and body["missing"] == ["ZZZ"]
    assert all(s["count"] == 5 for s in body["data"].values())

    assert api.names(await c.post(BATCH, json={"symbols": []}), "body", "symbols")
    too_many = {"symbols": [f"S{k:02d}" for k in range(20)], "limit": 10_000}
    assert api.names(await c.post(BATCH, json=too_many), "body", "limit")
    assert api.names(await c.post(BATCH, json={"symbols": ["S01"], "x": 1}), "body", "x")


async def test_strategy_parameters(api: Any) -> None:
    c = api.client
    listed = (await c.get(f"{STRATEGY}/strategies")).json()
    assert {"sma_cross", "momentum"} <= {s["name"] for s in listed}

    resp = await c.get(f"{STRATEGY}/strategy_parameters/sma_cross")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["defaults"] == {"fast": 10, "slow": 30, "weight": 1.0, "allow_short": False}
    fast = body["parameters_schema"]["properties"]["fast"]
    assert fast["minimum"] == 1 and fast["type"] == "integer"

    missing = await c.get(f"{STRATEGY}/strategy_parameters/sma_crss")
    assert missing.status_code == 404 and "did you mean 'sma_cross'" in missing.json()["detail"]


async def test_configure_strategy(api: Any) -> None:
    c = api.client
    resp = await c.post(
        f"{STRATEGY}/configure_strategy/sma_cross",
        json={"config_name": "fast-sma", "params": {"fast": 3, "slow": 12}, "description": "x"},
    )
    assert resp.status_code == 200, resp.text
    stored = resp.json()
    assert stored["params"] == {"fast": 3, "slow": 12, "weight": 1.0, "allow_short": False}
    again = await c.post(
        f"{STRATEGY}/configure_strategy/sma_cross",
        json={"config_name": "fast-sma", "params": {"fast": 4, "slow": 12}},
    )
    assert again.json()["created"] == stored["created"]
    assert again.json()["params"]["fast"] == 4

    default_name = await c.post(f"{STRATEGY}/configure_strategy/momentum", json={})
    assert default_name.json()["config_name"] == "momentum"
    names = [r["config_name"] for r in (await c.get(f"{STRATEGY}/configurations")).json()]
    assert names == ["fast-sma", "momentum"]
    one = await c.get(f"{STRATEGY}/configurations/fast-sma")
    assert one.status_code == 200 and one.json()["agent"] == "sma_cross"
    assert (await c.get(f"{STRATEGY}/configurations/none")).status_code == 404

    crossed = await c.post(
        f"{STRATEGY}/configure_strategy/sma_cross", json={"params": {"fast": 50, "slow": 20}}
    )
    assert api.names(crossed, "body", "params") and "fast (50) must be below" in crossed.text
    negative = await c.post(
        f"{STRATEGY}/configure_strategy/sma_cross", json={"params": {"fast": 0}}
    )
    assert api.names(negative, "body", "params", "fast")
    extra = await c.post(f"{STRATEGY}/configure_strategy/sma_cross", json={"params": {"x": 1}})
    assert api.names(extra, "body", "params", "x")
    unknown = await c.post(f"{STRATEGY}/configure_strategy/nope", json={})
    assert unknown.status_code == 404
    bad_name = await c.post(f"{STRATEGY}/configure_strategy/sma_cross", json={"config_name": "a b"})
    assert api.names(bad_name, "body", "config_name")


async def test_generate_signals(api: Any) -> None:
    c = api.client
    req = {
        "agent": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
        "data": {"symbols": ["S01", "S02"], "start": "2022-01-01", "max_bars": 300},
        "limit": 5,
    }
    resp = await c.post(f"{STRATEGY}/generate_signals", json=req)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["symbols"] == ["S01", "S02"] and body["bars"] == 300
    assert body["total"] > 5 and body["count"] == 5
    sig = body["signals"][-1]
    assert sig["agent"] == "sma_cross" and sig["symbol"] in ("S01", "S02")
    assert sig["reason"] in ("cross up", "cross down") and 0 <= sig["bar"] < 300

    await c.post(
        f"{STRATEGY}/configure_strategy/sma_cross",
        json={"config_name": "mine", "params": {"fast": 5, "slow": 20}},
    )
    stored = await c.post(
        f"{STRATEGY}/generate_signals", json={"config_name": "mine", "data": req["data"]}
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["total"] == body["total"]

    momentum = await c.post(
        f"{STRATEGY}/generate_signals",
        json={"agent": {"name": "momentum", "params": {"lookback_period": 30}}},
    )
    assert momentum.status_code == 200, momentum.text
    assert momentum.json()["total"] > 0

    closes = [100, 101, 103, 102, 99, 97, 98, 101, 104, 106, 105, 103, 100, 98, 97, 99]
    bars = [
        {
            "ts": f"2024-01-{d + 1:02d}T00:00:00Z",
            "open": p,
            "high": p + 1,
            "low": p - 1,
            "close": p,
            "volume": 10,
        }
        for d, p in enumerate(closes)
    ]
    inline = await c.post(
        f"{STRATEGY}/generate_signals",
        json={
            "agent": {"name": "sma_cross", "params": {"fast": 2, "slow": 4}},
            "bars": {"X": bars},
        },
    )
    assert inline.status_code == 200, inline.text
    assert inline.json()["symbols"] == ["X"] and inline.json()["total"] >= 2


async def test_generate_signals_errors(api: Any) -> None:
    c = api.client
    url = f"{STRATEGY}/generate_signals"
    sma = {"name": "sma_cross"}
    assert api.names(await c.post(url, json={}), "body", "config_name")
    both = await c.post(url, json={"agent": sma, "config_name": "mine"})
    assert api.names(both, "body", "config_name")
    assert (await c.post(url, json={"config_name": "mine"})).status_code == 404
    unknown = await c.post(url, json={"agent": {"name": "nope"}})
    assert api.names(unknown, "body", "agent", "name")
    bad_params = await c.post(url, json={"agent": {"name": "sma_cross", "params": {"slow": 1}}})
    assert api.names(bad_params, "body", "agent", "params", "slow")
    no_index = await c.post(url, json={"agent": {"name": "momentum"}, "data": {"symbols": ["S01"]}})
    assert no_index.status_code == 422 and "INDEX" in no_index.text
    missing = await c.post(url, json={"agent": sma, "data": {"symbols": ["ZZZ"]}})
    assert api.names(missing, "body", "data", "symbols")
    empty = await c.post(url, json={"agent": sma, "data": {"start": "2030-01-01"}})
    assert api.names(empty, "body", "data") and "no bars" in empty.text
    big = await c.post(url, json={"agent": sma, "data": {"max_bars": 20_000}})
    assert big.status_code == 200  # the bundled universe holds ~2100 bars: within the bound
    broken = [
        {"ts": "2024-01-01", "open": 10, "high": 9, "low": 8, "close": 9},
        {"ts": "2024-01-02", "open": 10, "high": 11, "low": 9, "close": 10},
    ]
    resp = await c.post(url, json={"agent": sma, "bars": {"X": broken}})
    assert api.names(resp, "body", "bars", "X")
    both_data = await c.post(
        url, json={"agent": sma, "bars": {"X": broken}, "data": {"source": "btc_1h"}}
    )
    assert api.names(both_data, "body", "bars")
