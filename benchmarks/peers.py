"""Seeded GBM bars and one SMA crossover strategy run in raytrader, backtesting.py and backtrader.

Shared by ``tests/integration/test_parity_peers.py`` (the engines must make the same trades) and
``benchmarks/backtest_speed.py`` (how fast each engine makes them).

The strategy, the same in every engine: long-only; when SMA(fast) of the close crosses above
SMA(slow) at bar t's close (strictly: below or above at t-1, the other way at t), buy at bar
t+1's open with all the cash, sized there as ``floor(weight * cash / (open * (1 + commission)))``
whole units; when it crosses below, sell everything at bar t+1's open. Commission 0.1 % of the
notional on each side; no slippage, no spread; the position still open at the end is marked to
the last close and is not a closed trade.

backtesting.py (AGPL-3.0) and backtrader (GPL-3.0) are imported and driven through their public
APIs as peers only; none of their code is copied here.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# backtesting.py wraps its bar loop in a tqdm progress bar; tqdm reads TQDM_* variables when it
# is first imported, so this must run before any import of tqdm (raytrader and backtesting.py).
os.environ.setdefault("TQDM_DISABLE", "1")

import backtesting
import backtrader as bt
import numpy as np
import numpy.typing as npt
import pandas as pd
from backtesting.lib import crossover

from raytrader.agents import create
from raytrader.backtesting.engine import BacktestEngine
from raytrader.backtesting.result import BacktestResult
from raytrader.data.market_data import MarketData
from raytrader.domain import Side
from raytrader.execution.costs import CommissionModel
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import PortfolioConfig

FloatArray = npt.NDArray[np.float64]

FAST = 10
SLOW = 30
COMMISSION = 0.001  # 0.1 % of the notional, each side
INITIAL_CASH = 1_000_000.0
#: raytrader's all-in weight. backtesting.py 0.6's default ``buy()`` size is
#: ``1 - sys.float_info.epsilon`` of the available cash (it prints as ".9999", but it is
#: 0.9999999999999998), which gives the same whole units as a weight of 1.0.
ALL_IN = 1.0
DEFAULT_SEED = 20_261_101

ENGINES = ("raytrader", "backtesting.py", "backtrader")


# ------------------------------------------------------------------------------------------ data


def gbm_bars(
    n_bars: int,
    seed: int = DEFAULT_SEED,
    *,
    start_price: float = 100.0,
    sigma: float = 5e-4,
    start: str = "2024-01-01",
) -> pd.DataFrame:
    """``n_bars`` 1-minute OHLCV bars of a driftless geometric Brownian motion (UTC, 24/7).

    ``sigma`` is the per-bar log-return volatility (5e-4 a minute is about 16 % a year on a
    390-minute session). The open differs from the previous close by a small gap, so a fill at
    "the next open" and a fill at "this close" are told apart; high and low wrap open and close.
    Prices are not rounded to a tick: rounded prices make SMAs tie exactly, and how an engine's
    float sums break such ties would be compared instead of its trading rules.
    """
    if n_bars < 2:
        raise ValueError(f"n_bars must be at least 2, got {n_bars}")
    rng = np.random.default_rng(seed)
    log_ret = rng.normal(-0.5 * sigma**2, sigma, n_bars)
    close = start_price * np.exp(np.cumsum(log_ret))
    prev_close = np.concatenate(([start_price], close[:-1]))
    open_ = prev_close * np.exp(rng.normal(0.0, sigma / 4.0, n_bars))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma / 2.0, n_bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma / 2.0, n_bars)))
    volume = rng.integers(100, 10_000, n_bars).astype(np.float64)
    index = pd.date_range(start, periods=n_bars, freq="1min", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def backtesting_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars as backtesting.py reads them: capitalized column names."""
    return bars.rename(columns=str.capitalize)


def backtrader_frame(bars: pd.DataFrame) -> pd.DataFrame:
    """The bars as backtrader's ``PandasData`` reads them: a naive (UTC) index."""
    out = bars.copy()
    out.index = pd.DatetimeIndex(bars.index).tz_convert("UTC").tz_localize(None)
    return out


# --------------------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class FillRecord:
    """One execution: bar number, +1 buy / -1 sell, whole units, price and commission paid."""

    bar: int
    side: int
    quantity: float
    price: float
    commission: float


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """A closed round trip; ``pnl`` is net of both commissions, ``return_pct`` = pnl / cost."""

    entry_bar: int
    exit_bar: int
    quantity: float
    entry_price: float
    exit_price: float
    pnl: float
    return_pct: float


@dataclass(eq=False)
class PeerRun:
    """What one engine did, normalized so that engines can be compared."""

    engine: str
    n_bars: int
    seconds: float  # wall time of the engine's own work (see each ``run_*``)
    cpu_seconds: float  # CPU time of this process over the same span (robust to other load)
    fills: list[FillRecord]
    trades: list[TradeRecord]  # closed round trips
    final_equity: float
    equity: FloatArray | None = None  # per bar, where the engine records it
    stats: Any = None  # the engine's own statistics object, where it computes one
    notes: list[str] = field(default_factory=list)

    @property
    def open_quantity(self) -> float:
        return sum(f.side * f.quantity for f in self.fills)


def trades_from_fills(fills: Sequence[FillRecord]) -> list[TradeRecord]:
    """Round trips of a long-only, all-in / all-out fill sequence (buy, sell, buy, ...)."""
    out: list[TradeRecord] = []
    for entry, exit_ in zip(fills[0::2], fills[1::2], strict=False):
        if entry.side != 1 or exit_.side != -1 or entry.quantity != exit_.quantity:
            raise ValueError(f"not an all-in / all-out round trip: {entry} then {exit_}")
        cost = entry.quantity * entry.price
        pnl = entry.quantity * (exit_.price - entry.price) - entry.commission - exit_.commission
        out.append(
            TradeRecord(
                entry.bar, exit_.bar, entry.quantity, entry.price, exit_.price, pnl, pnl / cost
            )
        )
    return out


def diff_runs(reference: PeerRun, other: PeerRun, rel: float = 1e-6) -> list[str]:
    """What differs between two runs: fill count, the first differing fill, final equity.

    Bars, sides and quantities must be equal; prices and commissions equal to 1e-12 relative;
    final equity to ``rel``. An empty list means the runs agree.
    """
    a, b = reference.engine, other.engine
    problems: list[str] = []
    if len(reference.fills) != len(other.fills):
        problems.append(f"{a}: {len(reference.fills)} fills, {b}: {len(other.fills)}")
    for k, (x, y) in enumerate(zip(reference.fills, other.fills, strict=False)):
        same = (
            x.bar == y.bar
            and x.side == y.side
            and x.quantity == y.quantity
            and math.isclose(x.price, y.price, rel_tol=1e-12)
            and math.isclose(x.commission, y.commission, rel_tol=1e-9, abs_tol=1e-9)
        )
        if not same:
            problems.append(f"first differing fill #{k}: {a} {x} vs {b} {y}")
            break
    if not math.isclose(reference.final_equity, other.final_equity, rel_tol=rel):
        problems.append(
            f"final equity {a} {reference.final_equity!r} vs {b} {other.final_equity!r}"
        )
    return problems


# -------------------------------------------------------------------------------------- raytrader


def raytrader_engine(cash: float = INITIAL_CASH) -> BacktestEngine:
    """The engine set up as the peers: 0.1 % commission, whole units, no slippage."""
    return BacktestEngine(
        initial_cash=cash,
        broker=PaperBrokerConfig(commission=CommissionModel(bps=COMMISSION * 1e4)),
        portfolio=PortfolioConfig(lot_size=1.0),
    )


def run_raytrader(
    bars: pd.DataFrame,
    *,
    fast: int = FAST,
    slow: int = SLOW,
    weight: float = ALL_IN,
    cash: float = INITIAL_CASH,
) -> PeerRun:
    """raytrader's event-driven engine with the ``sma_cross`` agent.

    Timed: ``MarketData`` from the frame, the agent, the run and ``metrics()`` (backtesting.py's
    ``run`` computes its statistics too).
    """
    t0, c0 = time.perf_counter(), time.process_time()
    data = MarketData.from_frames({"X": bars})
    agent = create("sma_cross", {"fast": fast, "slow": slow, "weight": weight})
    result = raytrader_engine(cash).run(data, [agent])
    metrics = result.metrics()
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    return PeerRun(
        engine="raytrader",
        n_bars=len(bars),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        fills=raytrader_fills(result, data.index),
        trades=raytrader_trades(result, data.index),
        final_equity=float(result.equity.iloc[-1]),
        equity=result.equity.to_numpy(dtype=np.float64),
        stats=metrics,
    )


def _bars_of(index: pd.DatetimeIndex, stamps: Sequence[Any]) -> npt.NDArray[np.intp]:
    where = index.get_indexer(pd.DatetimeIndex(list(stamps)))
    if len(where) and where.min() < 0:
        raise ValueError("a timestamp is not a bar of the data")
    return where


def raytrader_fills(result: BacktestResult, index: pd.DatetimeIndex) -> list[FillRecord]:
    bars = _bars_of(index, [f.ts for f in result.fills])
    return [
        FillRecord(int(i), 1 if f.side is Side.BUY else -1, f.quantity, f.price, f.commission)
        for i, f in zip(bars, result.fills, strict=True)
    ]


def raytrader_trades(result: BacktestResult, index: pd.DatetimeIndex) -> list[TradeRecord]:
    closed = [t for t in result.trades if t.exit_ts is not None]
    entries = _bars_of(index, [t.entry_ts for t in closed])
    exits = _bars_of(index, [t.exit_ts for t in closed])
    return [
        TradeRecord(
            int(e),
            int(x),
            t.quantity,
            t.entry_price,
            float(t.exit_price or math.nan),
            t.pnl,
            t.return_pct,
        )
        for e, x, t in zip(entries, exits, closed, strict=True)
    ]


# --------------------------------------------------------------------------------- backtesting.py


def _sma(values: FloatArray, n: int) -> FloatArray:
    return pd.Series(values).rolling(n).mean().to_numpy()


class BtpySmaCross(backtesting.Strategy):  # type: ignore[misc]
    """The strategy in backtesting.py: ``buy()`` on a cross up, ``position.close()`` on a down."""

    fast = FAST
    slow = SLOW
    weight = ALL_IN

    def init(self) -> None:
        self.sma_fast = self.I(_sma, self.data.Close, self.fast)
        self.sma_slow = self.I(_sma, self.data.Close, self.slow)

    def next(self) -> None:
        if crossover(self.sma_fast, self.sma_slow):
            # The default size is all the available cash (1 - epsilon of it).
            if self.weight >= 1.0:
                self.buy()
            else:
                self.buy(size=self.weight)
        elif crossover(self.sma_slow, self.sma_fast):
            self.position.close()


def run_backtesting(
    bars: pd.DataFrame,
    *,
    fast: int = FAST,
    slow: int = SLOW,
    weight: float = ALL_IN,
    cash: float = INITIAL_CASH,
    frame: pd.DataFrame | None = None,
) -> PeerRun:
    """backtesting.py with its defaults (fills at the next open, no hedging, no spread).

    Timed: ``Backtest(...)`` and ``run()`` (which computes its statistics). ``frame`` is
    ``backtesting_frame(bars)`` when the caller prepared it outside its timing.
    """
    frame = backtesting_frame(bars) if frame is None else frame
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0, c0 = time.perf_counter(), time.process_time()
        bt_run = backtesting.Backtest(frame, BtpySmaCross, cash=cash, commission=COMMISSION)
        stats = bt_run.run(fast=fast, slow=slow, weight=weight)
        seconds = time.perf_counter() - t0
        cpu_seconds = time.process_time() - c0
    strategy = stats["_strategy"]
    closed = stats["_trades"]
    fills: list[FillRecord] = []
    for row in closed.itertuples(index=False):
        size = float(row.Size)
        fills.append(
            FillRecord(
                int(row.EntryBar),
                1,
                size,
                float(row.EntryPrice),
                size * float(row.EntryPrice) * COMMISSION,
            )
        )
        fills.append(
            FillRecord(
                int(row.ExitBar),
                -1,
                size,
                float(row.ExitPrice),
                size * float(row.ExitPrice) * COMMISSION,
            )
        )
    for trade in strategy.trades:  # still open at the end
        size = float(trade.size)
        price = float(trade.entry_price)
        fills.append(FillRecord(int(trade.entry_bar), 1, size, price, size * price * COMMISSION))
    fills.sort(key=lambda f: (f.bar, f.side))
    trades = [
        TradeRecord(
            int(r.EntryBar),
            int(r.ExitBar),
            float(r.Size),
            float(r.EntryPrice),
            float(r.ExitPrice),
            float(r.PnL),
            float(r.ReturnPct),
        )
        for r in closed.itertuples(index=False)
    ]
    equity = stats["_equity_curve"]["Equity"].to_numpy(dtype=np.float64)
    notes = sorted({str(w.message).split(":", 1)[-1].strip()[:60] for w in caught})
    return PeerRun(
        engine="backtesting.py",
        n_bars=len(bars),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        fills=fills,
        trades=trades,
        final_equity=float(stats["Equity Final [$]"]),
        equity=equity,
        stats=stats,
        notes=notes,
    )


# ------------------------------------------------------------------------------------ backtrader


class BacktraderSmaCross(bt.Strategy):  # type: ignore[misc]
    """The strategy in backtrader.

    Backtrader sizes an order when it is created, at bar t's close, before the next open is
    known. So the entry is decided in ``next`` (bar t) and placed in ``next_open`` of bar t+1
    (cheat-on-open), where the open is known and the market order fills at it. The exit is a
    plain ``close()`` in ``next``, which fills at the next open. Crossings come from backtrader's
    ``CrossOver`` indicator (it differs from a strict crossing only on an exact tie of the SMAs).
    """

    params = (("fast", FAST), ("slow", SLOW), ("weight", ALL_IN))

    def __init__(self) -> None:
        fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
        slow = bt.indicators.SMA(self.data.close, period=self.p.slow)
        self.cross = bt.indicators.CrossOver(fast, slow)
        self.entry_wanted = False
        self.fills: list[FillRecord] = []

    def next(self) -> None:
        cross = self.cross[0]
        if cross > 0:
            self.entry_wanted = True
        elif cross < 0 and self.position:
            self.close()

    def next_open(self) -> None:
        if not self.entry_wanted:
            return
        self.entry_wanted = False
        price = self.data.open[0]
        size = math.floor(self.p.weight * self.broker.getcash() / (price * (1.0 + COMMISSION)))
        if size > 0:
            self.buy(size=size)

    def notify_order(self, order: Any) -> None:
        if order.status == order.Completed:
            ex = order.executed
            self.fills.append(
                FillRecord(
                    len(self.data) - 1,
                    1 if order.isbuy() else -1,
                    abs(float(ex.size)),
                    float(ex.price),
                    float(ex.comm),
                )
            )


def run_backtrader(
    bars: pd.DataFrame,
    *,
    fast: int = FAST,
    slow: int = SLOW,
    weight: float = ALL_IN,
    cash: float = INITIAL_CASH,
    frame: pd.DataFrame | None = None,
) -> PeerRun:
    """backtrader (preloaded data, vectorized ``runonce`` indicators, no observers).

    Timed: the ``Cerebro`` set-up with a ``PandasData`` feed and ``run()`` (which loads the
    feed). ``frame`` is ``backtrader_frame(bars)`` when prepared outside the timing.
    """
    frame = backtrader_frame(bars) if frame is None else frame
    t0, c0 = time.perf_counter(), time.process_time()
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    cerebro.broker.set_coo(True)
    cerebro.broker.setcash(cash)
    cerebro.broker.setcommission(commission=COMMISSION)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(BacktraderSmaCross, fast=fast, slow=slow, weight=weight)
    strategy = cerebro.run()[0]
    final_equity = float(cerebro.broker.getvalue())
    seconds = time.perf_counter() - t0
    cpu_seconds = time.process_time() - c0
    fills = list(strategy.fills)
    return PeerRun(
        engine="backtrader",
        n_bars=len(bars),
        seconds=seconds,
        cpu_seconds=cpu_seconds,
        fills=fills,
        trades=trades_from_fills(fills),
        final_equity=final_equity,
    )


RUNNERS = {
    "raytrader": run_raytrader,
    "backtesting.py": run_backtesting,
    "backtrader": run_backtrader,
}
