"""Metrics against empyrical and quantstats, and their documented edge cases."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import empyrical
import numpy as np
import pandas as pd
import pytest
import quantstats as qs

from raytrader.state import Metrics, Trade, compute_metrics, periods_per_year
from raytrader.state.metrics import TradeStats

RTOL = 1e-9


def random_equity(index: pd.DatetimeIndex, seed: int, drift: float, vol: float) -> pd.Series:
    rng = np.random.default_rng(seed)
    rets = rng.normal(drift, vol, len(index))
    rets[0] = 0.0
    return pd.Series(100_000.0 * np.cumprod(1.0 + rets), index=index)


def trade(pnl: float, entry_cost: float = 1000.0) -> Trade:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return Trade(
        "AAA", 1, t0, t0 + timedelta(days=1), 10.0, 10.0, 100.0, pnl, pnl / entry_cost, 1.0
    )


STOCK = pd.bdate_range("2018-01-01", periods=1000, tz="UTC")
CRYPTO = pd.date_range("2023-01-01", periods=365, freq="D", tz="UTC")
SERIES = {
    "stock": random_equity(STOCK, seed=7, drift=3e-4, vol=0.012),
    "crypto": random_equity(CRYPTO, seed=11, drift=1e-3, vol=0.035),
    "losing": random_equity(STOCK, seed=3, drift=-8e-4, vol=0.01),
}


@pytest.mark.parametrize("name", sorted(SERIES))
@pytest.mark.parametrize("risk_free", [0.0, 0.04])
def test_matches_empyrical(name: str, risk_free: float) -> None:
    equity = SERIES[name]
    ppy = periods_per_year(equity.index)  # type: ignore[arg-type]
    assert ppy == (365.0 if name == "crypto" else 252.0)
    m = compute_metrics(equity, [], periods_per_year=ppy, risk_free=risk_free)
    returns = equity.pct_change().iloc[1:]
    rf = (1 + risk_free) ** (1 / ppy) - 1  # our annual rate, per bar as empyrical wants it

    expected = {
        "total_return": empyrical.cum_returns_final(returns),
        "cagr": empyrical.cagr(returns, annualization=ppy),
        "volatility": empyrical.annual_volatility(returns, annualization=ppy),
        "sharpe": empyrical.sharpe_ratio(returns, risk_free=rf, annualization=ppy),
        "sortino": empyrical.sortino_ratio(returns, required_return=rf, annualization=ppy),
        "calmar": empyrical.calmar_ratio(returns, annualization=ppy),
        "max_drawdown": empyrical.max_drawdown(returns),
    }
    assert expected["cagr"] == empyrical.annual_return(returns, annualization=ppy)
    for key, value in expected.items():
        assert getattr(m, key) == pytest.approx(value, rel=RTOL, abs=0), key
    assert m.max_drawdown < 0
    assert m.bars == (365 if name == "crypto" else 1000)
    assert (m.start, m.end) == (equity.index[0], equity.index[-1])
    assert (m.start_equity, m.final_equity) == (equity.iloc[0], equity.iloc[-1])


@pytest.mark.parametrize("name", ["crypto", "stock"])
def test_drawdown_duration_matches_quantstats(name: str) -> None:
    equity = SERIES[name]
    m = compute_metrics(equity, [], periods_per_year=365.0)
    drawdown = qs.stats.to_drawdown_series(equity)  # type: ignore[no-untyped-call]
    details = qs.stats.drawdown_details(drawdown)  # type: ignore[no-untyped-call]
    assert m.max_drawdown == pytest.approx(details["max drawdown"].min() / 100, rel=RTOL)
    if name == "crypto":
        # quantstats counts calendar days from the first to the last bar under water: on a
        # calendar-daily index that is the number of bars.
        assert m.max_drawdown_bars == details["days"].max()
    else:
        # On business days its calendar days cover the same bars: map them back.
        starts = pd.to_datetime(details["start"]).dt.tz_localize("UTC")
        ends = pd.to_datetime(details["end"]).dt.tz_localize("UTC")
        bars = [len(equity.loc[s:e]) for s, e in zip(starts, ends, strict=True)]
        assert m.max_drawdown_bars == max(bars)


def test_drawdown_durations_by_hand() -> None:
    # Fri 5 .. Fri 12 Jan 2024 in business days: peak Fri, under water Mon-Tue, recovered Wed
    # (5 calendar days after the peak); then a new peak Wed, under water Thu-Fri to the end.
    index = pd.bdate_range("2024-01-05", periods=6, tz="UTC")
    equity = pd.Series([110.0, 105.0, 100.0, 111.0, 90.0, 95.0], index=index)
    m = compute_metrics(equity, [], periods_per_year=252)
    assert m.max_drawdown_bars == 2
    assert m.max_drawdown_duration == timedelta(days=5)
    assert m.max_drawdown == pytest.approx(90.0 / 111.0 - 1.0)
    # A drawdown that outlasts the others in bars but not in calendar time.
    index = pd.DatetimeIndex(
        [
            "2024-01-01",
            "2024-01-02",
            "2024-01-10",
            "2024-01-11",
            "2024-01-12",
            "2024-01-13",
            "2024-01-14",
        ],
        tz="UTC",
    )
    equity = pd.Series([100.0, 90.0, 101.0, 99.0, 98.0, 97.0, 102.0], index=index)
    m = compute_metrics(equity, [], periods_per_year=365)
    assert m.max_drawdown_bars == 3
    assert m.max_drawdown_duration == timedelta(days=9)


def test_trade_statistics_match_quantstats() -> None:
    rng = np.random.default_rng(5)
    pnls = rng.normal(10.0, 100.0, 200)
    trades = [trade(float(p)) for p in pnls]
    m = compute_metrics(SERIES["stock"], trades, periods_per_year=252)
    series = pd.Series(pnls)
    assert m.trade_count == 200
    assert m.win_rate == pytest.approx(qs.stats.win_rate(series, prepare_returns=False), rel=RTOL)
    profit_factor = qs.stats.profit_factor(series, prepare_returns=False)  # type: ignore[no-untyped-call]
    assert m.profit_factor == pytest.approx(profit_factor, rel=RTOL)
    assert m.avg_trade_pnl == pytest.approx(pnls.mean(), rel=RTOL)
    assert m.avg_trade_return == pytest.approx(pnls.mean() / 1000.0, rel=RTOL)


def test_trade_statistics_by_hand() -> None:
    equity = SERIES["stock"]
    m = compute_metrics(
        equity, [trade(30.0), trade(-10.0), trade(0.0), trade(-20.0)], periods_per_year=252
    )
    assert m.win_rate == 0.25  # break-even trades count as not won
    assert m.profit_factor == 1.0
    only_wins = compute_metrics(equity, [trade(5.0), trade(0.0)], periods_per_year=252)
    assert only_wins.profit_factor == math.inf
    assert only_wins.win_rate == 0.5
    only_flat = compute_metrics(equity, [trade(0.0)], periods_per_year=252)
    assert (only_flat.profit_factor, only_flat.win_rate) == (0.0, 0.0)
    none = compute_metrics(equity, [], periods_per_year=252)
    assert (none.trade_count, none.win_rate, none.profit_factor) == (0, 0.0, 0.0)
    assert (none.avg_trade_pnl, none.avg_trade_return) == (0.0, 0.0)


@pytest.mark.parametrize("n_trades", [0, 1, 5, 200])
@pytest.mark.parametrize("risk_free", [0.0, 0.03])
def test_trade_stats_give_the_metrics_of_the_trades(n_trades: int, risk_free: float) -> None:
    rng = np.random.default_rng(n_trades)
    trades = [
        trade(float(pnl), float(cost))
        for pnl, cost in zip(
            rng.normal(5.0, 80.0, n_trades), rng.uniform(500.0, 5000.0, n_trades), strict=True
        )
    ]
    if trades:
        trades[0] = trade(0.0)  # break-even
    equity = SERIES["stock"]
    exposure = pd.Series(rng.uniform(0.0, 1.0, len(equity)), index=equity.index)
    stats = TradeStats(np.array([t.pnl for t in trades]), np.array([t.return_pct for t in trades]))

    def metrics(given: list[Trade] | TradeStats) -> Metrics:
        return compute_metrics(
            equity, given, periods_per_year=252.0, exposure=exposure, risk_free=risk_free
        )

    want = metrics(trades)
    assert metrics(stats) == want
    assert metrics(TradeStats.of(trades)) == want
    assert want.trade_count == n_trades


def test_trade_stats_need_one_pnl_and_return_per_trade() -> None:
    stats = TradeStats([1.0, -2.0], [0.1, -0.2])  # type: ignore[arg-type]
    assert stats.pnl.dtype == np.float64
    assert stats.return_pct.tolist() == [0.1, -0.2]
    with pytest.raises(ValueError, match="one value per trade"):
        TradeStats(np.zeros(2), np.zeros(3))
    with pytest.raises(ValueError, match="one value per trade"):
        TradeStats(np.zeros((2, 2)), np.zeros((2, 2)))


def test_exposure_and_turnover() -> None:
    index = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    equity = pd.Series([100.0, 100.0, 110.0, 110.0, 120.0], index=index)
    exposure = pd.Series([0.0, 0.5, 1.0, 0.0, 1.5], index=index)
    m = compute_metrics(
        equity, [], periods_per_year=365, exposure=exposure, traded_notional=2_000.0
    )
    assert m.exposure == 0.6
    assert m.avg_exposure == pytest.approx(0.6)
    # 2000 / mean equity 108 / (4 bars / 365 per year)
    assert m.turnover == pytest.approx(2000.0 / 108.0 / (4 / 365))
    assert m.traded_notional == 2000.0
    without = compute_metrics(equity, [], periods_per_year=365)
    assert math.isnan(without.exposure) and math.isnan(without.avg_exposure)


def test_flat_equity_gives_zeros_not_nan() -> None:
    index = pd.date_range("2024-01-01", periods=50, freq="D", tz="UTC")
    m = compute_metrics(pd.Series(1000.0, index=index), [], periods_per_year=365)
    for key in (
        "total_return",
        "cagr",
        "volatility",
        "sharpe",
        "sortino",
        "calmar",
        "max_drawdown",
        "turnover",
    ):
        assert getattr(m, key) == 0.0, key
    assert m.max_drawdown_bars == 0 and m.max_drawdown_duration == timedelta(0)


def test_constant_positive_returns_have_zero_dispersion() -> None:
    index = pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC")
    equity = pd.Series(100.0 * 1.01 ** np.arange(30), index=index)
    m = compute_metrics(equity, [], periods_per_year=365)
    assert m.sharpe == 0.0 and m.sortino == 0.0 and m.calmar == 0.0
    assert m.cagr == pytest.approx(1.01**365 - 1, rel=1e-9)


def test_short_series() -> None:
    one = pd.Series([100.0], index=pd.DatetimeIndex(["2024-01-01"], tz="UTC"))
    m = compute_metrics(one, [], periods_per_year=252)
    assert (m.bars, m.total_return, m.cagr, m.volatility, m.sharpe, m.turnover) == (
        1,
        0.0,
        0.0,
        0.0,
        0.0,
        0.0,
    )
    two = pd.Series([100.0, 110.0], index=pd.DatetimeIndex(["2024-01-01", "2024-01-02"], tz="UTC"))
    m = compute_metrics(two, [], periods_per_year=252)
    assert m.total_return == pytest.approx(0.1) and m.cagr == pytest.approx(1.1**252 - 1)
    assert (m.volatility, m.sharpe, m.sortino) == (0.0, 0.0, 0.0)


def test_wiped_out_account() -> None:
    index = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    m = compute_metrics(pd.Series([100.0, 50.0, 0.0, 0.0], index=index), [], periods_per_year=365)
    assert m.total_return == -1.0 and m.cagr == -1.0 and m.max_drawdown == -1.0
    assert math.isfinite(m.sharpe) and math.isfinite(m.sortino) and math.isfinite(m.volatility)


def test_bad_input() -> None:
    index = pd.date_range("2024-01-01", periods=2, freq="D", tz="UTC")
    with pytest.raises(ValueError, match="empty"):
        compute_metrics(pd.Series([], index=index[:0], dtype=float), [], periods_per_year=1)
    with pytest.raises(ValueError, match="NaN"):
        compute_metrics(pd.Series([1.0, np.nan], index=index), [], periods_per_year=1)
    with pytest.raises(ValueError, match="positive"):
        compute_metrics(pd.Series([0.0, 1.0], index=index), [], periods_per_year=1)
    with pytest.raises(ValueError, match="periods_per_year"):
        compute_metrics(pd.Series([1.0, 1.0], index=index), [], periods_per_year=0)
    with pytest.raises(TypeError, match="DatetimeIndex"):
        compute_metrics(pd.Series([1.0, 1.0]), [], periods_per_year=1)


def test_metrics_model() -> None:
    m = compute_metrics(SERIES["crypto"], [trade(1.0)], periods_per_year=365)
    assert isinstance(m, Metrics)
    d = m.as_dict()
    assert d["trade_count"] == 1 and d["profit_factor"] == math.inf
    assert isinstance(d["max_drawdown_duration"], timedelta)
    assert Metrics(**d) == m
    with pytest.raises(ValueError, match="frozen"):
        m.sharpe = 1.0  # type: ignore[misc]
    assert m.model_dump_json()


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (pd.bdate_range("2024-01-01", periods=300, tz="UTC"), 252.0),
        (pd.date_range("2024-01-01", periods=300, freq="D", tz="UTC"), 365.0),
        (pd.date_range("2024-01-01", periods=500, freq="h", tz="UTC"), 365.0 * 24),
        (pd.date_range("2024-01-06", periods=500, freq="min", tz="UTC"), 365.0 * 24 * 60),
        # Weekdays only, but round the clock: 24/7.
        (pd.date_range("2024-01-01", periods=300, freq="15min", tz="UTC"), 365.0 * 24 * 4),
        # Less than a day of weekday bars reads as one session.
        (pd.date_range("2024-01-01", periods=500, freq="min", tz="UTC"), 252.0 * 500),
        (pd.date_range("2024-01-01", periods=100, freq="W-FRI", tz="UTC"), 52.0),
        (pd.date_range("2020-01-01", periods=60, freq="MS", tz="UTC"), 12.0),
        (pd.date_range("2000-01-01", periods=40, freq="QS", tz="UTC"), 4.0),
        (pd.date_range("2000-01-01", periods=10, freq="YS", tz="UTC"), 1.0),
        (pd.date_range("2024-01-01", periods=50, freq="14D", tz="UTC"), 365.25 / 14),
        (pd.DatetimeIndex(["2024-01-01"], tz="UTC"), 252.0),
        (pd.DatetimeIndex([], tz="UTC"), 252.0),
    ],
)
def test_periods_per_year(index: pd.DatetimeIndex, expected: float) -> None:
    assert periods_per_year(index) == pytest.approx(expected, rel=1e-12)


def test_periods_per_year_intraday_sessions() -> None:
    # US equities, hourly bars 14:30..20:30 UTC on weekdays: 7 bars a day.
    days = pd.bdate_range("2024-01-01", periods=60, tz="UTC")
    hours = pd.DatetimeIndex(
        [
            d + pd.Timedelta(hours=14, minutes=30) + pd.Timedelta(hours=h)
            for d in days
            for h in range(7)
        ]
    )
    assert periods_per_year(hours) == 252.0 * 7
    assert periods_per_year(hours, trading_days=250) == 250.0 * 7
    # Minute bars of a 390-minute session in New York time.
    session = pd.date_range("09:30", periods=390, freq="min")
    minutes = pd.DatetimeIndex(
        [pd.Timestamp.combine(d.date(), t.time()) for d in days[:10] for t in session]
    ).tz_localize("America/New_York")
    assert periods_per_year(minutes) == 252.0 * 390
    # Business days with a few holidays stay daily.
    holidays = pd.bdate_range("2024-01-01", periods=300, tz="UTC").delete([5, 6, 7, 40])
    assert periods_per_year(holidays) == 252.0
