"""POST /api/risk/calculate-position-size: fixed fractional, ATR risk, volatility target,
Kelly, risk parity and mean-variance."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import APIRouter
from pydantic import BaseModel

from raytrader.data.indicators import atr as atr_indicator
from raytrader.data.market_data import FloatArray
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.orchestrator.api.common import field_error
from raytrader.orchestrator.api.data import Source, bundled_frames
from raytrader.orchestrator.api.deps import Manager
from raytrader.orchestrator.api.risk.returns import MIN_RETURNS, Returns, bars_per_year, returns_for
from raytrader.orchestrator.api.risk.sizing_models import (
    AssetWeight,
    AtrRiskSize,
    KellySize,
    MeanVarianceWeights,
    PortfolioWeights,
    PositionSize,
    PositionSizeRequest,
    RiskParityWeights,
    SizedRequest,
    VolTargetSize,
)
from raytrader.orchestrator.sessions import SessionManager
from raytrader.portfolio.config import PortfolioConfig
from raytrader.portfolio.rebalancer import Rebalancer
from raytrader.risk.covariance import covariance
from raytrader.risk.kelly import kelly_fraction, win_rate_and_payoff
from raytrader.risk.limits import clip_target
from raytrader.risk.mean_variance import mean_variance_weights
from raytrader.risk.risk_parity import risk_contributions, risk_parity_weights
from raytrader.risk.sizing import atr_risk_unit, fixed_fractional, round_to_lot
from raytrader.risk.vol_target import ewma_volatility, rolling_volatility, vol_target_units

router = APIRouter()


def _last_atr(source: Source, symbol: str, period: int) -> float:
    frame = bundled_frames(source).get(symbol)
    if frame is None:
        raise field_error(("body", "symbol"), f"unknown symbol {symbol!r} in {source}")
    values = atr_indicator(
        frame["high"].to_numpy(), frame["low"].to_numpy(), frame["close"].to_numpy(), period
    )
    last = float(values[-1]) if len(values) else math.nan
    if not (last > 0 and math.isfinite(last)):
        raise field_error(("body", "atr_period"), f"{symbol} has too few bars for ATR({period})")
    return last


def _unit_cost(req: SizedRequest) -> float:
    rb = Rebalancer(
        PortfolioConfig(),
        CommissionModel(bps=req.commission_bps),
        SlippageModel(bps=req.slippage_bps),
    )
    return rb.unit_cost(req.price, req.side)


def _sized(req: SizedRequest, raw: float, unit_cost: float, **extra: Any) -> PositionSize:
    """The answer for ``raw`` units: clipped to the limits, rounded to lots."""
    clipped: str | None = None
    quantity = raw
    if req.limits is not None:
        signed, why = clip_target(req.side.sign * raw, req.price, req.equity, req.limits)
        quantity, clipped = abs(signed), why or None
    quantity = round_to_lot(quantity, req.lot_size)
    notional = quantity * req.price
    atr = extra.pop("atr", None)
    point_value = extra.pop("point_value", 1.0)
    return PositionSize(
        method=str(getattr(req, "method", "fixed_fractional")),
        side=req.side,
        quantity=quantity,
        raw_quantity=raw,
        notional=notional,
        weight=notional / req.equity,
        unit_cost=unit_cost,
        atr=atr,
        risk_amount=quantity * atr * point_value if atr is not None else None,
        clipped_by=clipped,
        **extra,
    )


def _one_of(req: BaseModel, names: Sequence[str]) -> str:
    """The one field of ``names`` that is set; else a 422 naming the first."""
    given = [n for n in names if getattr(req, n) is not None]
    if len(given) != 1:
        what = "both " + " and ".join(given) if given else "none"
        raise field_error(
            ("body", given[-1] if given else names[0]),
            f"give one of {', '.join(names)} ({what} given)",
        )
    return given[0]


async def _vol_target(req: VolTargetSize, mgr: SessionManager) -> PositionSize:
    which = _one_of(req, ("volatility", "returns", "symbol"))
    if which != "symbol":
        for name in ("session_id", "source"):
            if getattr(req, name) is not None:
                raise field_error(("body", name), "only with symbol")
    if req.session_id is not None and req.source is not None:
        raise field_error(("body", "source"), "give session_id or source, not both")
    observations: int | None = None
    if req.volatility is not None:
        vol = req.volatility
    else:
        if req.returns is not None:
            r = np.asarray(req.returns, dtype=float)
            per_year = req.periods_per_year or 252.0
        else:
            assert req.symbol is not None
            got = await returns_for(
                mgr, req.session_id, req.source, [req.symbol], req.lookback, ("body", "symbol")
            )
            series = got.frame[req.symbol].dropna()
            r = series.to_numpy(dtype=float)
            per_year = bars_per_year(series.index, req.periods_per_year)
        observations = len(r)
        if req.estimator == "rolling":
            if len(r) < req.vol_window or (req.demean and req.vol_window < 2):
                need = max(req.vol_window, 2 if req.demean else 1)
                raise field_error(
                    ("body", "vol_window"), f"rolling over {need} returns, but {len(r)} are known"
                )
            vol = rolling_volatility(r, req.vol_window, per_year, demean=req.demean)
        else:
            if len(r) < 2:
                raise field_error(("body", "lookback"), f"{len(r)} returns are known; need 2")
            vol = ewma_volatility(r, req.halflife, per_year, demean=req.demean)
    raw = vol_target_units(
        req.equity, req.price, vol, req.target_vol, req.max_leverage, req.point_value
    )
    return _sized(
        req,
        raw,
        _unit_cost(req),
        fraction=raw * req.price * req.point_value / req.equity,
        volatility=vol,
        observations=observations,
    )


def _kelly(req: KellySize) -> PositionSize:
    if req.trade_returns is not None:
        if req.win_rate is not None or req.payoff_ratio is not None:
            name = "win_rate" if req.win_rate is not None else "payoff_ratio"
            raise field_error(("body", name), "give win_rate and payoff_ratio, or trade_returns")
        p, b = win_rate_and_payoff(req.trade_returns)
        observations: int | None = len(req.trade_returns)
    else:
        for name in ("win_rate", "payoff_ratio"):
            if getattr(req, name) is None:
                raise field_error(
                    ("body", name), "give win_rate and payoff_ratio, or trade_returns"
                )
        assert req.win_rate is not None and req.payoff_ratio is not None
        p, b, observations = req.win_rate, req.payoff_ratio, None
    f = (
        0.0
        if b == 0
        else kelly_fraction(p, b, fraction=req.fraction, max_fraction=req.max_fraction)
    )
    cost = _unit_cost(req)
    return _sized(
        req,
        fixed_fractional(req.equity, f, cost),
        cost,
        fraction=f,
        observations=observations,
        win_rate=p,
        payoff_ratio=b if math.isfinite(b) else None,
    )


def _bounds(
    value: float | dict[str, float], symbols: list[str], default: float, name: str
) -> FloatArray:
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(symbols))
        if unknown:
            raise field_error(("body", name), f"{unknown} are not among the symbols")
        return np.array([value.get(s, default) for s in symbols], dtype=float)
    return np.full(len(symbols), float(value))


def _weights(req: RiskParityWeights | MeanVarianceWeights, returns: Returns) -> PortfolioWeights:
    frame = returns.frame.dropna()
    if len(frame) < MIN_RETURNS:
        raise field_error(
            ("body", "lookback"),
            f"{len(frame)} complete bar returns of {', '.join(req.symbols)} in the last"
            f" {req.lookback} bars; need {MIN_RETURNS}",
        )
    per_year = bars_per_year(frame.index, req.periods_per_year)
    x = frame.to_numpy(dtype=float)
    try:
        cov = covariance(x, req.shrinkage)
    except ValueError as exc:
        raise field_error(("body", "symbols"), str(exc)) from None
    symbols = list(req.symbols)
    mu: FloatArray | None = None
    try:
        if isinstance(req, RiskParityWeights):
            budgets = None
            if req.budgets is not None:
                if set(req.budgets) != set(symbols):
                    raise field_error(("body", "budgets"), "give a budget for every symbol")
                budgets = np.array([req.budgets[s] for s in symbols])
            w = risk_parity_weights(cov, budgets)
        else:
            if req.expected_returns == "historical":
                mu = x.mean(axis=0) * per_year
            elif isinstance(req.expected_returns, dict):
                if set(req.expected_returns) != set(symbols):
                    raise field_error(
                        ("body", "expected_returns"), "give an expected return for every symbol"
                    )
                mu = np.array([req.expected_returns[s] for s in symbols])
            for name in ("risk_aversion", "target_return"):
                if getattr(req, name) is not None and mu is None:
                    raise field_error(("body", name), f"{name} needs expected_returns")
            if req.risk_aversion is not None and req.target_return is not None:
                raise field_error(("body", "target_return"), "give risk_aversion or target_return")
            lo = _bounds(req.min_weight, symbols, 0.0, "min_weight")
            hi = _bounds(req.max_weight, symbols, 1.0, "max_weight")
            if (lo > hi).any() or lo.sum() > 1 + 1e-9:
                raise field_error(
                    ("body", "min_weight"),
                    f"min_weight sums to {lo.sum():g} (over 1) or is above max_weight somewhere",
                )
            if hi.sum() < 1 - 1e-9:
                raise field_error(
                    ("body", "max_weight"), f"max_weight sums to {hi.sum():g}: under 1"
                )
            w = mean_variance_weights(
                cov * per_year,
                mu,
                risk_aversion=req.risk_aversion,
                target_return=req.target_return,
                min_weight=lo,
                max_weight=hi,
            )
    except ValueError as exc:
        where = "target_return" if str(exc).startswith("target_return") else "symbols"
        raise field_error(("body", where), str(exc)) from None
    except RuntimeError as exc:  # the solver gave up
        raise field_error(("body", "symbols"), str(exc)) from None
    contributions = risk_contributions(w, cov)
    vol = np.sqrt(np.diag(cov) * per_year)
    last = returns.last_close
    rows = []
    for i, s in enumerate(symbols):
        qty = notional = None
        if req.equity is not None:
            qty = round_to_lot(float(w[i]) * req.equity / last[s], req.lot_size)
            notional = qty * last[s]
        rows.append(
            AssetWeight(
                symbol=s,
                weight=float(w[i]),
                risk_contribution=float(contributions[i]),
                volatility=float(vol[i]),
                expected_return=float(mu[i]) if mu is not None else None,
                price=last[s],
                quantity=qty,
                notional=notional,
            )
        )
    return PortfolioWeights(
        method=req.method,
        weights=rows,
        volatility=math.sqrt(float(w @ cov @ w) * per_year),
        expected_return=float(mu @ w) if mu is not None else None,
        shrinkage=req.shrinkage,
        observations=len(frame),
        periods_per_year=per_year,
        start=frame.index[0],
        end=frame.index[-1],
        source=returns.source,
    )


@router.post("/calculate-position-size", response_model=PositionSize | PortfolioWeights)
async def calculate_position_size(
    req: PositionSizeRequest, mgr: Manager
) -> PositionSize | PortfolioWeights:
    """How much to hold, by `method`:

    - `fixed_fractional` (the default): units worth `fraction` of equity, fees included;
    - `atr_risk`: equity x `risk_factor` / ATR (given, or of a bundled symbol);
    - `volatility_target`: notional = equity x min(`target_vol` / realised vol,
      `max_leverage`), the realised vol given or estimated (EWMA or rolling) from returns given
      or of a symbol in a session's or a bundled data set;
    - `kelly`: units worth `fraction` x the Kelly fraction (p - (1 - p) / b) of equity, from a
      win rate and payoff ratio or estimated from trade returns;
    - `risk_parity`: weights of `symbols` with equal (or budgeted) risk contributions;
    - `mean_variance`: fully invested weights of `symbols` within bounds.

    The last two estimate the covariance (Ledoit-Wolf or sample) from a session's or a bundled
    data set's returns and answer weights (and units at the last closes, given an equity).
    """
    if isinstance(req, RiskParityWeights | MeanVarianceWeights):
        if req.session_id is not None and req.source is not None:
            raise field_error(("body", "source"), "give session_id or source, not both")
        got = await returns_for(
            mgr, req.session_id, req.source, req.symbols, req.lookback, ("body", "symbols")
        )
        return await asyncio.to_thread(_weights, req, got)
    if isinstance(req, VolTargetSize):
        return await _vol_target(req, mgr)
    if isinstance(req, KellySize):
        return _kelly(req)
    if isinstance(req, AtrRiskSize):
        atr = req.atr
        if atr is None:
            assert req.symbol is not None
            atr = await asyncio.to_thread(_last_atr, req.source, req.symbol, req.atr_period)
        raw = atr_risk_unit(req.equity, req.risk_factor, atr, req.point_value)
        return _sized(req, raw, _unit_cost(req), atr=atr, point_value=req.point_value)
    cost = _unit_cost(req)
    return _sized(req, fixed_fractional(req.equity, req.fraction, cost), cost)
