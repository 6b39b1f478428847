"""Speed of the numba fast path against the event-driven engine and vectorbt, on one SMA run.

The strategy of ``benchmarks/peers.py``: SMA(10) crosses above SMA(30) at bar t's close -> buy
all-in at bar t+1's open; crosses below -> sell all; 0.1 % commission each side, whole units,
1M cash, long only. Data: seeded GBM 1-minute bars, the same generator and seed as
``benchmarks/peers.py`` (so the fills are the peers' reference fills).

Timed, each as the median of ``--repeats`` interleaved runs after a warm-up:

- ``fast path, end to end``: ``run_fast(data, agent, ...)``, the agent's indicators included;
- ``fast path, end to end + metrics``: the same, then ``.metrics()`` (what a parameter sweep
  calls for each point);
- ``fast path, events given``: ``run_events(data, events, ...)`` (checks, kernel, result frames);
- ``fast path, kernel only``: the compiled ``simulate`` on the arrays;
- ``agent.target_events``: the indicators and events alone (for the breakdown);
- ``event engine``: ``BacktestEngine.run`` (``--engine-repeats`` runs);
- ``vectorbt``, if installed: ``Portfolio.from_signals`` on the same entry/exit arrays
  (shifted one bar, filled at the open), and end to end with its own ``MA`` and crossings.

The numba compile time of the first call is measured apart, in fresh processes: with an empty
numba cache (compile) and with the cache that run left behind (load). The script checks that
the fast path's fills equal the engine's (bar, side, units, price, commission exactly; the
equity curve to 1e-9) and compares the vectorbt fills; it exits 1 on a mismatch.

    .venv/bin/python benchmarks/fast_path_speed.py                  # 1M bars
    .venv/bin/python benchmarks/fast_path_speed.py --bars 100000 --repeats 7
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from raytrader.agents import create  # noqa: E402
from raytrader.agents.events import TargetEvents  # noqa: E402
from raytrader.backtesting.engine import BacktestEngine  # noqa: E402
from raytrader.backtesting.fast_path import run_events, run_fast, simulate  # noqa: E402
from raytrader.data.market_data import MarketData  # noqa: E402
from raytrader.execution import CommissionModel, PaperBrokerConfig  # noqa: E402
from raytrader.portfolio import PortfolioConfig  # noqa: E402

FAST, SLOW = 10, 30
CASH = 1_000_000.0
BPS = 10.0  # 0.1 %
SEED = 20_261_101  # benchmarks/peers.py DEFAULT_SEED
BROKER = PaperBrokerConfig(commission=CommissionModel(bps=BPS))
PORTFOLIO = PortfolioConfig(lot_size=1.0)


def gbm_bars(n_bars: int, seed: int = SEED, sigma: float = 5e-4) -> pd.DataFrame:
    """The bars of ``benchmarks.peers.gbm_bars`` (same formula, same random stream)."""
    rng = np.random.default_rng(seed)
    log_ret = rng.normal(-0.5 * sigma**2, sigma, n_bars)
    close = 100.0 * np.exp(np.cumsum(log_ret))
    prev_close = np.concatenate(([100.0], close[:-1]))
    open_ = prev_close * np.exp(rng.normal(0.0, sigma / 4.0, n_bars))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, sigma / 2.0, n_bars)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, sigma / 2.0, n_bars)))
    volume = rng.integers(100, 10_000, n_bars).astype(np.float64)
    index = pd.date_range("2024-01-01", periods=n_bars, freq="1min", tz="UTC", name="ts")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def sma_agent() -> Any:
    return create("sma_cross", {"fast": FAST, "slow": SLOW})


# --------------------------------------------------------------------------- compile time


_COMPILE_CHILD = """
import json, time
t0 = time.perf_counter()
import numpy as np
import raytrader.backtesting.fast_path as fp
imported = time.perf_counter() - t0
n = 1000
o = np.linspace(100.0, 110.0, n)
target = np.full(n, np.nan)
target[10::50] = 1.0
target[35::50] = 0.0
args = (o, o, target, np.zeros(n, np.int8), 1e6, 0.0, 10.0, 0.0, 1.0, 0.0, 1.0, 1.0, False, n)
t0 = time.perf_counter()
fp.simulate(*args)
first = time.perf_counter() - t0
t0 = time.perf_counter()
fp.simulate(*args)
second = time.perf_counter() - t0
print(json.dumps({"import": imported, "first": first, "second": second}))
"""


def compile_times() -> dict[str, float]:
    """First-call seconds in fresh processes: empty numba cache, then the cache it wrote.

    Also the import of ``fast_path`` (numba included) in the first process.
    """
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("compile", "cache_load"):
            proc = subprocess.run(
                [sys.executable, "-c", _COMPILE_CHILD],
                env=env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            got = json.loads(proc.stdout.strip().splitlines()[-1])
            out[label] = got["first"] - got["second"]
            out[f"{label}_import"] = got["import"]
    return out


# ----------------------------------------------------------------------------- vectorbt


def vectorbt_runs(
    bars: pd.DataFrame, events: TargetEvents
) -> tuple[dict[str, Callable[[], Any]], Any] | None:
    try:
        import vectorbt as vbt
    except ImportError:
        return None
    # A naive (UTC) index: with a tz-aware one, vectorbt's result wrapping makes pandas 3 box
    # every timestamp (about 1.4 s per 1M bars), which would measure pandas, not vectorbt.
    bars = bars.tz_convert(None)
    close, open_ = bars["close"], bars["open"]
    target = events.target[0]
    # The agent's decisions at t's close, placed at t+1 (filled at that bar's open).
    entries = pd.Series(np.r_[False, target[:-1] == 1.0], index=bars.index)
    exits = pd.Series(np.r_[False, target[:-1] == 0.0], index=bars.index)

    def sim() -> Any:
        return vbt.Portfolio.from_signals(
            close,
            entries,
            exits,
            price=open_,
            size=np.inf,
            fees=BPS / 1e4,
            size_granularity=1.0,
            init_cash=CASH,
            freq="1min",
        )

    def end_to_end() -> Any:
        fast = vbt.MA.run(close, FAST).ma
        slow = vbt.MA.run(close, SLOW).ma
        up = fast.vbt.crossed_above(slow).to_numpy()
        down = fast.vbt.crossed_below(slow).to_numpy()
        return vbt.Portfolio.from_signals(
            close,
            pd.Series(np.r_[False, up[:-1]], index=bars.index),
            pd.Series(np.r_[False, down[:-1]], index=bars.index),
            price=open_,
            size=np.inf,
            fees=BPS / 1e4,
            size_granularity=1.0,
            init_cash=CASH,
            freq="1min",
        )

    return {"vectorbt from_signals, signals given": sim, "vectorbt end to end": end_to_end}, vbt


# ---------------------------------------------------------------------------------- main


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--engine-repeats", type=int, default=3)
    parser.add_argument("--no-engine", action="store_true")
    parser.add_argument("--no-vectorbt", action="store_true")
    args = parser.parse_args()
    n = args.bars
    bars = gbm_bars(n)
    data = MarketData.from_frames({"X": bars})
    compile_s = compile_times()

    # Warm-up: load the compiled kernel in this process (and numpy/pandas paths).
    warm_bars = gbm_bars(5_000, seed=1)
    warm = MarketData.from_frames({"X": warm_bars})
    run_fast(warm, sma_agent(), CASH, BROKER, PORTFOLIO)

    agent = sma_agent()
    events = agent.target_events(data)
    o, c = np.ascontiguousarray(data.open[0]), np.ascontiguousarray(data.close[0])
    tg, hd = events.target[0], events.held[0]

    runs: dict[str, Callable[[], Any]] = {
        "fast path, end to end": lambda: run_fast(data, sma_agent(), CASH, BROKER, PORTFOLIO),
        "fast path, end to end + metrics": lambda: run_fast(
            data, sma_agent(), CASH, BROKER, PORTFOLIO
        ).metrics(),
        "fast path, events given": lambda: run_events(data, events, CASH, BROKER, PORTFOLIO),
        "fast path, kernel only": lambda: simulate(
            o, c, tg, hd, CASH, 0.0, BPS, 0.0, 1.0, 0.0, 1.0, 1.0, False, len(o)
        ),
        "agent.target_events": lambda: sma_agent().target_events(data),
    }
    vbt_module = None
    if not args.no_vectorbt:
        got = vectorbt_runs(bars, events)
        if got is None:
            print("vectorbt is not installed: skipped")
        else:
            vbt_runs, vbt_module = got
            warm_vbt = vectorbt_runs(warm_bars, sma_agent().target_events(warm))
            assert warm_vbt is not None
            for fn in warm_vbt[0].values():  # compile vectorbt's numba functions
                fn()
            runs.update(vbt_runs)

    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs: dict[str, Any] = {}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            seconds, out = timed(fn)
            times[name].append(seconds)
            outputs.setdefault(name, out)

    engine_result = None
    if not args.no_engine:
        times["event engine"] = []
        for _ in range(args.engine_repeats):
            engine = BacktestEngine(CASH, BROKER, PORTFOLIO)
            t0 = time.perf_counter()
            res = engine.run(data, [sma_agent()])
            seconds = time.perf_counter() - t0
            times["event engine"].append(seconds)
            engine_result = engine_result or res

    # ------------------------------------------------------------------------ checks
    ok = True
    fast = outputs["fast path, end to end"]
    notes: dict[str, str] = dict.fromkeys(times, "")
    notes["fast path, end to end"] = f"{len(fast.fills):,} fills"
    if engine_result is not None:
        ef = engine_result.fills
        same = len(ef) == len(fast.fills) and (
            np.array_equal(
                data.index.get_indexer(pd.DatetimeIndex([f.ts for f in ef])), fast.fills["bar"]
            )
            and np.array_equal([f.side.sign for f in ef], fast.fills["side"])
            and np.array_equal([f.quantity for f in ef], fast.fills["quantity"])
            and np.array_equal([f.price for f in ef], fast.fills["price"])
            and np.array_equal([f.commission for f in ef], fast.fills["commission"])
        )
        eq_same = np.allclose(engine_result.equity, fast.equity, rtol=1e-9, atol=0)
        ok &= same and eq_same
        notes["event engine"] = (
            f"{len(ef):,} fills; fast path fills identical: {same}; equity to 1e-9: {eq_same}"
        )
    if vbt_module is not None:
        for name in ("vectorbt from_signals, signals given", "vectorbt end to end"):
            pf = outputs[name]
            rec = pf.orders.values
            same = (
                len(rec) == len(fast.fills)
                and np.array_equal(rec["idx"], fast.fills["bar"])
                and np.array_equal(rec["size"], fast.fills["quantity"])
                and np.allclose(rec["price"], fast.fills["price"], rtol=1e-12, atol=0)
            )
            final = float(pf.final_value())
            notes[name] = (
                f"{len(rec):,} fills, identical to the fast path: {same}; final equity "
                f"rel. diff {abs(final - fast.final_equity) / fast.final_equity:.1e}"
            )
            if name.endswith("given"):
                ok &= same

    # ------------------------------------------------------------------------- table
    base = statistics.median(times["event engine"]) if "event engine" in times else None
    print(
        f"\nSMA({FAST}/{SLOW}) on {n:,} 1-minute GBM bars; medians of {args.repeats} runs "
        f"({args.engine_repeats} for the event engine); numba first call: compile "
        f"{compile_s['compile']:.2f} s, from cache {compile_s['cache_load']:.3f} s "
        f"(fresh processes; importing fast_path {compile_s['compile_import']:.2f} s)\n"
    )
    header = f"| {'run':<38} | {'median s':>9} | {'bars/s':>12} | {'x event engine':>14} | notes"
    print(header)
    print("|" + "-" * 40 + "|" + "-" * 11 + "|" + "-" * 14 + "|" + "-" * 16 + "|------")
    for name, ts in times.items():
        med = statistics.median(ts)
        ratio = f"{base / med:,.0f}x" if base else "-"
        print(f"| {name:<38} | {med:>9.4f} | {n / med:>12,.0f} | {ratio:>14} | {notes[name]}")
    if not ok:
        print("\nMISMATCH: see the notes above")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
