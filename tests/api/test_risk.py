"""Risk endpoints: position sizing, pre-trade limit checks, a session's portfolio risk and
stress tests; numbers checked against the pure functions and direct numpy computations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from raytrader.data.spec import DataSpec
from raytrader.orchestrator.api.data import bundled_frames
from raytrader.orchestrator.api.risk.var_routes import equity_var
from raytrader.risk.covariance import covariance
from raytrader.risk.mean_variance import mean_variance_weights
from raytrader.risk.risk_parity import risk_parity_weights
from raytrader.risk.stress import PnLDistribution, historical_scenarios, monte_carlo
from raytrader.risk.var import historical_var_es
from raytrader.risk.var import portfolio_risk as var_report
from raytrader.risk.vol_target import ewma_volatility

pytestmark = pytest.mark.asyncio

SIZE = "/api/risk/calculate-position-size"
CHECK = "/api/risk/check-limits"
RISK = "/api/risk/portfolio-risk"
STRESS = "/api/risk/stress-test"


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
    ({"method": "martingale"}, ("method",)),
    ({"method": 3}, ("method",)),
    ({"risk_factor": 0.01}, ("risk_factor",)),  # atr_risk's, not fixed_fractional's
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


def test_equity_var() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0, 0.01, 2000)
    equity = pd.Series(100 * np.cumprod(1 + returns))
    estimate = equity_var(equity, 0.99, 2000)
    assert estimate is not None
    var, es, n = estimate
    assert n == 1999
    assert var == pytest.approx(-np.quantile(returns[1:], 0.01), rel=1e-9)
    assert es > var > 0.015  # about 2.33 sigma
    assert equity_var(equity.iloc[:10], 0.95, 250) is None
    # A curve that only rises: the quantile is a gain, both clipped at zero.
    rising = pd.Series(100 * np.cumprod(1 + np.abs(returns[:100]) + 1e-4))
    assert equity_var(rising, 0.95, 250) == (0.0, 0.0, 99)
    unclipped = historical_var_es(np.diff(rising.to_numpy()) / rising.to_numpy()[:-1], 0.95)
    assert unclipped.var < 0 and unclipped.es < 0


# ---- sizing methods -------------------------------------------------------------------------


def universe_returns(symbols: list[str], bars: int) -> pd.DataFrame:
    """The last ``bars`` returns of bundled symbols, computed here."""
    frames = bundled_frames("universe_daily")
    closes = pd.concat({s: frames[s]["close"] for s in symbols}, axis=1).sort_index()
    closes = closes.iloc[-(bars + 1) :]
    values = closes.to_numpy()
    return pd.DataFrame(values[1:] / values[:-1] - 1, index=closes.index[1:], columns=symbols)


async def test_volatility_target_and_kelly_sizes(api: Any) -> None:
    c = api.client
    base = {"method": "volatility_target", "equity": 100_000, "price": 50, "target_vol": 0.15}
    given = (await c.post(SIZE, json={**base, "volatility": 0.3})).json()
    assert given["quantity"] == pytest.approx(1000)  # 100000 x 0.15 / 0.3 / 50
    assert given["fraction"] == pytest.approx(0.5) and given["volatility"] == 0.3
    capped = (await c.post(SIZE, json={**base, "volatility": 0.05, "max_leverage": 2})).json()
    assert capped["fraction"] == pytest.approx(2) and capped["quantity"] == pytest.approx(4000)

    rng = np.random.default_rng(5)
    r = rng.normal(0, 0.02, 300)
    ewma = await c.post(SIZE, json={**base, "returns": r.tolist(), "halflife": 10})
    assert ewma.status_code == 200, ewma.text
    weights = 0.5 ** (np.arange(299, -1, -1) / 10)
    vol = np.sqrt(weights @ r**2 / weights.sum() * 252)
    assert ewma.json()["volatility"] == pytest.approx(vol, rel=1e-12)
    assert ewma.json()["quantity"] == pytest.approx(100_000 * 0.15 / vol / 50, rel=1e-12)
    rolling = await c.post(
        SIZE,
        json={**base, "returns": r.tolist(), "estimator": "rolling", "vol_window": 20,
              "periods_per_year": 365},
    )  # fmt: skip
    assert rolling.json()["volatility"] == pytest.approx(np.sqrt(np.mean(r[-20:] ** 2) * 365))

    data = await c.post(SIZE, json={**base, "symbol": "S01", "lookback": 120, "lot_size": 1})
    assert data.status_code == 200, data.text
    series = universe_returns(["S01"], 120)["S01"]
    vol = ewma_volatility(series.to_numpy(), 20.0, 252.0)
    assert data.json()["volatility"] == pytest.approx(vol, rel=1e-12)
    assert data.json()["observations"] == 120
    assert data.json()["quantity"] == np.floor(100_000 * min(0.15 / vol, 1) / 50)

    kelly = {"method": "kelly", "equity": 100_000, "price": 50, "commission_bps": 10}
    odds = (await c.post(SIZE, json={**kelly, "win_rate": 0.55, "payoff_ratio": 1.5})).json()
    f = 0.5 * (0.55 - 0.45 / 1.5)
    assert odds["fraction"] == pytest.approx(f)
    assert odds["quantity"] == pytest.approx(100_000 * f / (50 * 1.001))
    trades = [0.04, -0.02, 0.01, -0.01, 0.03, 0.0]
    est = (await c.post(SIZE, json={**kelly, "trade_returns": trades, "fraction": 1})).json()
    p, b = 3 / 6, np.mean([0.04, 0.01, 0.03]) / np.mean([0.02, 0.01])
    assert est["win_rate"] == pytest.approx(p) and est["payoff_ratio"] == pytest.approx(b)
    assert est["fraction"] == pytest.approx(p - (1 - p) / b)
    no_edge = (await c.post(SIZE, json={**kelly, "win_rate": 0.3, "payoff_ratio": 1})).json()
    assert no_edge["quantity"] == 0 and no_edge["fraction"] == 0


async def test_risk_parity_and_mean_variance_weights(api: Any) -> None:
    c = api.client
    symbols = ["S00", "S01", "S02", "S03"]
    rp = await c.post(
        SIZE,
        json={"method": "risk_parity", "symbols": symbols, "lookback": 300, "equity": 1e6,
              "lot_size": 1},
    )  # fmt: skip
    assert rp.status_code == 200, rp.text
    body = rp.json()
    x = universe_returns(symbols, 300).dropna().to_numpy()
    cov = covariance(x, "ledoit_wolf")
    w = np.array([row["weight"] for row in body["weights"]])
    np.testing.assert_allclose(w, risk_parity_weights(cov), rtol=1e-10)
    contrib = w * (cov @ w) / (w @ cov @ w)
    np.testing.assert_allclose(contrib, 0.25, rtol=1e-8)  # equal risk, directly
    np.testing.assert_allclose([row["risk_contribution"] for row in body["weights"]], contrib)
    assert body["volatility"] == pytest.approx(np.sqrt(w @ cov @ w * 252))
    assert body["observations"] == len(x) and body["shrinkage"] == "ledoit_wolf"
    closes = bundled_frames("universe_daily")
    for row in body["weights"]:
        price = float(closes[row["symbol"]]["close"].iloc[-1])
        assert row["price"] == price
        assert row["quantity"] == np.floor(row["weight"] * 1e6 / price)

    sample = await c.post(
        SIZE,
        json={"method": "risk_parity", "symbols": symbols[:2], "shrinkage": "sample",
              "budgets": {"S00": 3, "S01": 1}},
    )  # fmt: skip
    cov2 = np.cov(universe_returns(symbols[:2], 250).dropna().to_numpy(), rowvar=False)
    w2 = np.array([row["weight"] for row in sample.json()["weights"]])
    np.testing.assert_allclose(w2 * (cov2 @ w2) / (w2 @ cov2 @ w2), [0.75, 0.25], rtol=1e-8)

    # Minimum variance with bounds wide enough to stay off them: C^-1 1 / 1'C^-1 1.
    mv = await c.post(
        SIZE,
        json={"method": "mean_variance", "symbols": symbols, "shrinkage": "sample",
              "min_weight": -10, "max_weight": 10},
    )  # fmt: skip
    assert mv.status_code == 200, mv.text
    cov3 = np.cov(universe_returns(symbols, 250).dropna().to_numpy(), rowvar=False)
    inv = np.linalg.solve(cov3, np.ones(4))
    np.testing.assert_allclose(
        [row["weight"] for row in mv.json()["weights"]], inv / inv.sum(), rtol=1e-6, atol=1e-9
    )

    mu = {"S00": 0.12, "S01": 0.05, "S02": 0.08, "S03": 0.02}
    bounded = await c.post(
        SIZE,
        json={"method": "mean_variance", "symbols": symbols, "expected_returns": mu,
              "risk_aversion": 3, "max_weight": {"S00": 0.4}, "min_weight": 0.05},
    )  # fmt: skip
    assert bounded.status_code == 200, bounded.text
    got = bounded.json()
    cov4 = covariance(universe_returns(symbols, 250).dropna().to_numpy()) * 252
    want = mean_variance_weights(
        cov4,
        [mu[s] for s in symbols],
        risk_aversion=3,
        min_weight=0.05,
        max_weight=[0.4, 1, 1, 1],
    )
    np.testing.assert_allclose([r["weight"] for r in got["weights"]], want, atol=1e-9)
    assert got["weights"][0]["weight"] <= 0.4 + 1e-12
    assert min(r["weight"] for r in got["weights"]) >= 0.05 - 1e-12
    assert got["expected_return"] == pytest.approx(float(np.dot([mu[s] for s in symbols], want)))


BAD_METHODS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"method": "volatility_target", "target_vol": 0.1}, ("volatility",)),
    ({"method": "volatility_target", "target_vol": 0}, ("target_vol",)),
    ({"method": "volatility_target", "target_vol": 0.1, "volatility": 0.2, "returns": [0.1, 0]},
     ("returns",)),
    ({"method": "volatility_target", "target_vol": 0.1, "volatility": 0.2, "source": "btc_1h"},
     ("source",)),
    ({"method": "volatility_target", "target_vol": 0.1, "symbol": "NOPE"}, ("symbol",)),
    ({"method": "volatility_target", "target_vol": 0.1, "returns": [0.01, 0.02],
      "estimator": "rolling"}, ("vol_window",)),
    ({"method": "volatility_target", "target_vol": 0.1, "returns": [0.01, "x"]}, ("returns", "1")),
    ({"method": "kelly"}, ("win_rate",)),
    ({"method": "kelly", "win_rate": 0.5}, ("payoff_ratio",)),
    ({"method": "kelly", "win_rate": 1.5, "payoff_ratio": 1}, ("win_rate",)),
    ({"method": "kelly", "trade_returns": [0.1], "win_rate": 0.5}, ("win_rate",)),
    ({"method": "kelly", "trade_returns": [0.1], "fraction": 0}, ("fraction",)),
    ({"method": "kelly", "trade_returns": [0.1], "fraction": 0.5, "atr": 2}, ("atr",)),
]  # fmt: skip
BAD_WEIGHTS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"symbols": ["S00"]}, ("symbols",)),
    ({"symbols": ["S00", "S00"]}, ("symbols",)),
    ({"symbols": ["S00", "NOPE"]}, ("symbols",)),
    ({"symbols": ["S00", "S01"], "lookback": 5}, ("lookback",)),
    ({"symbols": ["S00", "S01"], "shrinkage": "oracle"}, ("shrinkage",)),
    ({"symbols": ["S00", "S01"], "source": "btc_1h"}, ("symbols",)),
    ({"symbols": ["S00", "S01"], "session_id": "s-000000000000", "source": "btc_1h"},
     ("source",)),
    ({"method": "risk_parity", "symbols": ["S00", "S01"], "budgets": {"S00": 1}}, ("budgets",)),
    ({"method": "risk_parity", "symbols": ["S00", "S01"], "budgets": {"S00": 0, "S01": 1}},
     ("budgets", "S00")),
    ({"symbols": ["S00", "S01"], "max_weight": 0.4}, ("max_weight",)),
    ({"symbols": ["S00", "S01"], "min_weight": 0.6}, ("min_weight",)),
    ({"symbols": ["S00", "S01"], "max_weight": {"S09": 0.5}}, ("max_weight",)),
    ({"symbols": ["S00", "S01"], "risk_aversion": 2}, ("risk_aversion",)),
    ({"symbols": ["S00", "S01"], "expected_returns": {"S00": 0.1}}, ("expected_returns",)),
    ({"symbols": ["S00", "S01"], "expected_returns": "historical", "target_return": 9},
     ("target_return",)),
    ({"symbols": ["S00", "S01"], "expected_returns": "historical", "target_return": 0.1,
      "risk_aversion": 1}, ("target_return",)),
]  # fmt: skip


async def test_bad_sizing_method_requests_name_the_field(api: Any) -> None:
    for over, names in BAD_METHODS:
        resp = await api.client.post(SIZE, json={"equity": 100_000, "price": 50, **over})
        assert api.names(resp, "body", *names), (over, resp.text)
    for over, names in BAD_WEIGHTS:
        resp = await api.client.post(SIZE, json={"method": "mean_variance", **over})
        assert api.names(resp, "body", *names), (over, resp.text)
    unknown = await api.client.post(
        SIZE, json={"method": "risk_parity", "symbols": ["A", "B"], "session_id": "s-000000000000"}
    )
    assert unknown.status_code == 404


# ---- a session's portfolio risk and stress tests --------------------------------------------


def universe_session(**over: Any) -> dict[str, Any]:
    """A paced session on three synthetic symbols (and their index) whose agent stays out:
    the positions are the ones a test rebalances to."""
    feed = {
        "data": {"synthetic": {"kind": "universe", "n_symbols": 3, "n_bars": 20_000, "seed": 4,
                               "freq": "1h"}},
        "speed": 200.0,
    }  # fmt: skip
    return {
        "agents": [{"name": "sma_cross", "params": {"fast": 5000, "slow": 9000}}],
        "feed": feed,
        **over,
    }


def session_frame(body: dict[str, Any], end: str, bars: int, symbols: list[str]) -> pd.DataFrame:
    """The last ``bars`` returns up to ``end`` of the session's data, computed here."""
    data = DataSpec.model_validate(body["feed"]["data"]).load()
    stop = int(data.index.searchsorted(pd.Timestamp(end), side="right"))
    closes = data.close[:, max(0, stop - bars - 1) : stop]
    idx = [data.symbols.index(s) for s in symbols]
    r = closes[idx, 1:] / closes[idx, :-1] - 1
    return pd.DataFrame(r.T, index=data.index[max(0, stop - bars) : stop], columns=symbols)


async def rebalanced(api: Any, body: dict[str, Any], targets: dict[str, float]) -> str:
    sid: str = await api.start_session(min_bars=150, **body)
    resp = await api.client.post(
        "/api/portfolio/trigger-rebalance", json={"session_id": sid, "targets": targets}
    )
    assert resp.status_code == 202, resp.text

    async def held() -> bool:
        resp = await api.client.get("/api/execution/portfolio", params={"session_id": sid})
        return len(resp.json()["positions"]) == len(targets)

    await api.eventually(held, what="the rebalance to fill")
    return sid


async def test_portfolio_var_of_the_positions(api: Any) -> None:
    body = universe_session()
    sid = await rebalanced(api, body, {"S00": 0.4, "S01": 0.3, "S02": 0.2})
    params: dict[str, Any] = {
        "session_id": sid,
        "confidence": [0.9, 0.99],
        "window": 120,
        "horizon": 5,
    }
    resp = await api.client.get(RISK, params=params)
    assert resp.status_code == 200, resp.text
    risk = resp.json()
    report, used = risk["value_at_risk"], risk["returns"]
    assert report is not None, risk["note"]
    assert used["bars"] == 120 and "data" in used["source"]
    values = {p["symbol"]: p["market_value"] for p in risk["positions"]}
    frame = session_frame(body, used["end"], 120, list(values))
    assert str(frame.index[0]) == str(pd.Timestamp(used["start"]))
    want = var_report(frame, values, (0.9, 0.99), 5)
    assert report["observations"] == want.observations == 116 and report["bars"] == 120
    assert report["methods"] == ["historical", "gaussian", "cornish_fisher"]
    for got, exp in [(report["portfolio"], want.portfolio)] + [
        (p, want.position(p["name"])) for p in report["positions"]
    ]:
        assert got["value"] == pytest.approx(exp.value)
        for m in got["measures"]:
            e = exp.get(m["method"], m["confidence"])
            assert (m["var"], m["es"]) == pytest.approx((e.var, e.es), rel=1e-9)
    # The historical portfolio VaR directly: 5-bar compounded returns on the positions.
    x = frame.to_numpy()
    growth = np.prod([1 + x[k : len(x) - 4 + k] for k in range(5)], axis=0) - 1
    pnl = growth @ np.array(list(values.values()))
    hist = next(
        m for m in report["portfolio"]["measures"]
        if m["method"] == "historical" and m["confidence"] == 0.9
    )  # fmt: skip
    assert hist["var"] == pytest.approx(-np.quantile(pnl, 0.1), rel=1e-9)
    assert hist["es"] == pytest.approx(-pnl[pnl <= np.quantile(pnl, 0.1)].mean(), rel=1e-9)
    assert risk["var"]["confidence"] == 0.9  # the equity curve's, at the first level

    one = await api.client.get(RISK, params={"session_id": sid, "method": "gaussian"})
    assert one.status_code == 200, one.text
    measures = one.json()["value_at_risk"]["portfolio"]["measures"]
    assert [(m["method"], m["confidence"]) for m in measures] == [
        ("gaussian", 0.95),
        ("gaussian", 0.99),
    ]
    for bad, name in (
        ({"horizon": 0}, "horizon"),
        ({"horizon": 240}, "horizon"),  # 250 returns hold 11 windows of 240 bars
        ({"method": "monte_carlo"}, "method"),
        ({"confidence": [0.9, 1.2]}, "confidence"),
        ({"confidence": [0.9] * 6}, "confidence"),
    ):
        resp = await api.client.get(RISK, params={"session_id": sid, **bad})
        assert api.names(resp, "query", name), (bad, resp.text)
    await api.stop(sid)
    after = await api.client.get(RISK, params=params)
    assert after.status_code == 200 and after.json()["value_at_risk"] is not None


async def test_stress_test(api: Any) -> None:
    body = universe_session()
    sid = await rebalanced(api, body, {"S00": 0.5, "S02": 0.3})
    params: dict[str, Any] = {
        "session_id": sid,
        "window": 100,
        "horizon": 3,
        "worst": 4,
        "paths": 500,
        "seed": 11,
        "shock": [-0.1, 0.05],
    }
    resp = await api.client.get(STRESS, params=params)
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["notes"] == [] and out["horizon_bars"] == 3
    values = {p["symbol"]: p["market_value"] for p in out["positions"]}
    assert set(values) == {"S00", "S02"}
    frame = session_frame(body, out["returns"]["end"], 100, list(values))
    pos = np.array(list(values.values()))
    positions = pd.Series(values)

    # Historical: every 3-bar window, computed here; the worst ones by the pure function.
    x = frame.to_numpy()
    pnl = ((1 + x[:-2]) * (1 + x[1:-1]) * (1 + x[2:]) - 1) @ pos
    hist = out["historical"]
    assert hist["windows"] == 98
    assert hist["distribution"]["var95"] == pytest.approx(-np.quantile(pnl, 0.05), rel=1e-9)
    assert hist["distribution"]["mean"] == pytest.approx(pnl.mean(), rel=1e-9)
    worst = historical_scenarios(frame, positions, 3, 4)
    assert [s["pnl"] for s in hist["worst"]] == pytest.approx([s.pnl for s in worst], rel=1e-9)
    assert hist["worst"][0]["pnl"] == pytest.approx(pnl.min(), rel=1e-9)
    assert str(pd.Timestamp(hist["worst"][0]["end"])) == str(worst[0].end)

    # Monte Carlo: the same seed, the same paths.
    mc = monte_carlo(frame, positions, 3, 500, "bootstrap", seed=11)
    assert out["monte_carlo"]["seed"] == 11
    assert out["monte_carlo"]["distribution"]["es99"] == pytest.approx(mc.summary.es99, rel=1e-9)
    s02 = PnLDistribution.from_samples(mc.position_pnl[:, 1])
    assert out["monte_carlo"]["positions"]["S02"]["q05"] == pytest.approx(s02.q05, rel=1e-9)

    # Factor shocks on the equal-weight basket: OLS betas computed here.
    every = session_frame(body, out["returns"]["end"], 100, ["S00", "S01", "S02", "INDEX"])
    basket = every.mean(axis=1).to_numpy()
    betas = [np.cov(frame[s], basket)[0, 1] / np.var(basket, ddof=1) for s in values]
    factor = out["factor"]
    assert factor["factor"] == "basket" and factor["basket"] == ["S00", "S01", "S02", "INDEX"]
    assert [factor["betas"][s] for s in values] == pytest.approx(betas, rel=1e-9)
    assert [s["pnl"] for s in factor["shocks"]] == pytest.approx(
        [float(pos @ betas) * k for k in (-0.1, 0.05)], rel=1e-9
    )
    assert factor["history"]["n"] == 98

    on_symbol = await api.client.get(
        STRESS, params={**params, "factor": "S01", "simulation": "normal", "shock": -0.2}
    )
    assert on_symbol.status_code == 200, on_symbol.text
    later = on_symbol.json()  # the session has moved on: its own bars and positions
    values = {p["symbol"]: p["market_value"] for p in later["positions"]}
    pos, positions = np.array(list(values.values())), pd.Series(values)
    frame = session_frame(body, later["returns"]["end"], 100, ["S00", "S02", "S01"])
    x = frame.to_numpy()
    b = [np.cov(x[:, i], x[:, 2])[0, 1] / np.var(x[:, 2], ddof=1) for i in range(2)]
    assert later["factor"]["shocks"][0]["pnl"] == pytest.approx(-0.2 * (pos @ b), rel=1e-9)
    normal = monte_carlo(frame[list(values)], positions, 3, 500, "normal", seed=11)
    got = later["monte_carlo"]["distribution"]["mean"]
    assert got == pytest.approx(normal.summary.mean, rel=1e-9)

    random_seed = (await api.client.get(STRESS, params={"session_id": sid})).json()
    assert 0 <= random_seed["monte_carlo"]["seed"] < 2**32

    for bad, name in (
        ({"paths": 0}, "paths"),
        ({"paths": 10_001}, "paths"),
        ({"horizon": 251}, "horizon"),
        ({"window": 10}, "window"),
        ({"worst": 0}, "worst"),
        ({"seed": -1}, "seed"),
        ({"simulation": "garch"}, "simulation"),
        ({"factor": "NOPE"}, "factor"),
        ({"factor": "no pe"}, "factor"),
        ({"shock": [-0.1, -1.5]}, "shock"),
        ({"shock": [0.1] * 21}, "shock"),
    ):
        resp = await api.client.get(STRESS, params={**params, **bad})
        assert api.names(resp, "query", name), (bad, resp.text)
    missing = await api.client.get(STRESS, params={"session_id": "s-000000000000"})
    assert missing.status_code == 404


async def test_stress_test_without_positions(api: Any) -> None:
    sid = await api.start_session(min_bars=5, speed=200.0)
    resp = await api.client.get(STRESS, params={"session_id": sid})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    if not out["positions"]:  # the agent has not traded yet
        assert out["historical"] is None and out["monte_carlo"] is None
        assert out["notes"] == ["no open positions: nothing is at risk"]
    risk = (await api.client.get(RISK, params={"session_id": sid})).json()
    if not risk["positions"]:
        assert risk["value_at_risk"] is None and "no open positions" in risk["note"]
