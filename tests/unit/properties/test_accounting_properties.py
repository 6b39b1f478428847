"""Accounting properties of risk -> broker -> ledger, and of whole backtests, on random paths.

Component level: random orders (market, limit, stop, stop-limit; buys and sells, quantities
beyond what the cash affords, off-lot quantities, duplicate ids) go through ``PreTradeRisk``
(random limits), a ``PaperBroker`` whose buying power is the ledger's cash (random
commission with a minimum, slippage, participation and lot size) and the ``Ledger``, over
random OHLC bar paths. After every bar:

- equity marked at the close == cash + sum(quantity x close), and cash == initial cash plus
  the cash effect of every fill;
- with shorts disallowed (no margin), cash never goes below zero (but for one known
  exception, see ``FillTally.check_cash``);
- each symbol's position == the signed sum of its fills (up to the ledger's documented dust
  rule: a reduction leaving less than 1e-9 of the position closes it);
- an order refused by risk or rejected by the broker never changes the ledger.

Engine level: ``BacktestEngine`` runs a seeded random agent (weight and quantity signals,
market, limit and stop orders) with random limits and kill switch over short random paths;
the result's equity, cash and positions are checked bar by bar against its fills.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from raytrader.agents.base import Agent
from raytrader.agents.context import BarContext
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.market_data import MarketData
from raytrader.domain import (
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    Signal,
    TimeInForce,
)
from raytrader.execution import CommissionModel, PaperBroker, PaperBrokerConfig, SlippageModel
from raytrader.portfolio import PortfolioConfig
from raytrader.portfolio.planner import account_at
from raytrader.risk.checks import PreTradeRisk, RiskContext, bar_returns
from raytrader.risk.kill_switch import KillSwitch, KillSwitchConfig
from raytrader.risk.limits import RiskLimits
from raytrader.state import Ledger

# Reproducible in CI: the same examples on every run, no example database.
PROPERTY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SYMBOLS = ("AAA", "BBB")
T0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
# Six-hour bars: DAY orders meet a date boundary and the daily loss limit a new day.
STEP = timedelta(hours=6)
# The ledger closes a position when a reduction leaves less than this fraction of it.
LEDGER_DUST = 1e-9
REL = 1e-9

ORDER_TYPES = (OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT)
TIFS = tuple(TimeInForce)

# ---------------------------------------------------------------------------- strategies

prices = st.floats(5.0, 200.0, allow_nan=False, allow_infinity=False)
moves = st.floats(-0.15, 0.15, allow_nan=False)
extensions = st.floats(0.0, 0.1, allow_nan=False)
# Mostly enough volume to trade; zero volume (no fill under a participation cap) now and then.
volumes = st.one_of(*[st.floats(10.0, 50_000.0)] * 3, st.just(0.0))

BarSpec = tuple[float, float, float, float, float]  # open, high, low, close, volume


@st.composite
def bar_paths(draw: st.DrawFn, symbols: Sequence[str], min_bars: int, max_bars: int) -> Any:
    """Per symbol a list of valid bars: 0 < low <= open, close <= high."""
    n = draw(st.integers(min_bars, max_bars))
    out: dict[str, list[BarSpec]] = {}
    for s in symbols:
        price = draw(prices)
        bars = []
        for _ in range(n):
            gap, move, up, down = draw(moves), draw(moves), draw(extensions), draw(extensions)
            o = max(price * (1 + gap), 0.5)
            c = max(o * (1 + move), 0.5)
            high = max(o, c) * (1 + up)
            low = min(o, c) * (1 - down)
            bars.append((o, high, low, c, draw(volumes)))
            price = c
        out[s] = bars
    return out


@dataclass(frozen=True)
class OrderSpec:
    """An order relative to the reference price of the bar it is sent at."""

    symbol: str
    # "buy", "sell", or "reduce": trade a fraction ``size`` of the position back toward flat.
    side: str
    kind: OrderType
    # Notional as a fraction of the initial cash; above 1 it is more than the cash affords.
    size: float
    on_lot: bool  # rounded to the broker's lot size (else the broker may reject it)
    limit_off: float
    stop_off: float
    tif: TimeInForce
    duplicate: bool  # reuse an earlier order's client id (the broker rejects it)


initial_cash = st.sampled_from([1_000.0, 10_000.0]) | st.floats(1_000.0, 1e6)

order_specs = st.builds(
    OrderSpec,
    symbol=st.sampled_from(SYMBOLS),
    side=st.sampled_from(["buy", "sell", "reduce"]),
    kind=st.sampled_from(ORDER_TYPES),
    size=st.one_of(st.floats(1e-5, 1e-2), st.floats(1e-2, 0.5), st.floats(0.5, 3.0)),
    on_lot=st.integers(0, 5).map(lambda k: k < 5),
    limit_off=st.floats(-0.1, 0.1),
    stop_off=st.floats(-0.1, 0.1),
    tif=st.sampled_from(TIFS),
    duplicate=st.integers(0, 5).map(lambda k: k == 5),
)


@st.composite
def broker_configs(draw: st.DrawFn) -> PaperBrokerConfig:
    return PaperBrokerConfig(
        commission=CommissionModel(
            bps=draw(st.just(0.0) | st.floats(0.0, 50.0)),
            minimum=draw(st.sampled_from([0.0, 1.0, 5.0])),
        ),
        slippage=SlippageModel(bps=draw(st.floats(0.0, 10.0) | st.floats(0.0, 100.0))),
        participation_rate=draw(st.one_of(st.none(), st.floats(0.01, 1.0))),
        lot_size=draw(st.sampled_from([0.0, 1.0, 10.0])),
    )


@st.composite
def risk_limits(draw: st.DrawFn, cash: float) -> RiskLimits:
    """Random limits; each optional one is on in about a quarter of the examples."""

    def maybe(strategy: st.SearchStrategy[Any]) -> Any:
        return draw(st.none() | st.none() | st.none() | strategy)

    return RiskLimits(
        # Half the time loose enough for orders worth more than the cash to pass.
        max_position_weight=draw(st.just(3.0) | st.floats(0.05, 3.0)),
        max_gross_exposure=draw(st.just(4.0) | st.floats(0.1, 4.0)),
        allow_short=draw(st.booleans()),
        max_net_exposure=maybe(st.floats(0.05, 3.0)),
        max_open_orders=maybe(st.integers(1, 8)),
        max_order_notional=maybe(st.floats(0.01, 2.0).map(lambda f: f * cash)),
        price_band=maybe(st.floats(0.005, 0.3)),
        max_orders_per_minute=maybe(st.integers(1, 8)),
        daily_loss_limit=maybe(st.floats(0.001, 0.5)),
        max_correlation=maybe(st.floats(-0.9, 1.0)),
        max_var=maybe(st.floats(0.001, 0.5)),
        risk_lookback=draw(st.integers(10, 20)),
    )


# ------------------------------------------------------------------------------ helpers


def ledger_state(ledger: Ledger) -> tuple[Any, ...]:
    """What an order must not change unless it fills: cash, positions, transactions."""
    positions = {s: (p.quantity, p.avg_cost, p.realized_pnl) for s, p in ledger.positions().items()}
    books = (len(ledger.transactions), len(ledger.trades), ledger.commission_paid)
    return (ledger.cash, positions, *books)


@dataclass
class FillTally:
    """Fill-side accounting, independent of the ledger: what cash and positions must be."""

    initial_cash: float
    cash_flow: float = 0.0
    signed: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    gross: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # Remainders the ledger dropped when a reduction left less than LEDGER_DUST of a position.
    dust: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    notional: float = 0.0

    def book(self, ledger: Ledger, fill: Fill) -> None:
        """Book ``fill`` in the ledger and here; check the fill's own effect."""
        before = ledger.position(fill.symbol).quantity
        n_tx, cash = len(ledger.transactions), ledger.cash
        tx = ledger.apply_fill(fill)
        assert tx is not None and len(ledger.transactions) == n_tx + 1
        assert tx.client_order_id == fill.client_order_id
        q = fill.signed_quantity
        expected_after = before + q
        after = ledger.position(fill.symbol).quantity
        if after == 0.0 and expected_after != 0.0:
            # Only the documented dust rule may zero a position the fills leave open.
            assert abs(expected_after) <= LEDGER_DUST * abs(before), (before, q)
            self.dust[fill.symbol] += abs(expected_after)
        else:
            assert after == expected_after, (before, q, after)
        effect = -q * fill.price - fill.commission
        assert math.isclose(ledger.cash - cash, effect, rel_tol=1e-12, abs_tol=1e-12 * abs(cash))
        self.cash_flow += effect
        self.signed[fill.symbol] += q
        self.gross[fill.symbol] += abs(q)
        self.notional += abs(q) * fill.price + fill.commission

    @property
    def scale(self) -> float:
        return self.initial_cash + self.notional

    def check(self, ledger: Ledger, closes: Mapping[str, float], no_margin: bool) -> None:
        scale = self.scale
        tol = REL * scale
        positions = ledger.positions()
        # Cash is the initial cash plus the cash effect of every fill.
        assert abs(ledger.cash - (self.initial_cash + self.cash_flow)) <= tol
        # Each position is the signed sum of its fills (up to dropped dust).
        for s in set(self.signed) | set(positions):
            held = positions[s].quantity if s in positions else 0.0
            err = abs(held - self.signed[s])
            assert err <= self.dust[s] + 1e-12 * self.gross[s], (s, held, self.signed[s])
        # Equity at the close is cash plus the positions' value, and the PnL identity holds.
        equity = ledger.equity(closes)
        value = sum(p.quantity * closes[s] for s, p in positions.items())
        assert math.isclose(equity, ledger.cash + value, rel_tol=REL, abs_tol=tol)
        pnl = ledger.realized_pnl + ledger.unrealized_pnl(closes) - ledger.commission_paid
        assert math.isclose(equity, self.initial_cash + pnl, rel_tol=REL, abs_tol=tol)
        from_fills = self.initial_cash + self.cash_flow
        from_fills += sum(self.signed[s] * closes[s] for s in self.signed)
        dust_value = sum(self.dust[s] * closes[s] for s in self.dust)
        assert abs(equity - from_fills) <= tol + dust_value
        if no_margin:
            self.check_cash(ledger.cash)

    def check_cash(self, cash: float) -> None:
        """Without margin nothing may spend cash the account does not have (a sell whose
        minimum commission exceeds its proceeds included)."""
        assert cash >= -REL * self.scale, f"cash {cash} < 0 without margin"


def make_order(
    spec: OrderSpec, cid: str, ts: datetime, ref: float, cash: float, held: float, lot: float
) -> Order:
    if spec.side == "reduce" and held != 0.0:
        side = Side.SELL if held > 0 else Side.BUY
        qty = min(spec.size, 1.0) * abs(held)
    else:
        side = Side.BUY if spec.side == "buy" else Side.SELL
        qty = spec.size * cash / ref
    if lot > 0 and spec.on_lot:
        qty = max(round(qty / lot), 1) * lot
    limit = (
        ref * (1 + spec.limit_off) if spec.kind in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    )
    stop = (
        ref * (1 + spec.stop_off) if spec.kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None
    )
    return Order(
        client_order_id=cid,
        symbol=spec.symbol,
        side=side,
        quantity=qty,
        ts=ts,
        type=spec.kind,
        limit_price=limit,
        stop_price=stop,
        time_in_force=spec.tif,
    )


# ---------------------------------------------------------------------- component level


@st.composite
def cash_and_limits(draw: st.DrawFn) -> tuple[float, RiskLimits]:
    initial = draw(initial_cash)
    return initial, draw(risk_limits(initial))


def flat_path(symbols: Sequence[str], price: float, n: int) -> dict[str, list[BarSpec]]:
    return {s: [(price, price, price, price, 1e6)] * n for s in symbols}


def market_spec(symbol: str, side: str, size: float) -> OrderSpec:
    return OrderSpec(symbol, side, OrderType.MARKET, size, True, 0.0, 0.0, TimeInForce.GTC, False)


# All the cash in a buy (capped to what it affords), then a sell for less than its minimum
# commission: the sell costs cash the account does not have (the known exception).
@example(
    setup=(1_000.0, RiskLimits()),
    config=PaperBrokerConfig(commission=CommissionModel(minimum=1.0)),
    path=flat_path(SYMBOLS, 10.0, 2),
    batches=[[market_spec("AAA", "buy", 1.0)], [market_spec("AAA", "reduce", 1e-4)]],
)
@PROPERTY_SETTINGS
@given(
    setup=cash_and_limits(),
    config=broker_configs(),
    path=bar_paths(SYMBOLS, 1, 14),
    batches=st.lists(st.lists(order_specs, max_size=5), min_size=14, max_size=14),
)
def test_risk_broker_ledger_keep_the_books(
    setup: tuple[float, RiskLimits],
    config: PaperBrokerConfig,
    path: dict[str, list[BarSpec]],
    batches: list[list[OrderSpec]],
) -> None:
    initial, limits = setup
    ledger = Ledger(initial)
    broker = PaperBroker(config, buying_power=lambda: ledger.cash)
    risk = PreTradeRisk(limits)
    tally = FillTally(initial)
    day = KillSwitch(None, initial)  # tracks the day's starting equity only
    n = len(next(iter(path.values())))
    ref = {s: path[s][0][0] for s in SYMBOLS}  # the first open, then the last close
    history: list[list[float]] = [[ref[s]] for s in SYMBOLS]
    sent: list[datetime] = []
    ids: list[str] = []
    refused_ids: set[str] = set()
    rejected_ids: set[str] = set()
    filled_ids: set[str] = set()

    for i in range(n):
        ts = T0 + i * STEP
        orders = []
        for k, spec in enumerate(batches[i]):
            cid = ids[k % len(ids)] if spec.duplicate and ids else f"o{i}-{k}"
            held = ledger.position(spec.symbol).quantity
            orders.append(
                make_order(spec, cid, ts, ref[spec.symbol], initial, held, config.lot_size)
            )
        context = RiskContext(
            now=ts,
            open_orders=len(broker.open_orders()),
            order_times=[t for t in sent if t > ts - timedelta(minutes=1)],
            day_start_equity=day.day_start_for(ts),
            returns=bar_returns(SYMBOLS, np.array(history)) if limits.needs_returns else None,
        )

        # Risk reads an account view; a refused order never reaches the ledger.
        before = ledger_state(ledger)
        passed, refused = risk.check(orders, account_at(ledger, ref), ref, context)
        assert ledger_state(ledger) == before
        assert len(passed) + len(refused) == len(orders)
        for order, why in refused:
            assert why, order
            if order.client_order_id not in ids:
                refused_ids.add(order.client_order_id)

        # A rejection at submission (off-lot quantity, duplicate id) changes nothing either.
        for order in passed:
            before = ledger_state(ledger)
            known = order.client_order_id in ids
            state = broker.submit(order)
            assert ledger_state(ledger) == before
            if known:
                assert state.status is OrderStatus.REJECTED and "duplicate" in state.reason
            else:
                ids.append(order.client_order_id)
                if state.status is OrderStatus.REJECTED:
                    assert state.reason
                    rejected_ids.add(order.client_order_id)
            sent.append(ts)

        # Matching: rejections for cash happen inside the bar; only fills reach the ledger.
        bars = {s: path[s][i] for s in SYMBOLS}
        start = len(broker.journal)
        fills = broker.on_bars(ts, bars)
        for st_ in broker.journal[start:]:
            if st_.status is OrderStatus.REJECTED:
                assert st_.reason and st_.filled_quantity == 0.0
                rejected_ids.add(st_.order.client_order_id)
        before_tx = len(ledger.transactions)
        for fill in fills:
            assert fill.client_order_id not in rejected_ids | refused_ids
            filled_ids.add(fill.client_order_id)
            tally.book(ledger, fill)
        assert len(ledger.transactions) == before_tx + len(fills)

        closes = {s: path[s][i][3] for s in SYMBOLS}
        tally.check(ledger, closes, no_margin=not limits.allow_short)
        day.update(ts, ledger.equity(closes))
        ref = closes
        for j, s in enumerate(SYMBOLS):
            history[j].append(closes[s])

    # Rejected orders stay rejected and unfilled; refused ones never reached the broker.
    assert not filled_ids & rejected_ids
    at_broker = {st_.order.client_order_id for st_ in broker.orders()}
    assert not refused_ids & at_broker
    for st_ in broker.orders():
        if st_.status is OrderStatus.REJECTED:
            assert st_.filled_quantity == 0.0 and st_.reason
    assert {t.client_order_id for t in ledger.transactions} == filled_ids


# ------------------------------------------------------------------------- engine level


class RandomAgent(Agent):
    """Random targets from a seeded generator: causal, it reads nothing but the present bar.

    At an active bar it either repeats its last targets (a rebalance that trades the drift
    only), spreads the whole equity long or short over random weights, or draws each symbol's
    target on its own: a weight, a flat target or a quantity worth up to twice the equity.
    """

    name = "random_targets"

    def __init__(self, seed: int, activity: float) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.activity = activity
        self.last: dict[str, dict[str, float]] = {}

    def on_bar(self, ctx: BarContext) -> list[Signal] | None:
        rng = self.rng
        if rng.random() > self.activity:
            return None
        mode = rng.random()
        if mode < 0.35 and self.last:
            targets = dict(self.last)
        elif mode < 0.65:
            raw = [rng.random() for _ in ctx.symbols]
            sign = rng.choice([1.0, 1.0, -1.0])
            total = sum(raw)
            targets = {
                s: {"weight": sign * r / total} for s, r in zip(ctx.symbols, raw, strict=True)
            }
        else:
            targets = {}
            for symbol in ctx.symbols:
                roll = rng.random()
                if roll < 0.3:
                    continue
                if roll < 0.4:
                    targets[symbol] = {"weight": 0.0}
                elif roll < 0.55:
                    close = ctx.close(ctx.sym(symbol))
                    units = rng.uniform(-2, 2) * ctx.equity() / (close if close > 0 else 100.0)
                    targets[symbol] = {"quantity": units}
                else:
                    targets[symbol] = {"weight": rng.choice([1.0, -1.0, rng.uniform(-1.2, 1.2)])}
        self.last = targets
        return [self._signal(ctx, symbol, sizing) for symbol, sizing in targets.items()]

    def _signal(self, ctx: BarContext, symbol: str, sizing: dict[str, float]) -> Signal:
        rng = self.rng
        close = ctx.close(ctx.sym(symbol))
        kind = rng.choice([OrderType.MARKET, OrderType.MARKET, OrderType.LIMIT, OrderType.STOP])
        limit = stop = None
        if not close > 0:  # no bar now: nothing to price a limit or a stop from
            kind = OrderType.MARKET
        elif kind is OrderType.LIMIT:
            limit = close * (1 + rng.uniform(-0.05, 0.05))
        elif kind is OrderType.STOP:
            stop = close * (1 + rng.uniform(-0.05, 0.05))
        return Signal(
            symbol=symbol,
            ts=ctx.ts,
            order_type=kind,
            limit_price=limit,
            stop_price=stop,
            time_in_force=rng.choice(TIFS),
            weight=sizing.get("weight"),
            quantity=sizing.get("quantity"),
        )


ENGINE_SYMBOLS = ("AAA", "BBB", "CCC")


def market_data(path: dict[str, list[BarSpec]], gaps: Sequence[tuple[str, int]]) -> MarketData:
    n = len(next(iter(path.values())))
    index = pd.date_range(T0, periods=n, freq=STEP, name="ts")
    frames = {}
    for s, bars in path.items():
        frame = pd.DataFrame(bars, columns=["open", "high", "low", "close", "volume"], index=index)
        missing = [i for sym, i in gaps if sym == s and 0 < i < n]
        frames[s] = frame.drop(index[missing])
    return MarketData.from_frames(frames)


@st.composite
def engine_setups(draw: st.DrawFn) -> tuple[float, PaperBrokerConfig, PortfolioConfig]:
    """Initial cash, broker and portfolio; the broker's lot size mostly matches the
    portfolio's (a mismatch makes the broker reject the rebalancer's orders)."""
    initial = draw(initial_cash)
    broker = draw(broker_configs())
    lot = draw(st.sampled_from([0.0, 1.0]))
    if draw(st.integers(0, 4)) < 4:
        broker = broker.model_copy(update={"lot_size": lot})
    kill = draw(
        st.none()
        | st.none()
        | st.builds(
            KillSwitchConfig,
            max_drawdown=st.floats(0.01, 0.5),
            daily_loss=st.none() | st.floats(0.01, 0.5),
            flatten=st.booleans(),
        )
    )
    limits = draw(risk_limits(initial))
    return initial, broker, PortfolioConfig(lot_size=lot, limits=limits, kill_switch=kill)


# A constant 100% weight with slippage and a minimum commission: each rebalance sells the
# slippage's worth for less than the commission (the known exception to cash >= 0).
@example(
    setup=(
        1_000.0,
        PaperBrokerConfig(
            commission=CommissionModel(minimum=5.0), slippage=SlippageModel(bps=10.0)
        ),
        PortfolioConfig(lot_size=0.0),
    ),
    path=flat_path(ENGINE_SYMBOLS, 100.0, 12),
    gaps=[],
    seed=1,
    activity=1.0,
)
@PROPERTY_SETTINGS
@given(
    setup=engine_setups(),
    path=bar_paths(ENGINE_SYMBOLS, 3, 24),
    gaps=st.lists(st.tuples(st.sampled_from(ENGINE_SYMBOLS), st.integers(1, 23)), max_size=4),
    seed=st.integers(0, 2**32 - 1),
    activity=st.floats(0.3, 1.0),
)
def test_backtest_results_agree_with_their_fills(
    setup: tuple[float, PaperBrokerConfig, PortfolioConfig],
    path: dict[str, list[BarSpec]],
    gaps: list[tuple[str, int]],
    seed: int,
    activity: float,
) -> None:
    initial, broker, portfolio = setup
    data = market_data(path, gaps)
    engine = BacktestEngine(initial, broker, portfolio)
    result = engine.run(data, [RandomAgent(seed, activity)])
    allow_short = portfolio.limits.allow_short

    # Replay the fills bar by bar: cash and positions at each close follow from them alone.
    closes = pd.DataFrame(data.close.T, columns=list(data.symbols)).ffill().to_numpy()
    by_ts: dict[datetime, list[Fill]] = defaultdict(list)
    for fill in result.fills:
        by_ts[fill.ts].append(fill)
    assert sum(len(v) for v in by_ts.values()) == len(result.fills)
    replay = Ledger(initial)
    tally = FillTally(initial)
    for i in range(data.n_bars):
        for fill in by_ts.pop(data.ts(i), []):
            tally.book(replay, fill)
        tol = REL * tally.scale
        cash = float(result.cash.iloc[i])
        assert abs(cash - tally.initial_cash - tally.cash_flow) <= tol, (i, cash)
        held = 0.0
        for j, s in enumerate(data.symbols):
            qty = float(result.positions[s].iloc[i])
            err = abs(qty - tally.signed[s])
            assert err <= tally.dust[s] + 1e-12 * tally.gross[s], (i, s, qty, tally.signed[s])
            assert qty == replay.position(s).quantity
            if qty != 0.0:
                assert math.isfinite(closes[i, j])
                held += qty * closes[i, j]
            if not allow_short:
                assert qty >= 0.0, f"short {qty} {s} at bar {i} with shorts disallowed"
        equity = float(result.equity.iloc[i])
        assert math.isclose(equity, cash + held, rel_tol=REL, abs_tol=tol), (i, equity)
        if not allow_short:
            tally.check_cash(cash)
    assert not by_ts, "fills at timestamps outside the data"

    # The engine's ledger holds the same books as the fills replayed, and its final equity.
    ledger = result.ledger
    assert ledger.cash == replay.cash
    assert {s: p.quantity for s, p in ledger.positions().items()} == {
        s: p.quantity for s, p in replay.positions().items()
    }
    last = {s: float(closes[-1, j]) for j, s in enumerate(data.symbols)}
    equity = float(result.equity.iloc[-1])
    assert math.isclose(equity, ledger.equity(last), rel_tol=REL, abs_tol=REL * tally.scale)

    # A rejected order has a reason and no fill; every fill belongs to an order that was not.
    filled = {f.client_order_id for f in result.fills}
    final = {st_.order.client_order_id: st_ for st_ in result.orders}
    for st_ in result.journal:
        if st_.status is OrderStatus.REJECTED:
            cid = st_.order.client_order_id
            assert st_.reason, cid
            assert st_.filled_quantity == 0.0 and cid not in filled, cid
            assert final[cid].status is OrderStatus.REJECTED
    for cid in filled:
        assert final[cid].status is not OrderStatus.REJECTED
        assert final[cid].filled_quantity > 0.0
