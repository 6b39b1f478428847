"""Risk: position sizing, pre-trade limit checks, a session's portfolio risk and stress tests."""

from __future__ import annotations

import asyncio
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd
from fastapi import APIRouter, HTTPException, Query
from pydantic import (
    BaseModel,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from raytrader.data.indicators import atr as atr_indicator
from raytrader.data.market_data import MarketData
from raytrader.data.spec import DataSpec
from raytrader.domain import Order, Side
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.orchestrator import control
from raytrader.orchestrator.api.common import (
    SESSION_ERRORS,
    SYMBOL_PATTERN,
    ClientOrderId,
    LimitsIn,
    Money,
    Price,
    SessionId,
    SessionQuery,
    SideIn,
    SignedQuantity,
    Strict,
    Symbol,
    check_lot,
    examples,
    field_error,
)
from raytrader.orchestrator.api.data import Source, bundled_frames
from raytrader.orchestrator.api.deps import Manager
from raytrader.orchestrator.api.execution import OrderFields
from raytrader.orchestrator.sessions import SessionManager
from raytrader.portfolio.config import PortfolioConfig
from raytrader.portfolio.rebalancer import AccountView, Rebalancer
from raytrader.risk.checks import PreTradeRisk, RiskContext
from raytrader.risk.covariance import covariance
from raytrader.risk.kelly import kelly_fraction, win_rate_and_payoff
from raytrader.risk.limits import RiskLimits, clip_target
from raytrader.risk.mean_variance import mean_variance_weights
from raytrader.risk.risk_parity import risk_contributions, risk_parity_weights
from raytrader.risk.sizing import atr_risk_unit, fixed_fractional, round_to_lot
from raytrader.risk.stress import (
    PnLDistribution,
    estimate_betas,
    factor_shock,
    historical_scenarios,
    monte_carlo,
)
from raytrader.risk.var import METHODS, historical_var_es, horizon_returns
from raytrader.risk.var import Method as VarMethod
from raytrader.risk.var import portfolio_risk as var_report
from raytrader.risk.vol_target import ewma_volatility, rolling_volatility, vol_target_units
from raytrader.state.metrics import periods_per_year

router = APIRouter(prefix="/api/risk", tags=["risk"], responses=SESSION_ERRORS)

FloatArray = npt.NDArray[np.float64]
T = TypeVar("T")

MIN_RETURNS = 20
# Element-steps one estimate may take (returns x horizon x positions, paths x horizon x
# positions): a request beyond it is a 422 naming the parameter to lower.
MAX_WORK = 20_000_000


# ---- the returns of a session's symbols, or of a bundled data set --------------------------


def _check_work(cells: float, loc: tuple[str, ...], what: str) -> None:
    if cells > MAX_WORK:
        raise field_error(loc, f"{what} is {cells:,.0f} steps, over the {MAX_WORK:,} allowed")


@dataclass(frozen=True)
class Returns:
    """Bar returns, oldest first, one column per symbol (NaN: no bar), on a UTC index, and
    each symbol's last known close."""

    frame: pd.DataFrame
    last_close: Mapping[str, float]
    source: str  # where they come from, for the answer


def _returns(closes: FloatArray, index: pd.Index, symbols: Sequence[str], source: str) -> Returns:
    """Close-to-close returns of ``closes`` (bars x symbols); infinities count as missing."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = closes[1:] / closes[:-1] - 1.0
    r[~np.isfinite(r)] = np.nan
    last = {}
    for j, s in enumerate(symbols):
        known = closes[:, j][np.isfinite(closes[:, j])]
        if len(known):
            last[s] = float(known[-1])
    frame = pd.DataFrame(r, index=index[1:], columns=list(symbols))
    return Returns(frame, last, source)


@lru_cache(maxsize=4)
def _replay_data(spec: str) -> MarketData:
    """A replayed session's data set (read once per process; callers must not mutate it)."""
    return DataSpec.model_validate_json(spec).load()


@lru_cache(maxsize=4)
def _bundled_closes(source: Source) -> pd.DataFrame:
    frames = bundled_frames(source)
    return pd.concat({s: f["close"] for s, f in frames.items()}, axis=1).sort_index()


async def session_returns(
    mgr: SessionManager,
    sid: str,
    bars: int,
    loc: tuple[str, ...],
    symbols: Sequence[str] | None = None,
) -> Returns:
    """The last ``bars`` bar returns of a session's ``symbols`` (None: all of its data's), up
    to its last bar; a 422 at ``loc`` when that is more than ``MAX_WORK`` numbers.

    A replayed session's come from its data set (the bars it has seen so far); a session on a
    live feed has the recent closes it keeps for its pre-trade checks (its RiskContext's
    returns, kept when its limits need returns), or none.
    """
    config = await control.session_config(mgr, sid)
    run = mgr.runs.get(sid)
    if config.feed.kind == "replay":
        if run is not None:
            last = run.last_bar
        else:
            cp = await mgr.c.state.load_snapshot.remote(sid, "checkpoint")
            last = int(cp["bar"]) if cp else -1
        try:
            data = await asyncio.to_thread(_replay_data, config.data_spec().model_dump_json())
        except (OSError, ValueError) as exc:
            raise HTTPException(409, f"the data of session {sid} cannot be read: {exc}") from None
        last = min(last, data.n_bars - 1)
        lo = max(0, last - bars)
        names = [s for s in (data.symbols if symbols is None else symbols) if s in data.symbols]
        _check_work(
            (last + 1 - lo) * len(names), loc, f"{last + 1 - lo} bars x {len(names)} symbols"
        )
        rows = [data.symbols.index(s) for s in names]
        closes = data.close[rows, lo : last + 1].T
        source = "the session's data up to its last bar"
        return _returns(closes, data.index[lo : last + 1], names, source)
    source = "the session's recent closes (kept when its limits need returns)"
    empty = Returns(pd.DataFrame(index=pd.DatetimeIndex([], tz="UTC")), {}, source)
    if run is None or run.last_bar not in run.equity:
        return empty
    # What check-limits gives the pre-trade checks of this session.
    context = run.risk_context(run.equity[run.last_bar][0])
    returns = {s: v for s, v in (context.returns or {}).items() if symbols is None or s in symbols}
    n = min(min((len(v) for v in returns.values()), default=0), bars)
    span = range(run.last_bar - n + 1, run.last_bar + 1)
    if n == 0 or any(b not in run.equity for b in span):
        return empty
    frame = pd.DataFrame(
        {s: np.asarray(v, dtype=float)[-n:] for s, v in returns.items()},
        index=pd.DatetimeIndex([run.equity[b][0] for b in span]).tz_convert("UTC"),
    )
    return Returns(frame.where(np.isfinite(frame)), dict(run.last_close), source)


def _data_set_returns(source: Source, bars: int) -> Returns:
    closes = _bundled_closes(source).iloc[-(bars + 1) :]
    return _returns(
        closes.to_numpy(dtype=float), closes.index, list(closes.columns), f"the data set {source}"
    )


async def _returns_for(
    mgr: SessionManager,
    session_id: str | None,
    source: Source | None,
    symbols: Sequence[str],
    bars: int,
    loc: tuple[str, ...],
) -> Returns:
    """The returns of ``symbols`` from a session's data or a bundled set (universe_daily by
    default); a 422 at ``loc`` names the symbols that are not there."""
    if session_id is not None:
        got = await session_returns(mgr, session_id, bars, loc, symbols)
    else:
        got = await asyncio.to_thread(_data_set_returns, source or "universe_daily", bars)
    missing = [s for s in symbols if s not in got.frame.columns or s not in got.last_close]
    if missing:
        have = ", ".join(map(str, got.frame.columns[:40])) or "none yet"
        raise field_error(loc, f"no returns of {missing} in {got.source} (have: {have})")
    return Returns(got.frame[list(symbols)], got.last_close, got.source)


def _per_year(index: pd.Index, given: float | None) -> float:
    if given is not None:
        return given
    if isinstance(index, pd.DatetimeIndex) and len(index) >= 2:
        return periods_per_year(index)
    return 252.0


# ---- position sizing --------------------------------------------------------------------------

Ratio = Annotated[float, Field(ge=-1, le=100, description="a simple return, e.g. -0.02")]
BarCount = Annotated[int, Field(ge=2, le=10_000, description="bar returns to estimate from")]
Annual = Annotated[float, Field(gt=0, le=1e6, description="bars per year; inferred if omitted")]


class _Sized(Strict):
    """What every single-instrument method takes."""

    equity: float = Field(gt=0, le=1e13, description="account equity")
    price: Price
    side: SideIn = Side.BUY
    lot_size: float = Field(0.0, ge=0, le=1e6, description="round down to lots; 0 = any")
    commission_bps: float = Field(0.0, ge=0, le=1000)
    slippage_bps: float = Field(0.0, ge=0, le=1000)
    limits: LimitsIn | None = Field(None, description="clip to these per-position limits")

    _lot_size = field_validator("lot_size")(check_lot)


class FixedFractionalSize(_Sized):
    """Units worth ``fraction`` of equity, fees included."""

    model_config = examples(
        {"equity": 100000, "price": 50, "fraction": 0.1, "commission_bps": 10, "lot_size": 1}
    )

    method: Literal["fixed_fractional"] = "fixed_fractional"
    fraction: float = Field(0.1, gt=0, le=10, description="share of equity")


class AtrRiskSize(_Sized):
    """Units such that a one-ATR move changes equity by ``risk_factor``."""

    model_config = examples(
        {"method": "atr_risk", "equity": 100000, "price": 50, "atr": 2.0},
        {"method": "atr_risk", "equity": 100000, "price": 50, "symbol": "S01"},
    )

    method: Literal["atr_risk"]
    risk_factor: float = Field(0.001, gt=0, le=1, description="units = equity x rf / ATR")
    point_value: float = Field(1.0, ge=1e-6, le=1e6, description="currency per price unit")
    symbol: Symbol | None = Field(None, description="compute the ATR from bundled data")
    source: Source = Field("universe_daily", description="the data set of `symbol`")
    atr_period: int = Field(20, ge=1, le=1000)
    atr: float | None = Field(None, ge=1e-8, le=1e9, validate_default=True, description="the ATR")

    @field_validator("atr")
    @classmethod
    def _atr_source(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None and info.data.get("symbol") is None and "symbol" in info.data:
            raise ValueError("atr_risk needs atr, or a symbol to compute it from")
        if v is not None and info.data.get("symbol") is not None:
            raise ValueError("give atr or symbol, not both")
        return v


class VolTargetSize(_Sized):
    """Notional = equity x min(target_vol / realised vol, max_leverage)."""

    model_config = examples(
        {
            "method": "volatility_target",
            "equity": 100000,
            "price": 50,
            "target_vol": 0.15,
            "symbol": "S01",
        },
        {"method": "volatility_target", "equity": 100000, "price": 50, "volatility": 0.3},
    )

    method: Literal["volatility_target"]
    target_vol: float = Field(gt=0, le=10, description="annualised volatility to aim at")
    max_leverage: float = Field(1.0, gt=0, le=100, description="cap on notional / equity")
    point_value: float = Field(1.0, ge=1e-6, le=1e6, description="currency per price unit")
    volatility: float | None = Field(
        None, gt=0, le=100, description="the realised volatility (annualised), if known"
    )
    returns: list[Ratio] | None = Field(
        None, min_length=2, max_length=10_000, description="bar returns, oldest first"
    )
    symbol: Symbol | None = Field(None, description="estimate from this symbol's returns")
    session_id: SessionId | None = Field(None, description="`symbol`'s returns from a session")
    source: Source | None = Field(None, description="`symbol`'s data set (universe_daily)")
    lookback: BarCount = 250
    estimator: Literal["ewma", "rolling"] = "ewma"
    halflife: float = Field(20.0, gt=0, le=10_000, description="ewma: bars")
    vol_window: int = Field(20, ge=1, le=10_000, description="rolling: bars")
    demean: bool = False
    periods_per_year: Annual | None = None


class KellySize(_Sized):
    """Fractional Kelly: units worth ``fraction x f*`` of equity, fees included."""

    model_config = examples(
        {"method": "kelly", "equity": 100000, "price": 50, "win_rate": 0.55, "payoff_ratio": 1.2},
        {"method": "kelly", "equity": 100000, "price": 50, "trade_returns": [0.02, -0.01, 0.03]},
    )

    method: Literal["kelly"]
    win_rate: float | None = Field(None, ge=0, le=1, description="share of winning bets")
    payoff_ratio: float | None = Field(None, gt=0, le=1e6, description="mean win / mean loss")
    trade_returns: list[Ratio] | None = Field(
        None, min_length=1, max_length=10_000, description="estimate p and b from these trades"
    )
    fraction: float = Field(0.5, gt=0, le=1, description="of the full Kelly bet; 0.5 = half")
    max_fraction: float = Field(1.0, gt=0, le=10, description="cap on the share of equity")


def _unique(symbols: list[str]) -> list[str]:
    if len(set(symbols)) != len(symbols):
        raise ValueError("symbols must be unique")
    return symbols


Weight = Annotated[float, Field(ge=-10, le=10)]


class _Weights(Strict):
    """What the multi-asset methods take: symbols and where their returns come from."""

    symbols: list[Symbol] = Field(min_length=2, max_length=50)
    session_id: SessionId | None = Field(None, description="the returns of a session's data")
    source: Source | None = Field(None, description="a bundled data set (universe_daily)")
    lookback: int = Field(250, ge=MIN_RETURNS, le=10_000, description="bar returns to use")
    shrinkage: Literal["ledoit_wolf", "sample"] = Field(
        "ledoit_wolf", description="covariance estimate: Ledoit-Wolf shrinkage or the sample"
    )
    periods_per_year: Annual | None = None
    equity: float | None = Field(None, gt=0, le=1e13, description="also give units to hold")
    lot_size: float = Field(0.0, ge=0, le=1e6, description="round units down to lots")

    _symbols = field_validator("symbols")(_unique)
    _lot_size = field_validator("lot_size")(check_lot)


class RiskParityWeights(_Weights):
    """Long-only weights with equal (or budgeted) risk contributions."""

    model_config = examples(
        {"method": "risk_parity", "symbols": ["S00", "S01", "S02"], "lookback": 250},
        {"method": "risk_parity", "session_id": "s-0123456789ab", "symbols": ["A", "B"]},
    )

    method: Literal["risk_parity"]
    budgets: dict[Symbol, Annotated[float, Field(gt=0, le=1e6)]] | None = Field(
        None, max_length=50, description="risk budget per symbol (every symbol), normalised"
    )


class MeanVarianceWeights(_Weights):
    """Fully invested weights within bounds: maximise mu'w - a/2 w'Cw, reach a target return
    at least variance, or (without expected returns) the minimum variance."""

    model_config = examples(
        {
            "method": "mean_variance",
            "symbols": ["S00", "S01", "S02"],
            "expected_returns": {"S00": 0.08, "S01": 0.05, "S02": 0.1},
            "risk_aversion": 4,
            "max_weight": 0.6,
        },
        {"method": "mean_variance", "symbols": ["S00", "S01"]},
    )

    method: Literal["mean_variance"]
    expected_returns: dict[Symbol, Weight] | Literal["historical"] | None = Field(
        None,
        description="annualised, every symbol; 'historical': the sample means; none: minimum"
        " variance",
    )
    risk_aversion: float | None = Field(None, gt=0, le=1e6, description="a in mu'w - a/2 w'Cw")
    target_return: Weight | None = Field(None, description="annualised; minimum variance at it")
    min_weight: Weight | dict[Symbol, Weight] = Field(
        0.0, description="a bound for all, or per symbol (others 0)"
    )
    max_weight: Weight | dict[Symbol, Weight] = Field(
        1.0, description="a bound for all, or per symbol (others 1)"
    )


_SIZERS: dict[str, type[Strict]] = {
    "fixed_fractional": FixedFractionalSize,
    "atr_risk": AtrRiskSize,
    "volatility_target": VolTargetSize,
    "kelly": KellySize,
    "risk_parity": RiskParityWeights,
    "mean_variance": MeanVarianceWeights,
}


def _method_of(value: Any) -> str | None:
    if isinstance(value, Mapping):
        method = value.get("method", "fixed_fractional")
        return method if isinstance(method, str) and method in _SIZERS else None
    if isinstance(value, BaseModel):
        return getattr(value, "method", None)
    return "fixed_fractional"  # not an object: that model says so


def _fields_named(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Errors located at the field (``equity``, not ``kelly.equity``); an unknown method is an
    error of ``method``."""
    try:
        return handler(value)
    except ValidationError as exc:
        details: list[InitErrorDetails] = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            if err["type"] == "method_unknown":
                known = ", ".join(_SIZERS)
                given = value.get("method") if isinstance(value, Mapping) else None
                ctx = {"given": repr(given)[:60], "known": known}
                details.append(
                    {
                        "type": PydanticCustomError(
                            "literal_error", "method {given} is not one of {known}", ctx
                        ),
                        "loc": ("method",),
                        "input": given,
                    }
                )
                continue
            if loc and loc[0] in _SIZERS:
                loc = loc[1:]
            detail: InitErrorDetails = {"type": err["type"], "loc": loc, "input": err["input"]}
            if "ctx" in err:
                detail["ctx"] = err["ctx"]
            if err["type"] == "value_error":  # the message of a ValueError raised in a check
                detail["type"] = PydanticCustomError(
                    "value_error", "{msg}", {"msg": err["msg"].removeprefix("Value error, ")}
                )
                detail.pop("ctx", None)
            details.append(detail)
        raise ValidationError.from_exception_data(exc.title, details) from None


PositionSizeRequest = Annotated[
    Annotated[FixedFractionalSize, Tag("fixed_fractional")]
    | Annotated[AtrRiskSize, Tag("atr_risk")]
    | Annotated[VolTargetSize, Tag("volatility_target")]
    | Annotated[KellySize, Tag("kelly")]
    | Annotated[RiskParityWeights, Tag("risk_parity")]
    | Annotated[MeanVarianceWeights, Tag("mean_variance")],
    Discriminator(
        _method_of,
        custom_error_type="method_unknown",
        custom_error_message="unknown method",
    ),
    WrapValidator(_fields_named),
]


class PositionSize(BaseModel):
    method: str
    side: Side
    quantity: float = Field(description="units after limits and lots")
    raw_quantity: float = Field(description="units before limits and lots")
    notional: float
    weight: float = Field(description="notional / equity")
    unit_cost: float = Field(description="cash per unit, slippage and commission included")
    atr: float | None
    risk_amount: float | None = Field(description="atr_risk: equity change on a one-ATR move")
    clipped_by: str | None
    fraction: float | None = Field(
        None, description="volatility_target, kelly: the share of equity the method asks for"
    )
    volatility: float | None = Field(
        None, description="volatility_target: the annualised realised volatility"
    )
    observations: int | None = Field(None, description="the returns an estimate rests on")
    win_rate: float | None = Field(None, description="kelly: p")
    payoff_ratio: float | None = Field(None, description="kelly: b (None when infinite)")


class AssetWeight(BaseModel):
    symbol: str
    weight: float
    risk_contribution: float = Field(description="share of the portfolio's variance")
    volatility: float = Field(description="annualised")
    expected_return: float | None = Field(description="annualised, when expected returns count")
    price: float = Field(description="the last close")
    quantity: float | None = Field(description="units at the last close, given an equity")
    notional: float | None


class PortfolioWeights(BaseModel):
    method: str
    weights: list[AssetWeight]
    volatility: float = Field(description="the portfolio's annualised volatility")
    expected_return: float | None = Field(description="annualised, when expected returns count")
    shrinkage: str
    observations: int = Field(description="bar returns (complete rows) the covariance rests on")
    periods_per_year: float
    start: datetime = Field(description="the first bar return used")
    end: datetime = Field(description="the last bar return used")
    source: str


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


def _unit_cost(req: _Sized) -> float:
    rb = Rebalancer(
        PortfolioConfig(),
        CommissionModel(bps=req.commission_bps),
        SlippageModel(bps=req.slippage_bps),
    )
    return rb.unit_cost(req.price, req.side)


def _sized(req: _Sized, raw: float, unit_cost: float, **extra: Any) -> PositionSize:
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
            got = await _returns_for(
                mgr, req.session_id, req.source, [req.symbol], req.lookback, ("body", "symbol")
            )
            series = got.frame[req.symbol].dropna()
            r = series.to_numpy(dtype=float)
            per_year = _per_year(series.index, req.periods_per_year)
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
    per_year = _per_year(frame.index, req.periods_per_year)
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
        got = await _returns_for(
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


class ProposedOrder(OrderFields):
    client_order_id: ClientOrderId | None = None


class AccountIn(Strict):
    cash: Money
    positions: dict[Symbol, SignedQuantity] = Field(default_factory=dict, max_length=1000)


class CheckLimitsRequest(Strict):
    model_config = examples(
        {
            "account": {"cash": 10000, "positions": {"A": 10}},
            "prices": {"A": 100, "B": 50},
            "limits": {"max_position_weight": 0.5},
            "orders": [
                {"symbol": "A", "side": "buy", "quantity": 40},
                {"symbol": "B", "side": "buy", "quantity": 200},
            ],
        },
        {
            "session_id": "s-0123456789ab",
            "orders": [{"symbol": "SYN", "side": "buy", "quantity": 10}],
        },
    )

    session_id: SessionId | None = Field(None, description="use this session's account, limits")
    account: AccountIn | None = Field(
        None, validate_default=True, description="required without session_id"
    )
    orders: list[ProposedOrder] = Field(min_length=1, max_length=500)
    prices: dict[Symbol, Price] = Field(
        default_factory=dict, max_length=1000, description="a session's last closes by default"
    )
    limits: LimitsIn | None = Field(None, description="the session's or the default limits")

    @field_validator("account")
    @classmethod
    def _account_or_session(cls, v: AccountIn | None, info: ValidationInfo) -> AccountIn | None:
        if v is None and "session_id" in info.data and info.data["session_id"] is None:
            raise ValueError("give an account, or a session_id to use its account")
        return v


class CheckedOrder(BaseModel):
    client_order_id: str
    symbol: str
    side: Side
    quantity: float
    passed: bool
    reason: str | None


class LimitsCheck(BaseModel):
    limits: RiskLimits
    equity: float
    gross_exposure: float
    passed: int
    refused: int
    orders: list[CheckedOrder]


@router.post("/check-limits", response_model=LimitsCheck)
async def check_limits(req: CheckLimitsRequest, mgr: Manager) -> LimitsCheck:
    """Pre-trade limits (position weight, exposures, shorting, a price, and the optional limits
    that are set) over orders, in order: each passing order counts toward the next one's
    exposure. With a session the session's state counts too: its open orders, recent orders,
    the day's start, recent returns and a kill-switch halt. Nothing is sent."""
    context: RiskContext | None = None
    ts = datetime.now(UTC)
    if req.session_id is not None:
        held = await control.portfolio(mgr, req.session_id)
        config = await control.session_config(mgr, req.session_id)
        limits = req.limits or config.portfolio.limits
        prices = {**held.last_close, **req.prices}
        marks = {h.symbol: prices.get(h.symbol, held.mark(h)) for h in held.holdings}
        value = sum(h.quantity * marks[h.symbol] for h in held.holdings)
        gross = sum(abs(h.quantity * marks[h.symbol]) for h in held.holdings)
        positions = {h.symbol: h.quantity for h in held.holdings}
        account = AccountView(held.cash, held.cash + value, positions, gross)
        run = mgr.runs.get(req.session_id)
        if run is not None and run.last_bar in run.equity:
            ts = run.equity[run.last_bar][0]  # the session's clock
            context = run.risk_context(ts)
    else:
        assert req.account is not None
        limits = req.limits or RiskLimits()
        prices = dict(req.prices)
        value = gross = 0.0
        for symbol, qty in req.account.positions.items():
            if symbol in prices:
                value += qty * prices[symbol]
                gross += abs(qty) * prices[symbol]
        account = AccountView(
            req.account.cash, req.account.cash + value, dict(req.account.positions), gross
        )
    orders = [
        Order(
            client_order_id=o.client_order_id or f"check-{i + 1}",
            symbol=o.symbol,
            side=o.side,
            quantity=o.quantity,
            ts=ts,
            type=o.type,
            limit_price=o.limit_price,
            stop_price=o.stop_price,
            time_in_force=o.time_in_force,
        )
        for i, o in enumerate(req.orders)
    ]
    passed, refused = PreTradeRisk(limits).check(orders, account, prices, context)
    why = {id(o): reason for o, reason in refused}
    return LimitsCheck(
        limits=limits,
        equity=account.equity,
        gross_exposure=account.gross_exposure,
        passed=len(passed),
        refused=len(refused),
        orders=[
            CheckedOrder(
                client_order_id=o.client_order_id,
                symbol=o.symbol,
                side=o.side,
                quantity=o.quantity,
                passed=id(o) not in why,
                reason=why.get(id(o)),
            )
            for o in orders
        ],
    )


# ---- a session's portfolio risk -----------------------------------------------------------


class PositionRisk(BaseModel):
    symbol: str
    quantity: float
    price: float
    market_value: float
    weight: float | None


class ValueAtRisk(BaseModel):
    confidence: float
    horizon_bars: int
    observations: int = Field(description="bar returns the estimate rests on")
    var: float = Field(description="loss not exceeded with `confidence`, a fraction of equity")
    var_amount: float
    expected_shortfall: float = Field(description="mean loss beyond the VaR, a fraction")
    expected_shortfall_amount: float


class RiskMeasureOut(BaseModel):
    method: VarMethod
    confidence: float
    var: float = Field(
        description="loss (currency) not exceeded with `confidence` over the horizon; negative"
        " when even that quantile is a gain"
    )
    es: float = Field(description="expected shortfall: the mean loss at or beyond the VaR")


class RiskProfileOut(BaseModel):
    name: str = Field(description="a symbol, or 'portfolio'")
    value: float = Field(description="market value; the portfolio's: the net of its positions")
    measures: list[RiskMeasureOut]


class ReturnsUsed(BaseModel):
    source: str
    start: datetime | None = Field(description="the first bar return used")
    end: datetime | None = Field(description="the last bar return used")
    bars: int = Field(description="bar returns (rows) used")


class PositionsRisk(BaseModel):
    """VaR and ES of each position on its own and of the portfolio (with diversification)."""

    horizon_bars: int
    confidence_levels: list[float]
    methods: list[VarMethod]
    observations: int = Field(description="complete h-bar windows of the historical estimates")
    bars: int = Field(description="complete bar returns of the parametric moments")
    portfolio: RiskProfileOut
    positions: list[RiskProfileOut] = Field(description="standalone: they do not add up")


class PortfolioRisk(BaseModel):
    session_id: str
    as_of: datetime | None
    equity: float
    cash: float
    gross_exposure: float
    net_exposure: float
    leverage: float | None = Field(description="gross exposure / equity")
    net_leverage: float | None
    largest_weight: float | None
    limits: RiskLimits
    positions: list[PositionRisk]
    var: ValueAtRisk | None = Field(
        description="one-bar historical VaR of the equity curve at the first confidence level;"
        " None until the session has enough bars"
    )
    value_at_risk: PositionsRisk | None = Field(
        description="VaR/ES of today's positions from their symbols' recent returns; None (with"
        " `note`) without positions or enough returns"
    )
    returns: ReturnsUsed | None = Field(description="the returns `value_at_risk` rests on")
    note: str | None = Field(description="why `value_at_risk` is None")


def equity_var(
    equity: pd.Series, confidence: float, window: int
) -> tuple[float, float, int] | None:
    """One-bar historical VaR and expected shortfall (fractions, at least 0) of the last
    ``window`` returns of an equity curve; None with fewer than ``MIN_RETURNS`` of them."""
    values = equity.to_numpy(dtype=float)
    if len(values) < 2:
        return None
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = values[1:] / values[:-1] - 1.0
    returns = returns[np.isfinite(returns)][-window:]
    if len(returns) < MIN_RETURNS:
        return None
    v = historical_var_es(returns, confidence)
    return max(v.var, 0.0), max(v.es, 0.0), len(returns)


def _finite(value: Any) -> bool:
    """No NaN or infinity anywhere in a dumped model (JSON has no place for them)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def _exposures(held: control.Portfolio) -> dict[str, float]:
    """Signed market value of each open position."""
    return {h.symbol: h.quantity * held.mark(h) for h in held.holdings if h.quantity != 0}


def _position_rows(held: control.Portfolio) -> list[PositionRisk]:
    equity = held.equity
    rows = []
    for h in held.holdings:
        price = held.mark(h)
        value = h.quantity * price
        rows.append(
            PositionRisk(
                symbol=h.symbol,
                quantity=h.quantity,
                price=price,
                market_value=value,
                weight=value / equity if equity > 0 else None,
            )
        )
    return rows


def _used(frame: pd.DataFrame, source: str) -> ReturnsUsed:
    index = frame.index
    return ReturnsUsed(
        source=source,
        start=index[0] if len(index) else None,
        end=index[-1] if len(index) else None,
        bars=len(index),
    )


def _held_returns(
    returns: Returns, exposures: Mapping[str, float]
) -> tuple[pd.DataFrame | None, str | None]:
    """The returns of the held symbols, or why there are none."""
    if not exposures:
        return None, "no open positions: nothing is at risk"
    missing = [s for s in exposures if s not in returns.frame.columns]
    if missing:
        return None, f"no returns of {', '.join(missing)} in {returns.source}"
    return returns.frame[list(exposures)], None


def _positions_risk(
    frame: pd.DataFrame,
    exposures: Mapping[str, float],
    levels: tuple[float, ...],
    methods: tuple[VarMethod, ...],
    horizon: int,
) -> tuple[PositionsRisk | None, str | None]:
    with np.errstate(all="ignore"):
        try:
            report = var_report(frame, dict(exposures), levels, horizon, methods)
        except ValueError as exc:
            return None, f"no estimate: {exc}"
    short = report.bars < MIN_RETURNS or (
        "historical" in methods and report.observations < MIN_RETURNS
    )
    if short:
        return None, (
            f"too few complete returns: {report.bars} bars, {report.observations} windows of"
            f" {horizon} bars; need {MIN_RETURNS}"
        )

    def profile(p: Any) -> RiskProfileOut:
        return RiskProfileOut(
            name=p.name,
            value=p.value,
            measures=[
                RiskMeasureOut(method=m.method, confidence=m.confidence, var=m.var, es=m.es)
                for m in p.measures
            ],
        )

    out = PositionsRisk(
        horizon_bars=horizon,
        confidence_levels=list(levels),
        methods=list(methods),
        observations=report.observations,
        bars=report.bars,
        portfolio=profile(report.portfolio),
        positions=[profile(p) for p in report.positions],
    )
    if not _finite(out.model_dump()):
        return None, "the estimates overflow"
    return out, None


Confidence = Annotated[float, Field(ge=0.5, le=0.999)]


@router.get("/portfolio-risk", response_model=PortfolioRisk)
async def portfolio_risk(
    mgr: Manager,
    session_id: SessionQuery,
    confidence: Annotated[
        list[Confidence] | None,
        Query(max_length=5, description="VaR levels, repeatable; default 0.95 and 0.99"),
    ] = None,
    window: Annotated[int, Query(ge=MIN_RETURNS, le=1_000_000, description="bar returns")] = 250,
    horizon: Annotated[int, Query(ge=1, le=250, description="bars the VaR spans")] = 1,
    method: Annotated[
        list[VarMethod] | None,
        Query(max_length=3, description="historical, gaussian, cornish_fisher; default all"),
    ] = None,
) -> PortfolioRisk:
    """Exposures and position weights; VaR and expected shortfall of today's positions, each
    on its own and together, over `horizon` bars, from the last `window` returns of their
    symbols (a replayed session's data up to its last bar), by each `method` at each level;
    and the one-bar historical VaR of the session's equity curve at the first level (`var`).

    `historical` takes the overlapping h-bar windows of compounded returns; `gaussian` and
    `cornish_fisher` (skewness and kurtosis) scale the one-bar moments to h bars.
    """
    levels = tuple(dict.fromkeys(confidence or (0.95, 0.99)))
    methods: tuple[VarMethod, ...] = tuple(dict.fromkeys(method or METHODS))
    if window - horizon + 1 < MIN_RETURNS:
        raise field_error(
            ("query", "horizon"),
            f"{window} returns hold {max(window - horizon + 1, 0)} windows of {horizon} bars;"
            f" need {MIN_RETURNS} (a longer window or a shorter horizon)",
        )
    held = await control.portfolio(mgr, session_id)
    config = await control.session_config(mgr, session_id)
    equity = held.equity
    rows = _position_rows(held)
    weights = [abs(r.weight) for r in rows if r.weight is not None]
    estimate = equity_var(mgr.equity_series(session_id), levels[0], window)
    var = None
    if estimate is not None:
        v, es, n = estimate
        var = ValueAtRisk(
            confidence=levels[0],
            horizon_bars=1,
            observations=n,
            var=v,
            var_amount=v * max(equity, 0.0),
            expected_shortfall=es,
            expected_shortfall_amount=es * max(equity, 0.0),
        )
    exposures = _exposures(held)
    returns = await session_returns(mgr, session_id, window, ("query", "window"), list(exposures))
    frame, note = _held_returns(returns, exposures)
    report = used = None
    if frame is not None:
        _check_work(
            len(frame) * horizon * len(exposures),
            ("query", "horizon"),
            f"{len(frame)} returns x {horizon} bars x {len(exposures)} positions",
        )
        used = _used(frame, returns.source)
        report, note = await asyncio.to_thread(
            _positions_risk, frame, exposures, levels, methods, horizon
        )
    return PortfolioRisk(
        session_id=session_id,
        as_of=held.as_of,
        equity=equity,
        cash=held.cash,
        gross_exposure=held.gross_exposure,
        net_exposure=held.market_value,
        leverage=held.gross_exposure / equity if equity > 0 else None,
        net_leverage=held.market_value / equity if equity > 0 else None,
        largest_weight=max(weights) if weights else None,
        limits=config.portfolio.limits,
        positions=rows,
        var=var,
        value_at_risk=report,
        returns=used,
        note=note,
    )


# ---- stress tests ---------------------------------------------------------------------------


class PnLSummary(BaseModel):
    """PnL samples (currency): count, mean, std, quantiles, VaR/ES at 95% and 99% (losses)."""

    n: int
    mean: float
    std: float
    q01: float
    q05: float
    q50: float
    q95: float
    q99: float
    var95: float
    es95: float
    var99: float
    es99: float


def _summary(samples: npt.ArrayLike) -> PnLSummary:
    d = PnLDistribution.from_samples(samples)
    return PnLSummary(
        n=d.n,
        mean=d.mean,
        std=d.std,
        q01=d.q01,
        q05=d.q05,
        q50=d.q50,
        q95=d.q95,
        q99=d.q99,
        var95=d.var95,
        es95=d.es95,
        var99=d.var99,
        es99=d.es99,
    )


class ScenarioOut(BaseModel):
    rank: int = Field(description="1 = the worst")
    start: datetime | None = Field(description="the window's first bar return")
    end: datetime | None = Field(description="its last: the loss runs to this bar's close")
    pnl: float
    position_pnl: dict[str, float]


class HistoricalStress(BaseModel):
    """Every complete h-bar window of the returns replayed on today's positions."""

    windows: int
    distribution: PnLSummary
    worst: list[ScenarioOut] = Field(description="the worst windows that share no bar")


class MonteCarloStress(BaseModel):
    method: Literal["bootstrap", "normal"]
    paths: int
    seed: int = Field(description="the same seed gives the same paths")
    distribution: PnLSummary
    positions: dict[str, PnLSummary] = Field(description="each position's simulated PnL")


class ShockOut(BaseModel):
    shock: float = Field(description="the factor's return")
    pnl: float
    position_pnl: dict[str, float]


class FactorStress(BaseModel):
    """Single-factor shocks: PnL = sum of position x beta x shock (OLS betas on bar returns)."""

    factor: str = Field(description="a symbol, or 'basket'")
    basket: list[str] = Field(description="the basket's symbols (equal weights)")
    betas: dict[str, float | None] = Field(description="None: no estimate (counted as 0)")
    shocks: list[ShockOut]
    history: PnLSummary | None = Field(
        description="the factor's own h-bar moves over the returns taken as shocks"
    )


class StressTest(BaseModel):
    session_id: str
    as_of: datetime | None
    equity: float
    horizon_bars: int
    positions: list[PositionRisk]
    returns: ReturnsUsed
    historical: HistoricalStress | None
    monte_carlo: MonteCarloStress | None
    factor: FactorStress | None
    notes: list[str] = Field(description="why a part is None")


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
    if isinstance(out, BaseModel) and not _finite(out.model_dump()):
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
    exposures = _exposures(held)
    # The basket takes every symbol; a factor symbol, only itself and the held ones.
    wanted: list[str] | None = list(dict.fromkeys([*exposures, factor])) if factor else None
    if not exposures and factor is None:
        wanted = []  # nothing is at risk: no returns needed
    returns = await session_returns(mgr, session_id, window, ("query", "window"), wanted)
    if factor is not None and factor not in returns.frame.columns:
        raise field_error(("query", "factor"), f"{factor!r} is not in the session's data")
    n = len(exposures)
    rows = len(returns.frame)
    _check_work(rows * horizon * n, ("query", "window"), f"{rows} returns x {horizon} bars x {n}")
    _check_work(
        paths * horizon * max(n, 1), ("query", "paths"), f"{paths} paths x {horizon} bars x {n}"
    )
    if simulation == "normal":
        _check_work(horizon * n**3 / 100, ("query", "simulation"), f"normal draws of {n} assets")
    frame, note = _held_returns(returns, exposures)
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
        positions=_position_rows(held),
        returns=_used(returns.frame, returns.source),
        historical=historical,
        monte_carlo=simulated,
        factor=shocked,
        notes=notes,
    )
