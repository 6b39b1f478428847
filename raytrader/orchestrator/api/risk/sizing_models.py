"""Request and response models of POST /api/risk/calculate-position-size: one request model
per `method`, discriminated by it, with errors located at the field."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

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

from raytrader.domain import Side
from raytrader.orchestrator.api.common import (
    LimitsIn,
    Price,
    SessionId,
    SideIn,
    Strict,
    Symbol,
    check_lot,
    examples,
)
from raytrader.orchestrator.api.data import Source
from raytrader.orchestrator.api.risk.returns import MIN_RETURNS

Ratio = Annotated[float, Field(ge=-1, le=100, description="a simple return, e.g. -0.02")]
BarCount = Annotated[int, Field(ge=2, le=10_000, description="bar returns to estimate from")]
Annual = Annotated[float, Field(gt=0, le=1e6, description="bars per year; inferred if omitted")]


class SizedRequest(Strict):
    """What every single-instrument method takes."""

    equity: float = Field(gt=0, le=1e13, description="account equity")
    price: Price
    side: SideIn = Side.BUY
    lot_size: float = Field(0.0, ge=0, le=1e6, description="round down to lots; 0 = any")
    commission_bps: float = Field(0.0, ge=0, le=1000)
    slippage_bps: float = Field(0.0, ge=0, le=1000)
    limits: LimitsIn | None = Field(None, description="clip to these per-position limits")

    _lot_size = field_validator("lot_size")(check_lot)


class FixedFractionalSize(SizedRequest):
    """Units worth ``fraction`` of equity, fees included."""

    model_config = examples(
        {"equity": 100000, "price": 50, "fraction": 0.1, "commission_bps": 10, "lot_size": 1}
    )

    method: Literal["fixed_fractional"] = "fixed_fractional"
    fraction: float = Field(0.1, gt=0, le=10, description="share of equity")


class AtrRiskSize(SizedRequest):
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


class VolTargetSize(SizedRequest):
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


class KellySize(SizedRequest):
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
