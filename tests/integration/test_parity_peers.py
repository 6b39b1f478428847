"""Parity with peer backtesters: raytrader, backtesting.py and backtrader make the same trades.

One seeded GBM series of 1-minute bars; long-only, all-in, signals at the close filled at the
next bar's open, 0.1 % commission each side, whole units (see ``benchmarks/peers.py``). Every
fill must agree (bar, side, units; prices to 1e-12), and final equity to 1e-6 relative.

Trade statistics are compared where both engines compute them; where their definitions differ
(profit factor, exposure time) each engine's figure is recomputed with the other's definition
from the other engine's trades, so the test pins the definitions instead of hiding them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the editable install puts it there; plain checkouts may not
    sys.path.insert(0, str(ROOT))

from benchmarks.peers import (  # noqa: E402
    ALL_IN,
    FAST,
    SLOW,
    PeerRun,
    TradeRecord,
    diff_runs,
    gbm_bars,
    run_backtesting,
    run_backtrader,
    run_raytrader,
)

# 40_125 bars of the default seed: about 800 round trips, and the last one is still open at the
# end, so marking an open position to the last close is compared too.
N_BARS = 40_125


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return gbm_bars(N_BARS)


@pytest.fixture(scope="module")
def ours(bars: pd.DataFrame) -> PeerRun:
    return run_raytrader(bars)


@pytest.fixture(scope="module")
def btpy(bars: pd.DataFrame) -> PeerRun:
    return run_backtesting(bars)


def _profit_factor(values: npt.NDArray[np.float64]) -> float:
    return float(values[values > 0].sum() / -values[values < 0].sum())


def _trade_rows(trades: list[TradeRecord]) -> list[tuple[int, int, float]]:
    return [(t.entry_bar, t.exit_bar, t.quantity) for t in trades]


def test_the_run_is_a_meaningful_sample(ours: PeerRun, bars: pd.DataFrame) -> None:
    assert len(ours.trades) > 100
    assert ours.open_quantity > 0, "the last position should still be open at the end"
    # Independently of every engine: fills are at the open of the bar after a strict crossing
    # of pandas' rolling means, buys after crossings up and sells after crossings down.
    close = bars["close"]
    diff = (close.rolling(FAST).mean() - close.rolling(SLOW).mean()).to_numpy()
    up = np.flatnonzero((diff[:-1] < 0) & (diff[1:] > 0)) + 1
    down = np.flatnonzero((diff[:-1] > 0) & (diff[1:] < 0)) + 1
    opens = bars["open"].to_numpy()
    assert all(f.price == opens[f.bar] for f in ours.fills)
    assert {f.bar - 1 for f in ours.fills if f.side > 0} <= set(up.tolist())
    assert {f.bar - 1 for f in ours.fills if f.side < 0} <= set(down.tolist())
    # Long-only, all-in, cash never short here: every crossing up while flat is an entry and
    # every crossing down while long is an exit (the position is held at the closes of bars
    # entry..exit-1, and to the end for the open one).
    held = np.zeros(len(bars), dtype=bool)
    for entry, exit_ in zip(ours.fills[0::2], [*ours.fills[1::2], None], strict=False):
        held[entry.bar : len(bars) if exit_ is None else exit_.bar] = True
    last = len(bars) - 1
    assert {f.bar for f in ours.fills if f.side > 0} == {
        c + 1 for c in up if c < last and not held[c]
    }
    assert {f.bar for f in ours.fills if f.side < 0} == {
        c + 1 for c in down if c < last and held[c]
    }


def test_same_trades_as_backtesting_py(ours: PeerRun, btpy: PeerRun) -> None:
    assert len(ours.trades) == len(btpy.trades)
    assert _trade_rows(ours.trades) == _trade_rows(btpy.trades)  # entry, exit bars and units
    for a, b in zip(ours.trades, btpy.trades, strict=True):
        # raytrader's trade prices are quantity-weighted averages of fills: (q * p) / q.
        assert a.entry_price == pytest.approx(b.entry_price, rel=1e-12)
        assert a.exit_price == pytest.approx(b.exit_price, rel=1e-12)
        assert a.pnl == pytest.approx(b.pnl, rel=0, abs=1e-9 * a.quantity * a.entry_price)
        assert a.return_pct == pytest.approx(b.return_pct, rel=0, abs=1e-12)
    # Fills include the entry of the position still open at the end.
    assert diff_runs(ours, btpy) == []
    assert ours.open_quantity == btpy.open_quantity
    assert ours.final_equity == pytest.approx(btpy.final_equity, rel=1e-6)
    assert ours.equity is not None and btpy.equity is not None
    np.testing.assert_allclose(ours.equity, btpy.equity, rtol=1e-9, atol=0)


def test_same_fills_as_backtrader(ours: PeerRun, bars: pd.DataFrame) -> None:
    peer = run_backtrader(bars)
    assert len(peer.fills) == len(ours.fills)
    assert [(f.bar, f.side, f.quantity) for f in peer.fills] == [
        (f.bar, f.side, f.quantity) for f in ours.fills
    ]
    # backtrader reports executed.price as a size-weighted average, a few ulps off the open.
    assert diff_runs(ours, peer) == []
    assert _trade_rows(peer.trades) == _trade_rows(ours.trades)
    assert ours.final_equity == pytest.approx(peer.final_equity, rel=1e-6)


def test_trade_statistics_match_backtesting_py(ours: PeerRun, btpy: PeerRun) -> None:
    m, s = ours.stats, btpy.stats
    n_bars = len(ours.equity) if ours.equity is not None else 0

    assert m.trade_count == s["# Trades"] == len(btpy.trades)
    # Win rate: both count trades with pnl net of commissions > 0 (break-even is not a win).
    assert m.win_rate == pytest.approx(s["Win Rate [%]"] / 100, rel=1e-12)
    assert m.total_return == pytest.approx(s["Return [%]"] / 100, rel=1e-9)
    assert m.final_equity == pytest.approx(s["Equity Final [$]"], rel=1e-9)
    assert m.max_drawdown == pytest.approx(s["Max. Drawdown [%]"] / 100, rel=1e-9)
    assert m.max_drawdown_duration == s["Max. Drawdown Duration"].to_pytimedelta()
    # Mean trade return: raytrader's avg_trade_return is backtesting.py's "Expectancy [%]"
    # (its "Avg. Trade [%]" is a geometric mean instead).
    assert m.avg_trade_return == pytest.approx(s["Expectancy [%]"] / 100, rel=1e-9)
    # Commissions: backtesting.py sums those of closed trades (the open one's entry is left out).
    closed_fills = ours.fills[: 2 * len(ours.trades)]
    assert sum(f.commission for f in closed_fills) == pytest.approx(s["Commissions [$]"], rel=1e-9)

    # Profit factor: raytrader sums trade pnl (cash), backtesting.py sums trade returns (%).
    ours_pnl = np.array([t.pnl for t in ours.trades])
    ours_ret = np.array([t.return_pct for t in ours.trades])
    peer_pnl = np.array([t.pnl for t in btpy.trades])
    assert m.profit_factor == pytest.approx(_profit_factor(peer_pnl), rel=1e-9)
    assert s["Profit Factor"] == pytest.approx(_profit_factor(ours_ret), rel=1e-9)
    assert m.profit_factor == pytest.approx(_profit_factor(ours_pnl), rel=1e-12)
    assert not math.isclose(m.profit_factor, s["Profit Factor"], rel_tol=1e-3)

    # Exposure time: raytrader counts the bars whose close finds a position (entry bar up to the
    # bar before the exit, and the open trade's bars to the end); backtesting.py marks entry bar
    # through exit bar inclusive of closed trades only. Entries never share a bar with the
    # previous exit here, so the two counts differ by exactly this:
    ours_bars = round(m.exposure * n_bars)
    open_tail = 0
    if ours.open_quantity > 0:
        open_tail = n_bars - ours.fills[-1].bar
    peer_bars = round(s["Exposure Time [%]"] / 100 * n_bars)
    assert peer_bars == ours_bars + len(ours.trades) - open_tail
    assert sum(t.exit_bar - t.entry_bar for t in ours.trades) + open_tail == ours_bars


def test_weight_is_a_share_of_equity_like_an_explicit_buy_size(bars: pd.DataFrame) -> None:
    """weight=0.9999 is backtesting.py's ``buy(size=0.9999)``, not its default ``buy()``."""
    ours = run_raytrader(bars[:20_000], weight=0.9999)
    assert diff_runs(ours, run_backtesting(bars[:20_000], weight=0.9999)) == []
    default = run_backtesting(bars[:20_000], weight=ALL_IN)
    first_ours, first_default = ours.fills[0], default.fills[0]
    assert first_ours.bar == first_default.bar
    assert first_ours.quantity < first_default.quantity
