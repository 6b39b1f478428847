"""GET /api/risk/stress-test: historical windows, Monte Carlo paths and factor shocks on a
session's positions."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi import APIRouter, Query
from pydantic import (
    BaseModel,
    Field,
)

from raytrader.orchestrator import control
from raytrader.orchestrator.api.common import (
    SYMBOL_PATTERN,
    SessionQuery,
    field_error,
)
from raytrader.orchestrator.api.deps import Manager
from raytrader.orchestrator.api.risk.holdings import (
    all_finite,
    held_exposures,
    held_returns,
    position_rows,
    returns_used,
)
from raytrader.orchestrator.api.risk.returns import MIN_RETURNS, check_work, session_returns
from raytrader.orchestrator.api.risk.stress_models import (
    FactorStress,
    HistoricalStress,
    MonteCarloStress,
    PnLSummary,
    ScenarioOut,
    ShockOut,
    StressTest,
)
from raytrader.risk.stress import (
    PnLDistribution,
    estimate_betas,
    factor_shock,
    historical_scenarios,
    monte_carlo,
)
from raytrader.risk.var import horizon_returns

T = TypeVar("T")

router = APIRouter()


def _summary(samples: npt.ArrayLike) -> PnLSummary:
    return PnLSummary.model_validate(PnLDistribution.from_samples(samples), from_attributes=True)


@dataclass(frozen=True)
class _StressArgs:
    horizon: int
    worst: int
    paths: int
    simulation: Literal["bootstrap", "normal"]
    seed: int
    factor: str | None
    shocks: tuple[float, ...]


def _timestamp(value: pd.Timestamp | None) -> datetime | None:
    return None if value is None else value.to_pydatetime()


def _section(name: str, notes: list[str], build: Callable[[], T | None]) -> T | None:
    """``build()``, or None with a note when it cannot be estimated or overflows."""
    try:
        with np.errstate(all="ignore"):
            out = build()
    except ValueError as exc:
        notes.append(f"{name}: {exc}")
        return None
    if isinstance(out, BaseModel) and not all_finite(out.model_dump()):
        notes.append(f"{name}: the PnL overflows")
        return None
    return out


def _stress(
    returns: pd.DataFrame, frame: pd.DataFrame, exposures: Mapping[str, float], a: _StressArgs
) -> tuple[HistoricalStress | None, MonteCarloStress | None, FactorStress | None, list[str]]:
    notes: list[str] = []
    names = list(frame.columns)
    pos = np.array([exposures[s] for s in names], dtype=float)
    positions = pd.Series(pos, index=names)

    def historical() -> HistoricalStress | None:
        windows = horizon_returns(frame.to_numpy(dtype=float), a.horizon)
        windows = windows[~np.isnan(windows).any(axis=1)]
        if len(windows) == 0:
            notes.append(f"historical: no complete window of {a.horizon} bars in the returns")
            return None
        scenarios = historical_scenarios(frame, positions, a.horizon, a.worst)
        return HistoricalStress(
            windows=len(windows),
            distribution=_summary(windows @ pos),
            worst=[
                ScenarioOut(
                    rank=s.rank,
                    start=_timestamp(s.start),
                    end=_timestamp(s.end),
                    pnl=s.pnl,
                    position_pnl=s.position_pnl,
                )
                for s in scenarios
            ],
        )

    def simulated() -> MonteCarloStress:
        mc = monte_carlo(frame, positions, a.horizon, a.paths, a.simulation, a.seed)
        return MonteCarloStress(
            method=a.simulation,
            paths=a.paths,
            seed=a.seed,
            distribution=_summary(mc.pnl),
            positions={n: _summary(mc.position_pnl[:, i]) for i, n in enumerate(mc.names)},
        )

    def shocked() -> FactorStress:
        if a.factor is not None:
            f = returns[a.factor].to_numpy(dtype=float)
            basket: list[str] = []
        else:
            values = returns.to_numpy(dtype=float)
            known = ~np.isnan(values)
            count = known.sum(axis=1)
            total = np.where(known, values, 0.0).sum(axis=1)
            f = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            basket = [str(c) for c in returns.columns]
        betas = estimate_betas(frame, f)
        usable = np.where(np.isfinite(betas), betas, 0.0)
        shock = factor_shock(pos, usable, np.array(a.shocks, dtype=float))
        moves = horizon_returns(f.reshape(-1, 1), a.horizon)[:, 0]
        moves = moves[~np.isnan(moves)]
        history = _summary(factor_shock(pos, usable, moves).pnl) if len(moves) else None
        return FactorStress(
            factor=a.factor or "basket",
            basket=basket,
            betas={
                n: float(b) if math.isfinite(b) else None for n, b in zip(names, betas, strict=True)
            },
            shocks=[
                ShockOut(
                    shock=float(s),
                    pnl=float(shock.pnl[j]),
                    position_pnl={n: float(shock.position_pnl[j, i]) for i, n in enumerate(names)},
                )
                for j, s in enumerate(shock.shocks)
            ],
            history=history,
        )

    return (
        _section("historical", notes, historical),
        _section("monte_carlo", notes, simulated),
        _section("factor", notes, shocked),
        notes,
    )


Shock = Annotated[float, Field(ge=-1, le=10)]
DEFAULT_SHOCKS = (-0.2, -0.1, -0.05, 0.05, 0.1)


@router.get("/stress-test", response_model=StressTest)
async def stress_test(
    mgr: Manager,
    session_id: SessionQuery,
    window: Annotated[
        int, Query(ge=MIN_RETURNS, le=100_000, description="the last bar returns to draw on")
    ] = 250,
    horizon: Annotated[
        int, Query(ge=1, le=250, description="bars a scenario, a path and a factor move span")
    ] = 1,
    worst: Annotated[int, Query(ge=1, le=50, description="historical: windows to list")] = 5,
    paths: Annotated[int, Query(ge=1, le=10_000, description="Monte Carlo paths")] = 1000,
    simulation: Annotated[
        Literal["bootstrap", "normal"],
        Query(description="bootstrap whole bars of returns, or draw a multivariate normal"),
    ] = "bootstrap",
    seed: Annotated[
        int | None, Query(ge=0, le=2**32 - 1, description="Monte Carlo seed; random if omitted")
    ] = None,
    factor: Annotated[
        str | None,
        Query(
            pattern=SYMBOL_PATTERN,
            description="a symbol of the session's data; default: the equal-weight basket of all",
        ),
    ] = None,
    shock: Annotated[
        list[Shock] | None,
        Query(max_length=20, description="factor returns, repeatable; default -20% .. +10%"),
    ] = None,
) -> StressTest:
    """Stress tests of a session's positions today, as PnL distributions (currency):

    - historical: every `horizon`-bar window of the last `window` returns replayed on the
      positions (units held), and the `worst` non-overlapping windows;
    - Monte Carlo: `paths` paths of `horizon` bars, bootstrapped bars or multivariate normal;
    - single-factor shocks: betas of the positions on `factor` (a symbol, or the equal-weight
      basket), the PnL of each `shock`, and of the factor's own `horizon`-bar moves.
    """
    held = await control.portfolio(mgr, session_id)
    exposures = held_exposures(held)
    # The basket takes every symbol; a factor symbol, only itself and the held ones.
    wanted: list[str] | None = list(dict.fromkeys([*exposures, factor])) if factor else None
    if not exposures and factor is None:
        wanted = []  # nothing is at risk: no returns needed
    returns = await session_returns(mgr, session_id, window, ("query", "window"), wanted)
    if factor is not None and factor not in returns.frame.columns:
        raise field_error(("query", "factor"), f"{factor!r} is not in the session's data")
    n = len(exposures)
    rows = len(returns.frame)
    check_work(rows * horizon * n, ("query", "window"), f"{rows} returns x {horizon} bars x {n}")
    check_work(
        paths * horizon * max(n, 1), ("query", "paths"), f"{paths} paths x {horizon} bars x {n}"
    )
    if simulation == "normal":
        check_work(horizon * n**3 / 100, ("query", "simulation"), f"normal draws of {n} assets")
    frame, note = held_returns(returns, exposures)
    notes = [note] if note else []
    historical = simulated = shocked = None
    if frame is not None:
        args = _StressArgs(
            horizon=horizon,
            worst=worst,
            paths=paths,
            simulation=simulation,
            seed=seed if seed is not None else secrets.randbelow(2**32),
            factor=factor,
            shocks=tuple(shock or DEFAULT_SHOCKS),
        )
        historical, simulated, shocked, more = await asyncio.to_thread(
            _stress, returns.frame, frame, exposures, args
        )
        notes += more
    return StressTest(
        session_id=session_id,
        as_of=held.as_of,
        equity=held.equity,
        horizon_bars=horizon,
        positions=position_rows(held),
        returns=returns_used(returns.frame, returns.source),
        historical=historical,
        monte_carlo=simulated,
        factor=shocked,
        notes=notes,
    )
