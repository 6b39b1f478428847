"""Each rule of the reference momentum strategy, pinned on hand-built data."""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import create
from raytrader.agents.context import BarContext
from raytrader.agents.rules.momentum import Momentum, is_second_weekday_of_month
from raytrader.data.market_data import MarketData
from raytrader.domain import Signal

N = 60
DATES = pd.bdate_range("2024-01-01", periods=N, tz="UTC")  # 2024-01-01 is a Monday
# Small windows so hand-built series warm up quickly; the rules are the same as the defaults.
PARAMS = {
    "lookback_period": 10,
    "exit_ma_period": 5,
    "index_ma_period": 10,
    "atr_period": 3,
    "top_percentage": 0.2,
    "risk_factor": 0.001,
}
GROWTH = {"AAA": 0.010, "BBB": 0.005, "CCC": 0.001, "DDD": -0.003, "EEE": -0.006}


class FakeAccount:
    """A PortfolioView with fixed holdings."""

    def __init__(self, positions: dict[str, float], equity: float = 1_000_000.0) -> None:
        self.positions = positions
        self._equity = equity
        self.cash = equity

    def position(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def equity(self) -> float:
        return self._equity


def frame(close: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": 1e6,
        },
        index=DATES,
    )


def universe(index_rising: bool, tweak: dict[str, np.ndarray] | None = None) -> MarketData:
    t = np.arange(N)
    frames = {s: frame(100 * np.exp(g * t)) for s, g in GROWTH.items()}
    for symbol, close in (tweak or {}).items():
        frames[symbol] = frame(close)
    drift = 0.004 if index_rising else -0.004
    frames["INDEX"] = frame(1000 * np.exp(drift * t))
    return MarketData.from_frames(frames)


def bar_of(day: str) -> int:
    return int(DATES.get_loc(pd.Timestamp(day, tz="UTC")))


def decide(data: MarketData, day: str, account: FakeAccount, agent: Momentum | None = None):
    agent = agent or create("momentum", PARAMS)  # type: ignore[assignment]
    assert isinstance(agent, Momentum)
    ctx = BarContext(data, agent.indicators(data), account)
    ctx.i = bar_of(day)
    assert ctx.i >= agent.warmup
    return {s.symbol: s for s in agent.on_bar(ctx) or []}, ctx


def target_size(ctx: BarContext, symbol: str, equity: float = 1_000_000.0) -> float:
    return math.floor(equity * 0.001 / ctx.value("atr", ctx.sym(symbol)))


def test_second_wednesday_is_days_8_to_14() -> None:
    assert is_second_weekday_of_month(date(2024, 1, 10))
    assert not is_second_weekday_of_month(date(2024, 1, 3))
    assert not is_second_weekday_of_month(date(2024, 1, 17))


def test_decides_only_on_wednesdays() -> None:
    data = universe(index_rising=True)
    signals, _ = decide(data, "2024-01-23", FakeAccount({}))  # a Tuesday
    assert signals == {}


def test_buys_the_top_fifth_while_index_above_its_ma() -> None:
    data = universe(index_rising=True)
    signals, ctx = decide(data, "2024-01-24", FakeAccount({}))  # a Wednesday (4th of January)
    # 5 stocks, top 20% -> only the strongest, AAA, sized equity x rf / ATR.
    assert set(signals) == {"AAA"}
    assert signals["AAA"].reason == "entry"
    assert signals["AAA"].quantity == target_size(ctx, "AAA")


def test_no_new_buys_while_index_below_its_ma() -> None:
    data = universe(index_rising=False)
    signals, ctx = decide(data, "2024-01-24", FakeAccount({}))
    assert ctx.close(ctx.sym("INDEX")) < ctx.value("index_ma", ctx.sym("INDEX"))
    assert signals == {}


def test_holding_that_left_the_top_is_sold() -> None:
    data = universe(index_rising=True)
    signals, _ = decide(data, "2024-01-24", FakeAccount({"BBB": 50.0, "AAA": 10.0}))
    assert signals["BBB"].quantity == 0.0
    assert signals["BBB"].reason == "left the top"
    assert "AAA" not in signals or signals["AAA"].quantity != 0.0


def test_holding_below_its_exit_ma_is_sold_even_in_the_top() -> None:
    t = np.arange(N)
    close = 100 * np.exp(0.02 * t)
    close[bar_of("2024-01-24")] *= 0.85  # a sharp drop under the 5-bar MA on the decision day
    data = universe(index_rising=True, tweak={"AAA": close})
    signals, ctx = decide(data, "2024-01-24", FakeAccount({"AAA": 10.0}))
    ranked = sorted(GROWTH, key=lambda s: -ctx.value("momentum", ctx.sym(s)))
    assert ranked[0] == "AAA"  # still the top by momentum
    assert signals["AAA"].quantity == 0.0
    assert signals["AAA"].reason == "below exit MA"


def test_explicit_sell_is_honoured_at_the_next_update() -> None:
    data = universe(index_rising=True)
    agent = create("momentum", PARAMS)
    assert isinstance(agent, Momentum)
    agent.request_sell("AAA")
    signals, _ = decide(data, "2024-01-24", FakeAccount({"AAA": 10.0}), agent)
    assert signals["AAA"].quantity == 0.0
    assert signals["AAA"].reason == "explicit sell"
    assert agent.get_state()["sell_requests"] == []


@pytest.mark.parametrize(
    ("day", "expect_upsize"),
    [("2024-02-14", True), ("2024-03-13", True), ("2024-02-21", False), ("2024-03-06", False)],
)
def test_second_wednesday_rebalance_resizes_regardless_of_index(
    day: str, expect_upsize: bool
) -> None:
    data = universe(index_rising=False)
    held = 1.0  # far below target: a resize means buying more
    signals, ctx = decide(data, day, FakeAccount({"AAA": held}))
    assert ctx.close(ctx.sym("INDEX")) < ctx.value("index_ma", ctx.sym("INDEX"))
    if expect_upsize:
        assert signals["AAA"].reason == "rebalance"
        assert signals["AAA"].quantity == target_size(ctx, "AAA") > held
    else:
        # Index filter off and not a second Wednesday: no buying, not even to resize.
        assert "AAA" not in signals


def test_weekly_resize_down_happens_with_index_below_ma() -> None:
    data = universe(index_rising=False)
    signals, ctx = decide(data, "2024-01-24", FakeAccount({"AAA": 1e6}))
    assert signals["AAA"].reason == "resize"
    assert signals["AAA"].quantity == target_size(ctx, "AAA")


def test_missing_index_symbol_is_a_clear_error() -> None:
    t = np.arange(N)
    data = MarketData.from_frames({"AAA": frame(100 * np.exp(0.01 * t))})
    with pytest.raises(ValueError, match="index symbol 'INDEX' is not in the data"):
        create("momentum", PARAMS).indicators(data)


def test_state_round_trip() -> None:
    agent = create("momentum", PARAMS)
    assert isinstance(agent, Momentum)
    data = universe(index_rising=True)
    decide(data, "2024-01-24", FakeAccount({}), agent)
    agent.request_sell("BBB")
    clone = create("momentum", PARAMS)
    clone.set_state(agent.get_state())
    assert (
        clone.get_state()
        == agent.get_state()
        == {
            "last_update": "2024-01-24",
            "sell_requests": ["BBB"],
        }
    )


def test_signals_are_signals() -> None:
    data = universe(index_rising=True)
    signals, _ = decide(data, "2024-01-24", FakeAccount({}))
    assert all(isinstance(s, Signal) for s in signals.values())


@pytest.mark.parametrize("warmup_hour", [0, 5])
def test_on_intraday_bars_it_decides_once_per_wednesday(warmup_hour: int) -> None:
    """Active bars: every bar of a Wednesday; on_bar acts at the first it sees (the day's
    first, or the first after a warm-up that ends later that Wednesday) and at no other."""
    hours = pd.date_range("2024-01-01", periods=24 * 7 * 8, freq="1h", tz="UTC", name="ts")
    rng = np.random.default_rng(3)
    frames = {}
    for symbol in [*GROWTH, "INDEX"]:
        close = 100 * np.exp(np.cumsum(rng.normal(0.0005, 0.01, len(hours))))
        frames[symbol] = pd.DataFrame(
            {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close},
            index=hours,
        ).assign(volume=1e6)
    data = MarketData.from_frames(frames)
    # A warm-up ending on the third Wednesday (2024-01-17) at warmup_hour.
    warmup = int(hours.get_loc(pd.Timestamp("2024-01-17", tz="UTC"))) + warmup_hour
    agent = Momentum(lookback_period=warmup, exit_ma_period=5, index_ma_period=10, atr_period=3)
    assert agent.warmup == warmup
    ind = agent.indicators(data)
    active = agent.active_bars(data, ind)
    assert active.tolist() == (hours.weekday == 2).tolist()
    ctx = BarContext(data, ind, FakeAccount({}))
    decided = []
    for i in range(warmup, data.n_bars):
        ctx.i = i
        before = agent.get_state()["last_update"]
        out = agent.on_bar(ctx)
        if agent.get_state()["last_update"] != before:
            decided.append(hours[i])
        elif not active[i]:
            assert not out
    assert decided[0] == hours[warmup]
    assert [ts.hour for ts in decided[1:]] == [0] * (len(decided) - 1)
    assert [ts.date().isoformat() for ts in decided] == [
        "2024-01-17",
        "2024-01-24",
        "2024-01-31",
        "2024-02-07",
        "2024-02-14",
        "2024-02-21",
    ]
