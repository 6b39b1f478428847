"""Walk-forward analysis on Ray: optimize in-sample with the sweep runner, trade the best
config out-of-sample, stitch the out-of-sample equity and report how much survived.

Each window's in-sample sweep is a resumable sweep of its own (id ``{id}-w{k}-{start}-{end}``),
so a killed walk-forward started again redoes only the missing trials. The out-of-sample run
starts ``warmup`` bars before the test window so indicators are ready, and cannot trade
before the window (an agent makes no decision during its warm-up): nothing of the test window
is seen in-sample, and ``purge_bars`` more are left out between the two.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import structlog

from raytrader.agents import registry
from raytrader.backtesting.sweep_config import SweepConfig
from raytrader.backtesting.sweep_report import json_safe
from raytrader.backtesting.trials import TrialRunner, metrics_record
from raytrader.backtesting.walk_forward_report import (
    degradation,
    parameter_stability,
    stitch_equity,
    walk_forward_efficiency,
)
from raytrader.backtesting.walk_forward_windows import Window, windows
from raytrader.data.market_data import MarketData
from raytrader.orchestrator.sweep_pool import SweepPool
from raytrader.orchestrator.sweep_runner import (
    SWEEPS,
    SweepProgress,
    SweepRunner,
    default_sweep_id,
    trial_setup,
)
from raytrader.state.deflated_sharpe import deflated_sharpe_ratio, probabilistic_sharpe_ratio
from raytrader.state.metrics import Metrics, compute_metrics, periods_per_year
from raytrader.state.stores import StateStore

log = structlog.get_logger(__name__)

# Trade statistics of an out-of-sample run: all its trades fall in the test window.
_TRADE_FIELDS = ("trade_count", "win_rate", "profit_factor", "avg_trade_pnl", "avg_trade_return")


@dataclass
class WindowResult:
    index: int
    train_start: str
    train_end: str
    test_start: str
    test_end: str
    params: dict[str, Any]
    trials: int
    is_objective: float
    oos_objective: float
    is_cagr: float
    oos_cagr: float
    oos_sharpe: float
    oos_trades: int
    dsr: float | None  # deflated Sharpe of the in-sample pick against this window's trials


@dataclass
class WalkForwardOutcome:
    wf_id: str
    config: SweepConfig
    windows: list[WindowResult]
    oos_equity: pd.Series
    oos_metrics: Metrics
    summary: dict[str, Any]

    def windows_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(w) for w in self.windows])


def _ts(data: MarketData, i: int) -> str:
    return data.index[min(i, data.n_bars - 1)].isoformat()


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def _dsr(equity: pd.Series, table: pd.DataFrame, ppy: float) -> float | None:
    """DSR of the in-sample pick: its bar returns against every trial's per-bar Sharpe."""
    returns = equity.pct_change().to_numpy()[1:]
    sharpes = table["sharpe"].to_numpy(dtype=float) / math.sqrt(ppy)
    try:
        return deflated_sharpe_ratio(returns, sharpes[np.isfinite(sharpes)]).dsr
    except ValueError:  # flat equity or a single bar: no Sharpe to deflate
        return None


class WalkForwardRunner:
    def __init__(
        self,
        config: SweepConfig,
        store: StateStore,
        pool: SweepPool,
        *,
        wf_id: str | None = None,
        data: MarketData | None = None,
        on_progress: Callable[[int, int, SweepProgress], None] | None = None,
        cancel: asyncio.Event | None = None,
    ) -> None:
        if config.walk_forward is None:
            raise ValueError("the config has no walk_forward section")
        self.config = config
        self.spec = config.walk_forward
        self.store = store
        self.pool = pool
        self.wf_id = wf_id or default_sweep_id(config)
        self.data = data
        self.on_progress = on_progress
        self.cancel = cancel or asyncio.Event()

    async def _put_status(self, status: str, **extra: Any) -> None:
        record = await self.store.get_record(SWEEPS, self.wf_id) or {
            "id": self.wf_id,
            "kind": "walk_forward",
            "name": self.config.name,
            "config": self.config.model_dump(mode="json"),
        }
        record.update(status=status, **extra)
        await self.store.put_record(SWEEPS, self.wf_id, json_safe(record))

    def _window_progress(self, k: int, n: int) -> Callable[[SweepProgress], None] | None:
        report = self.on_progress
        if report is None:
            return None
        return lambda p: report(k, n, p)

    async def _window(self, data: MarketData, w: Window, n: int) -> tuple[WindowResult, pd.Series]:
        cfg = self.config
        setup = trial_setup(cfg)
        train = data.slice(w.train_start, w.train_end)
        sweep = SweepRunner(
            cfg,
            self.store,
            self.pool,
            sweep_id=f"{self.wf_id}-w{w.index}-{w.train_start}-{w.train_end}",
            data=train,
            on_progress=self._window_progress(w.index, n),
            cancel=self.cancel,
        )
        outcome = await sweep.run()
        if outcome.best is None:
            raise ValueError(f"window {w.index}: no trial has a finite {cfg.objective}")
        params = {**cfg.params, **outcome.best["params"]}
        warmup = registry.create(cfg.agent, params).warmup
        start = max(0, w.test_start - warmup)
        test = data.slice(start, w.test_end)

        def evaluate() -> tuple[pd.Series, Metrics, float | None]:
            is_runner = TrialRunner(train, setup)
            is_curve = is_runner.curve(params)
            oos = TrialRunner(test, setup).curve(params)
            segment = oos.equity.iloc[w.test_start - start :]
            ppy = setup.periods_per_year or periods_per_year(data.index)
            oos_metrics = compute_metrics(segment, [], periods_per_year=ppy).model_copy(
                update={f: getattr(oos.metrics, f) for f in _TRADE_FIELDS}
            )
            return segment, oos_metrics, _dsr(is_curve.equity, outcome.table, is_runner.ppy)

        segment, oos_metrics, dsr = await asyncio.to_thread(evaluate)
        is_row = outcome.table.iloc[0]
        result = WindowResult(
            index=w.index,
            train_start=_ts(data, w.train_start),
            train_end=_ts(data, w.train_end - 1),
            test_start=_ts(data, w.test_start),
            test_end=_ts(data, w.test_end - 1),
            params=outcome.best["params"],
            trials=len(outcome.table),
            is_objective=_number(outcome.best["value"]),
            oos_objective=_number(metrics_record(oos_metrics).get(cfg.objective)),
            is_cagr=_number(is_row["cagr"]),
            oos_cagr=oos_metrics.cagr,
            oos_sharpe=oos_metrics.sharpe,
            oos_trades=oos_metrics.trade_count,
            dsr=dsr,
        )
        return result, segment

    async def run(self) -> WalkForwardOutcome:
        cfg = self.config
        data = self.data if self.data is not None else cfg.data.load()
        plan = windows(data.n_bars, self.spec)
        t0 = time.perf_counter()
        await self._put_status("running", windows_done=0, windows=len(plan))
        results: list[WindowResult] = []
        segments: list[pd.Series] = []
        try:
            for w in plan:
                result, segment = await self._window(data, w, len(plan))
                results.append(result)
                segments.append(segment)
                await self._put_status("running", windows_done=len(results), windows=len(plan))
                log.info("walk-forward window done", wf=self.wf_id, window=w.index, **result.params)
        except BaseException as exc:
            cancelled = self.cancel.is_set()
            await self._put_status(
                "cancelled" if cancelled else "failed",
                windows_done=len(results),
                windows=len(plan),
                error="" if cancelled else str(exc)[:2000],
            )
            raise

        equity = stitch_equity(segments, cfg.initial_cash)
        ppy = cfg.periods_per_year or periods_per_year(data.index)
        oos = compute_metrics(equity, [], periods_per_year=ppy)
        returns = equity.pct_change().to_numpy(dtype=np.float64)[1:]
        summary = self._summary(results, oos, returns, ppy, time.perf_counter() - t0)
        await self._put_status(
            "done", windows_done=len(results), windows=len(plan), summary=summary
        )
        return WalkForwardOutcome(self.wf_id, cfg, results, equity, oos, summary)

    def _summary(
        self,
        results: list[WindowResult],
        oos: Metrics,
        returns: npt.NDArray[np.floating[Any]],
        ppy: float,
        seconds: float,
    ) -> dict[str, Any]:
        deg = degradation([r.is_objective for r in results], [r.oos_objective for r in results])
        stability = parameter_stability([r.params for r in results])
        sr = float(np.mean(returns) / np.std(returns, ddof=1)) if np.std(returns) > 0 else 0.0
        centered = returns - returns.mean()
        m2 = float(np.mean(centered**2))
        psr = None
        if m2 > 0 and len(returns) > 2:
            skew = float(np.mean(centered**3)) / m2**1.5
            kurt = float(np.mean(centered**4)) / m2**2
            psr = probabilistic_sharpe_ratio(sr, 0.0, len(returns), skew, kurt)
        dsrs = [r.dsr for r in results if r.dsr is not None]
        return {
            "id": self.wf_id,
            "mode": self.spec.mode,
            "windows": len(results),
            "purge_bars": self.spec.purge_bars,
            "objective": self.config.objective,
            "oos": metrics_record(oos),
            "oos_sharpe_probability": psr,  # PSR of the stitched OOS curve against 0
            "mean_window_dsr": float(np.mean(dsrs)) if dsrs else None,
            "degradation": {
                "ratios": list(deg.ratios),
                "differences": list(deg.differences),
                "mean_ratio": deg.mean_ratio,
                "mean_difference": deg.mean_difference,
            },
            "walk_forward_efficiency": walk_forward_efficiency(
                [r.is_cagr for r in results], [r.oos_cagr for r in results]
            ),
            "parameter_stability": {k: asdict(v) for k, v in stability.items()},
            "seconds": seconds,
        }
