"""The numba fast path makes the event engine's trades and equity curve, or refuses to run."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from raytrader.agents import Agent, AgentParams, create
from raytrader.agents.context import BarContext
from raytrader.agents.events import TargetEvents
from raytrader.backtesting.engine import BacktestEngine
from raytrader.backtesting.fast_path import (
    FastPathUnsupported,
    FastResult,
    round_trip_stats,
    run_events,
    run_fast,
    simulate,
    unsupported_reason,
)
from raytrader.backtesting.result import BacktestResult
from raytrader.data.market_data import MarketData
from raytrader.domain import Fill, OrderStatus, OrderType, Side, Signal
from raytrader.execution import CommissionModel, PaperBrokerConfig, SlippageModel
from raytrader.portfolio import PortfolioConfig
from raytrader.risk import RiskLimits, SizingConfig
from raytrader.state import Ledger, Trade, compute_metrics, periods_per_year

Frame = Callable[..., pd.DataFrame]
CASH = 100_000.0


def run_both(
    data: MarketData,
    make_agent: Callable[[], Agent],
    broker: PaperBrokerConfig,
    portfolio: PortfolioConfig,
    cash: float = CASH,
) -> tuple[BacktestResult, FastResult]:
    engine = BacktestEngine(cash, broker, portfolio).run(data, [make_agent()])
    return engine, run_fast(data, make_agent(), cash, broker, portfolio)


def assert_same(engine: BacktestResult, fast: FastResult, data: MarketData) -> None:
    """Same fills exactly (bar, side, quantity, price, commission); equity to 1e-9 relative."""
    fills = engine.fills
    expected = pd.DataFrame(
        {
            "bar": data.index.get_indexer(pd.DatetimeIndex([f.ts for f in fills])),
            "side": [f.side.sign for f in fills],
            "quantity": [f.quantity for f in fills],
            "price": [f.price for f in fills],
            "commission": [f.commission for f in fills],
        }
    )
    got = fast.fills
    assert len(got) == len(expected)
    for column in expected.columns:
        np.testing.assert_array_equal(got[column].to_numpy(), expected[column].to_numpy(), column)
    assert list(got["ts"]) == [f.ts for f in fills]
    np.testing.assert_allclose(fast.equity.to_numpy(), engine.equity.to_numpy(), rtol=1e-9, atol=0)
    assert fast.final_equity == pytest.approx(float(engine.equity.iloc[-1]), rel=1e-9, abs=0)
    np.testing.assert_array_equal(
        fast.position.to_numpy(), engine.positions[data.symbols[0]].to_numpy()
    )
    assert fast.n_trades == len(engine.trades)
    assert_same_trade_stats(fast, engine.trades)


def assert_same_trade_stats(fast: FastResult, trades: Sequence[Trade]) -> None:
    """The compiled round trips have the ledger's pnl and return_pct, bit for bit."""
    stats = fast.trade_stats()
    np.testing.assert_array_equal(stats.pnl, [t.pnl for t in trades], "pnl")
    np.testing.assert_array_equal(stats.return_pct, [t.return_pct for t in trades], "return_pct")


def broker(
    bps: float = 0.0, minimum: float = 0.0, slippage: float = 0.0, lot: float = 0.0
) -> PaperBrokerConfig:
    return PaperBrokerConfig(
        commission=CommissionModel(bps=bps, minimum=minimum),
        slippage=SlippageModel(bps=slippage),
        lot_size=lot,
    )


def portfolio(
    lot: float = 1.0,
    max_weight: float = 1.0,
    max_gross: float = 1.0,
    allow_short: bool = False,
    **kw: Any,
) -> PortfolioConfig:
    limits = RiskLimits(
        max_position_weight=max_weight, max_gross_exposure=max_gross, allow_short=allow_short
    )
    return PortfolioConfig(lot_size=lot, limits=limits, **kw)


# ------------------------------------------------------------------------------- the grid

AGENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "sma": ("sma_cross", {"fast": 5, "slow": 20}),
    "sma-short": ("sma_cross", {"fast": 8, "slow": 30, "allow_short": True, "weight": 0.8}),
    "rsi": ("rsi_reversion", {"period": 7}),
    "rsi-short": ("rsi_reversion", {"period": 5, "allow_short": True, "weight": 0.9}),
    "bollinger": ("bollinger_breakout", {"period": 10, "k": 1.5}),
    "bollinger-short": ("bollinger_breakout", {"period": 15, "k": 1.0, "allow_short": True}),
}

COSTS: dict[str, PaperBrokerConfig] = {
    "free": broker(),
    "bps": broker(bps=10.0),
    "bps+min+slippage": broker(bps=10.0, minimum=5.0, slippage=3.0),
    "min-dominates": broker(bps=1.0, minimum=40.0, slippage=7.0),
}


@pytest.mark.parametrize("lot", [1.0, 0.001, 0.0])
@pytest.mark.parametrize("cost", list(COSTS))
@pytest.mark.parametrize("key", list(AGENTS))
def test_parity_with_the_event_engine(gbm_frame: Frame, key: str, cost: str, lot: float) -> None:
    name, params = AGENTS[key]
    short = bool(params.get("allow_short", False))
    seed = sorted(AGENTS).index(key) * 100 + sorted(COSTS).index(cost) * 10 + int(lot * 7)
    data = MarketData.from_frames({"X": gbm_frame(1200, seed=seed)})
    engine, fast = run_both(
        data, lambda: create(name, params), COSTS[cost], portfolio(lot, allow_short=short)
    )
    assert len(engine.fills) >= 6  # the case trades
    assert_same(engine, fast, data)


@pytest.mark.parametrize(
    ("key", "limits"),
    [
        ("sma", {"max_weight": 0.45}),
        ("rsi", {"max_weight": 0.7}),
        ("bollinger", {"max_weight": 0.3}),
        ("sma-short", {"max_weight": 0.6, "allow_short": True}),
        ("sma-short", {"max_weight": 2.0, "max_gross": 1.5, "allow_short": True}),
        ("rsi-short", {"max_weight": 0.5, "max_gross": 0.4, "allow_short": True}),
        ("bollinger-short", {"max_weight": 3.0, "max_gross": 2.0, "allow_short": True}),
        ("sma-short", {"allow_short": False}),  # the agent's shorts are clipped to flat
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_parity_under_position_and_exposure_limits(
    gbm_frame: Frame, key: str, limits: dict[str, Any], seed: int
) -> None:
    name, params = AGENTS[key]
    data = MarketData.from_frames({"X": gbm_frame(1000, seed=seed, vol=0.03)})
    for lot in (1.0, 0.0):
        engine, fast = run_both(
            data,
            lambda: create(name, params),
            broker(bps=5.0, minimum=1.0, slippage=2.0),
            portfolio(lot, **limits),
        )
        assert len(engine.fills) >= 4
        assert_same(engine, fast, data)


def test_shorts_are_capped_by_gross_exposure_like_longs(gbm_frame: Frame) -> None:
    # The rebalancer cuts a short at the gross cap as it cuts a long: nothing is refused.
    data = MarketData.from_frames({"X": gbm_frame(1000, seed=1, vol=0.03)})
    name, params = AGENTS["rsi-short"]
    engine, fast = run_both(
        data,
        lambda: create(name, params),
        broker(bps=5.0, minimum=1.0, slippage=2.0),
        portfolio(1.0, max_weight=0.5, max_gross=0.4, allow_short=True),
    )
    assert not [st for st in engine.orders if st.status is OrderStatus.REJECTED]
    cut = [a for a in engine.adjustments if a.reason == "max_gross_exposure" and a.wanted < 0]
    assert cut
    assert min(engine.positions["X"]) < 0
    assert_same(engine, fast, data)


@pytest.mark.parametrize("seed", [3, 4, 5])
@pytest.mark.parametrize(
    "params",
    [
        {"fast": 3, "slow": 7},
        {"fast": 10, "slow": 30, "weight": 0.5},
        {"fast": 2, "slow": 50, "allow_short": True},
    ],
)
def test_sma_parity_on_intraday_bars(gbm_frame: Frame, seed: int, params: dict[str, Any]) -> None:
    short = bool(params.get("allow_short", False))
    data = MarketData.from_frames({"X": gbm_frame(3000, seed=seed, freq="1min", vol=0.001)})
    engine, fast = run_both(
        data,
        lambda: create("sma_cross", params),
        broker(bps=10.0),
        portfolio(1.0, allow_short=short),
        cash=1_000_000.0,
    )
    assert len(engine.fills) >= 20
    assert_same(engine, fast, data)


def test_broker_lot_grid_rejections_and_cuts_match(gbm_frame: Frame) -> None:
    data = MarketData.from_frames({"X": gbm_frame(1000, seed=11)})
    for broker_lot, lot in [(1.0, 1.0), (0.01, 0.001), (1.0, 0.0), (0.5, 0.25)]:
        engine, fast = run_both(
            data,
            lambda: create("sma_cross", {"fast": 5, "slow": 20, "allow_short": True}),
            broker(bps=10.0, minimum=2.0, lot=broker_lot),
            portfolio(lot, allow_short=True),
        )
        assert_same(engine, fast, data)
    # The last configs made orders off the broker's grid: the broker rejected them.
    assert any(o.status is OrderStatus.REJECTED for o in engine.orders)


def test_sizing_settings_do_not_matter_for_weight_targets(gbm_frame: Frame) -> None:
    data = MarketData.from_frames({"X": gbm_frame(800, seed=12)})
    cfg = portfolio(1.0, sizing=SizingConfig(method="atr_risk", risk_factor=0.01))
    engine, fast = run_both(
        data, lambda: create("rsi_reversion", {"period": 6}), broker(bps=10.0), cfg
    )
    assert len(engine.fills) >= 4
    assert_same(engine, fast, data)


def test_metrics_are_the_engines(gbm_frame: Frame) -> None:
    data = MarketData.from_frames({"X": gbm_frame(1500, seed=13)})
    engine, fast = run_both(
        data,
        lambda: create("bollinger_breakout", {"period": 12, "allow_short": True}),
        broker(bps=10.0, minimum=1.0, slippage=2.0),
        portfolio(1.0, allow_short=True),
    )
    assert_same(engine, fast, data)
    want, got = engine.metrics().as_dict(), fast.metrics().as_dict()
    assert want.keys() == got.keys()
    for key, value in want.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), key
        else:
            assert got[key] == value, key
    trades = fast.trades()
    assert [t.pnl for t in trades] == pytest.approx([t.pnl for t in engine.trades], rel=1e-12)


def ledger_metrics(fast: FastResult) -> dict[str, Any]:
    """``FastResult.metrics`` the slow way: the ledger's trades and pandas, as the engine does."""
    fills = fast.fills
    return compute_metrics(
        fast.equity,
        fast.trades(),
        periods_per_year=periods_per_year(pd.DatetimeIndex(fast.equity.index)),
        exposure=(fast.gross_exposure / fast.equity).fillna(0.0),
        traded_notional=float(sum((fills["quantity"] * fills["price"]).tolist())),
    ).as_dict()


@pytest.mark.parametrize("cost", ["bps", "min-dominates"])
@pytest.mark.parametrize("key", list(AGENTS))
def test_metrics_equal_the_ledger_trades_metrics(gbm_frame: Frame, key: str, cost: str) -> None:
    name, params = AGENTS[key]
    short = bool(params.get("allow_short", False))
    data = MarketData.from_frames({"X": gbm_frame(1500, seed=31 + sorted(AGENTS).index(key))})
    fast = run_fast(
        data, create(name, params), CASH, COSTS[cost], portfolio(0.0, allow_short=short)
    )
    assert fast.n_trades >= 3
    assert_same_trade_stats(fast, fast.trades())
    want, got = ledger_metrics(fast), fast.metrics().as_dict()
    assert want.keys() == got.keys()
    for key_, value in want.items():
        if isinstance(value, float):
            assert got[key_] == pytest.approx(value, rel=1e-12, abs=0, nan_ok=True), key_
        else:
            assert got[key_] == value, key_
    assert fast.metrics(365.0) == compute_metrics(
        fast.equity,
        fast.trades(),
        periods_per_year=365.0,
        exposure=(fast.gross_exposure / fast.equity).fillna(0.0),
        traded_notional=got["traded_notional"],
    )


def _ledger_trades(
    sides: Sequence[int], qty: Sequence[float], price: Sequence[float], fee: Sequence[float]
) -> list[Trade]:
    ledger = Ledger(CASH)
    ts = pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()
    for side, q, p, c in zip(sides, qty, price, fee, strict=True):
        ledger.apply_fill(Fill("x", "X", Side.BUY if side > 0 else Side.SELL, q, p, c, ts))
    return ledger.trades


def test_trade_stats_book_as_the_ledger_on_random_fills() -> None:
    """Random fill paths: opens, adds, partial and full closes, flips, closes off by dust."""
    rng = np.random.default_rng(41)
    ts = pd.Timestamp("2024-01-01", tz="UTC").to_pydatetime()
    closed = 0
    for _ in range(200):
        ledger = Ledger(CASH)
        sides, qty, price, fee = [], [], [], []
        p = 100.0
        for _ in range(int(rng.integers(1, 60))):
            held = ledger.position("X").quantity
            away = -1 if held > 0 else 1
            action = rng.random()
            if held == 0.0 or action < 0.3:  # open or add
                side = int(rng.choice([-1, 1])) if held == 0.0 else -away
                q = float(rng.choice([0.1, 0.2, 0.3, 1.0, 2.5]))
            elif action < 0.5:  # partial reduction
                side, q = away, abs(held) * float(rng.choice([0.25, 0.5, 0.7]))
            elif action < 0.75:  # full close, possibly off by float dust
                side, q = away, round(abs(held), 9)
            else:  # flip through zero
                side, q = away, abs(held) + float(rng.choice([0.1, 1.0, 2.5]))
            p *= math.exp(rng.normal(0.0, 0.02))
            c = 0.0 if rng.random() < 0.3 else max(q * p * 1e-3, 1.0)
            ledger.apply_fill(Fill("x", "X", Side.BUY if side > 0 else Side.SELL, q, p, c, ts))
            sides.append(side)
            qty.append(q)
            price.append(p)
            fee.append(c)
        pnl, ret = round_trip_stats(
            np.asarray(sides, np.int8), np.asarray(qty), np.asarray(price), np.asarray(fee)
        )
        np.testing.assert_array_equal(pnl, [t.pnl for t in ledger.trades])
        np.testing.assert_array_equal(ret, [t.return_pct for t in ledger.trades])
        closed += len(ledger.trades)
    assert closed > 1000


@pytest.mark.parametrize(
    ("sides", "qty", "n_trades"),
    [
        ([1, 1, -1], [0.1, 0.2, 0.3], 1),  # 0.1 + 0.2 - 0.3 leaves dust: a full close
        ([-1, -1, 1], [0.1, 0.2, 0.3], 1),  # the same, short
        ([1, -1, -1, 1], [2.0, 5.0, 1.0, 4.0], 2),  # flip long to short, cover
        ([1, -1, -1, -1], [3.0, 1.0, 1.0, 1.0], 1),  # partial reductions, then the close
        ([1, -1, 1, -1, 1], [1.0, 3.0, 5.0, 7.0, 4.0], 4),  # flip after flip
        ([1, 1, -1], [1.0, 2.0, 1.5], 0),  # still open
    ],
)
def test_trade_stats_crafted_paths(sides: list[int], qty: list[float], n_trades: int) -> None:
    price = [100.0, 103.0, 97.5, 101.25, 99.0][: len(sides)]
    fee = [5.0, 1.5, 2.25, 3.0, 0.75][: len(sides)]
    want = _ledger_trades(sides, qty, price, fee)
    assert len(want) == n_trades
    pnl, ret = round_trip_stats(
        np.asarray(sides, np.int8), np.asarray(qty), np.asarray(price), np.asarray(fee)
    )
    np.testing.assert_array_equal(pnl, [t.pnl for t in want])
    np.testing.assert_array_equal(ret, [t.return_pct for t in want])


# ------------------------------------------------------------------- crafted order paths


class ScriptedWeights(Agent):
    """Emits weight targets at given bars: ``{bar: (weight, held)}``, ``held`` as in events.

    A vectorizable test double: ``on_bar`` and ``target_events`` say the same thing.
    """

    name = "scripted_weights"
    vectorizable = True

    def __init__(self, script: dict[int, tuple[float, int]]) -> None:
        super().__init__()
        self.script = script

    def on_bar(self, ctx: BarContext) -> Sequence[Signal] | None:
        item = self.script.get(ctx.i)
        if item is None:
            return None
        weight, held = item
        pos = ctx.position(ctx.symbols[0])
        if held and not (pos > 0 if held > 0 else pos < 0):
            return None
        return [Signal(ctx.symbols[0], ctx.ts, weight=weight)]

    def target_events(self, data: MarketData) -> TargetEvents:
        out = TargetEvents.unconditional(np.full((1, data.n_bars), np.nan))
        for bar, (weight, held) in self.script.items():
            out.target[0, bar] = weight
            out.held[0, bar] = held
        return out


def _run_script(
    data: MarketData, script: dict[int, tuple[float, int]], bkr: PaperBrokerConfig, pf: Any
) -> tuple[BacktestResult, FastResult]:
    engine, fast = run_both(data, lambda: ScriptedWeights(script), bkr, pf)
    assert_same(engine, fast, data)
    return engine, fast


@pytest.mark.parametrize(
    ("next_open", "script", "statuses"),
    [
        # The rest of the order meets the next open and fills there.
        (0.99, {2: (1.0, 0)}, ["partially_filled", "filled"]),
        # The rest cannot be paid at a higher open: cancelled for cash.
        (1.01, {2: (1.0, 0)}, ["partially_filled", "cancelled"]),
        # A new target at the next close supersedes the rest.
        (0.99, {2: (1.0, 0), 3: (1.0, 0)}, ["partially_filled", "cancelled", "filled"]),
    ],
)
def test_a_buy_cut_by_cash_rests_like_the_brokers(
    gbm_frame: Frame, next_open: float, script: dict[int, tuple[float, int]], statuses: list[str]
) -> None:
    # An open at which the cash buys 1000 units less 5e-10: the rebalancer's lot rounding
    # (floor with a 1e-9 tolerance) asks for 1000, the broker can pay 999 on its lot grid.
    df = gbm_frame(10, seed=3)
    df.loc[df.index[3], "open"] = CASH / (1000 - 5e-10)
    df.loc[df.index[4], "open"] = df["open"].iloc[3] * next_open
    data = MarketData.from_frames({"X": df})
    engine, _ = _run_script(data, script, broker(lot=1.0), portfolio(1.0))
    seen = [str(st.status) for st in engine.journal if st.status is not OrderStatus.ACCEPTED]
    assert seen == statuses


def test_exits_bound_to_a_position_sign(gbm_frame: Frame) -> None:
    data = MarketData.from_frames({"X": gbm_frame(40, seed=4)})
    script = {
        2: (0.0, 1),  # flat: an exit of a long is not emitted
        4: (-0.5, 0),  # short
        6: (0.0, 1),  # short: not emitted
        8: (0.0, -1),  # short: emitted, flat again
        10: (1.0, 0),  # long
        12: (0.0, -1),  # long: not emitted
        14: (0.3, 0),  # trim the long
        16: (0.0, 1),  # long: emitted
        18: (0.0, 0),  # flat: an unconditional exit makes no order
    }
    engine, fast = _run_script(data, script, broker(bps=10.0), portfolio(1.0, allow_short=True))
    assert [f.side for f in engine.fills] == [Side.SELL, Side.BUY, Side.BUY, Side.SELL, Side.SELL]
    assert [r.bar for r in engine.signals] == [4, 8, 10, 14, 16, 18]
    assert fast.n_trades == 2


def test_events_reproduce_on_bar(gbm_frame: Frame) -> None:
    """Each agent's events, filtered by the position held at the bar, are its signals.

    Two symbols: events are per symbol row, as the agents' ``on_bar`` loops over symbols.
    """
    frames = {"X": gbm_frame(1500, seed=21), "Y": gbm_frame(1500, seed=22)}
    data = MarketData.from_frames(frames)
    for name, params in AGENTS.values():
        agent = create(name, params)
        short = bool(params.get("allow_short", False))
        cfg = portfolio(1.0, max_weight=0.5, allow_short=short)
        engine = BacktestEngine(CASH, broker(bps=10.0), cfg).run(data, [agent])
        events = agent.target_events(data)  # type: ignore[attr-defined]
        assert isinstance(events, TargetEvents)
        assert events.shape == (2, data.n_bars)
        for row, symbol in enumerate(data.symbols):
            target, held = events.target[row], events.held[row]
            pos = engine.positions[symbol].to_numpy()
            emitted = ~np.isnan(target) & (
                (held == 0) | ((held > 0) & (pos > 0)) | ((held < 0) & (pos < 0))
            )
            signals = [r for r in engine.signals if r.signal.symbol == symbol]
            assert [r.bar for r in signals] == np.flatnonzero(emitted).tolist(), name
            assert [r.signal.weight for r in signals] == target[emitted].tolist(), name
            assert np.isnan(target[: agent.warmup]).all()
        assert len(engine.signals) >= 10


def test_vectorizable_flags() -> None:
    assert Agent.vectorizable is False
    assert create("momentum").vectorizable is False
    for name in ("sma_cross", "rsi_reversion", "bollinger_breakout"):
        assert create(name).vectorizable is True


# ------------------------------------------------------------------------------ refusals


def _data(gbm_frame: Frame, n: int = 200, **frames: pd.DataFrame) -> MarketData:
    return MarketData.from_frames(frames or {"X": gbm_frame(n, seed=5)})


def test_refuses_several_symbols(gbm_frame: Frame) -> None:
    data = _data(gbm_frame, X=gbm_frame(100, seed=1), Y=gbm_frame(100, seed=2))
    with pytest.raises(FastPathUnsupported, match="one symbol; the data has 2"):
        run_fast(data, create("sma_cross"))


def test_refuses_a_participation_cap(gbm_frame: Frame) -> None:
    cfg = PaperBrokerConfig(participation_rate=0.1)
    with pytest.raises(FastPathUnsupported, match="participation_rate"):
        run_fast(_data(gbm_frame), create("sma_cross"), CASH, cfg)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"exits": {"stop_loss_pct": 0.05}}, "exits"),
        ({"rebalance_band": 0.02}, "rebalance band"),
    ],
)
def test_refuses_exits_and_a_rebalance_band(
    gbm_frame: Frame, settings: dict[str, Any], match: str
) -> None:
    cfg = PortfolioConfig.model_validate(settings)
    with pytest.raises(FastPathUnsupported, match=match):
        run_fast(_data(gbm_frame), create("sma_cross"), CASH, portfolio=cfg)


def test_refuses_agents_that_are_not_vectorizable(gbm_frame: Frame) -> None:
    with pytest.raises(FastPathUnsupported, match="'momentum' is not vectorizable"):
        run_fast(_data(gbm_frame), create("momentum"))
    assert isinstance(FastPathUnsupported("x"), ValueError)  # callers may catch ValueError


class LimitOrders(ScriptedWeights):
    class Params(AgentParams):
        order_type: OrderType = OrderType.LIMIT

    name = "limit_orders"


def test_refuses_non_market_orders(gbm_frame: Frame) -> None:
    agent = LimitOrders({})
    with pytest.raises(FastPathUnsupported, match="places limit orders"):
        run_fast(_data(gbm_frame), agent)


@pytest.mark.parametrize(
    ("column", "value", "why"),
    [
        ("open", np.nan, "missing or invalid open or close"),
        ("close", np.nan, "missing or invalid open or close"),
        ("open", 0.0, "missing or invalid open or close"),
        ("low", 1e9, "low above high"),
    ],
)
def test_refuses_bars_the_engine_treats_specially(
    gbm_frame: Frame, column: str, value: float, why: str
) -> None:
    df = gbm_frame(200, seed=6)
    df.loc[df.index[50], column] = value
    with pytest.raises(FastPathUnsupported, match=why) as info:
        run_fast(MarketData.from_frames({"X": df}), create("sma_cross"))
    assert "first: bar 50" in str(info.value)


def test_refuses_bad_events_and_cash(gbm_frame: Frame) -> None:
    data = _data(gbm_frame)
    with pytest.raises(FastPathUnsupported, match="shape"):
        run_events(data, TargetEvents.unconditional(np.zeros((1, 5))))
    with pytest.raises(FastPathUnsupported, match="TargetEvents"):
        run_events(data, np.zeros((1, data.n_bars)))  # type: ignore[arg-type]
    bad = TargetEvents.unconditional(np.zeros((1, data.n_bars)))
    bad.held[0, 3] = 2
    with pytest.raises(FastPathUnsupported, match="held"):
        run_events(data, bad)
    with pytest.raises(FastPathUnsupported, match="initial_cash"):
        run_fast(data, create("sma_cross"), initial_cash=0.0)
    assert unsupported_reason(data, agent=create("sma_cross")) is None


def test_no_events_no_fills(gbm_frame: Frame) -> None:
    data = _data(gbm_frame)
    res = run_events(data, TargetEvents.unconditional(np.full((1, data.n_bars), np.nan)), 5_000.0)
    assert res.fills.empty
    assert res.n_trades == 0
    assert (res.equity == 5_000.0).all()
    assert res.final_equity == 5_000.0


def test_kernel_reports_fills_beyond_its_room(gbm_frame: Frame) -> None:
    """``simulate`` flags a run with more fills than its room (run_events then reruns it)."""
    data = _data(gbm_frame)
    events = create("sma_cross", {"fast": 3, "slow": 8}).target_events(data)
    args = (
        *(np.ascontiguousarray(a[0]) for a in (data.open, data.close)),
        events.target[0],
        events.held[0],
        *(CASH, 0.0, 10.0, 0.0, 1.0, 0.0, 1.0, 1.0, False),
    )
    full = simulate(*args, data.n_bars)
    fills = len(full[0])
    assert fills > 4 and full[-1] >= 2
    cut = simulate(*args, fills - 1)
    assert cut[-1] == -1
    exact = simulate(*args, fills)
    assert exact[-1] == full[-1]
    for a, b in zip(exact[:7], full[:7], strict=True):
        np.testing.assert_array_equal(a, b)
    res = run_events(data, events, CASH)
    np.testing.assert_array_equal(res.fills["bar"].to_numpy(), full[0])
