"""Types and helpers the routers share: validated ids, symbols, prices, and field errors."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic.config import JsonDict

from raytrader.domain import OrderType, Side, TimeInForce
from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.orchestrator.api.deps import ERRORS
from raytrader.portfolio.config import PortfolioConfig
from raytrader.risk.limits import RiskLimits
from raytrader.risk.sizing import SizingConfig

SESSION_ID_PATTERN = r"^s-[0-9a-f]{12}$"
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/:^-]{0,31}$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Client order ids: no blanks or braces (they end up in store keys).
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# Earliest and latest timestamps a request may name (pandas holds 1677..2262).
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)

SESSION_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    503: {"description": "The session is reloading after a component failure; retry"},
}


_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, strict=True)


class Strict(BaseModel):
    """Base of request bodies: unknown keys refused, no NaN or infinities, and no coercion
    (``true`` is no number, ``"1"`` no integer, ``0`` no timestamp)."""

    model_config = _STRICT


def examples(*values: JsonDict) -> ConfigDict:
    """Config adding request examples to a model's schema (the docs show them)."""
    return ConfigDict(json_schema_extra={"examples": list(values)})


def _time_text(value: Any) -> Any:
    # Only ISO-8601 text: pydantic would also read numbers (and "0.5") as Unix times.
    if isinstance(value, datetime) or (isinstance(value, str) and _ISO_DATE.match(value)):
        return value
    raise ValueError("give an ISO-8601 timestamp, e.g. 2024-01-31 or 2024-01-31T09:30:00Z")


def _utc(value: datetime) -> datetime:
    try:
        ts = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp must lie between 1970-01-01 and 2200-01-01") from None
    if not _EARLIEST <= ts <= _LATEST:
        raise ValueError("timestamp must lie between 1970-01-01 and 2200-01-01")
    return ts


SessionId = Annotated[str, Field(pattern=SESSION_ID_PATTERN, description="a session id")]
SessionQuery = Annotated[str, Query(pattern=SESSION_ID_PATTERN, description="a session id")]
Symbol = Annotated[
    str, Field(pattern=SYMBOL_PATTERN, description="an instrument symbol, e.g. S01 or BTC/USDT")
]
ClientOrderId = Annotated[
    str,
    Field(
        pattern=CLIENT_ORDER_ID_PATTERN,
        description="the client's id for the order; sending it again returns the same order",
    ),
]
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="a name: letters, digits, _ . -")]
UtcTime = Annotated[
    datetime,
    BeforeValidator(_time_text),
    AfterValidator(_utc),
    Field(strict=False, description="ISO-8601; naive times are read as UTC; 1970..2200"),
]
# Enums arrive as their JSON strings (strict mode takes only enum members).
SideIn = Annotated[Side, Field(strict=False)]
# Trailing stops need trail fields these requests do not carry: not accepted here.
OrderTypeIn = Annotated[
    Literal[OrderType.MARKET, OrderType.LIMIT, OrderType.STOP, OrderType.STOP_LIMIT],
    BeforeValidator(lambda v: OrderType(v) if v in OrderType._value2member_map_ else v),
]
TimeInForceIn = Annotated[TimeInForce, Field(strict=False)]
Price = Annotated[float, Field(ge=1e-8, le=1e9, description="a price")]
Quantity = Annotated[float, Field(gt=0, le=1e12, description="units, positive")]
SignedQuantity = Annotated[float, Field(ge=-1e12, le=1e12, description="signed units")]
Money = Annotated[float, Field(ge=-1e13, le=1e13, description="an amount of account currency")]
Timeframe = Annotated[
    str,
    Field(
        pattern=r"^[1-9][0-9]{0,3}(s|m|h|d|w|min|D|H)$",
        description="bar length to aggregate to, e.g. 1h, 4h, 1d, 1w",
    ),
]


def field_error(loc: Sequence[str | int], message: str) -> RequestValidationError:
    """A 422 naming the field at ``loc`` (e.g. ``("body", "symbol")``), as FastAPI's own."""
    return RequestValidationError([{"loc": tuple(loc), "msg": message, "type": "value_error"}])


def finite(value: float) -> float | None:
    """``value``, or None where it is NaN or infinite (JSON has no place for them)."""
    return value if math.isfinite(value) else None


def check_lot(value: float) -> float:
    if 0 < value < 1e-9:
        raise ValueError("a lot size is 0 (any quantity) or at least 1e-9")
    return value


# The core's configs, strict at the API's edge (same fields, bounds and defaults).


class LimitsIn(RiskLimits):
    model_config = _STRICT


class SizingIn(SizingConfig):
    model_config = _STRICT


class PortfolioIn(PortfolioConfig):
    model_config = _STRICT

    lot_size: float = Field(1.0, ge=0, le=1e9, description="order quantity step; 0 = fractional")
    sizing: SizingIn = SizingIn()
    limits: LimitsIn = LimitsIn()

    _lot_size = field_validator("lot_size")(check_lot)


class CommissionIn(CommissionModel):
    model_config = _STRICT

    bps: float = Field(0.0, ge=0, le=10_000, description="of the notional")
    minimum: float = Field(0.0, ge=0, le=1e9, description="per fill")


class SlippageIn(SlippageModel):
    model_config = _STRICT


class BrokerIn(PaperBrokerConfig):
    model_config = _STRICT

    commission: CommissionIn = Field(default_factory=CommissionIn)
    slippage: SlippageIn = Field(default_factory=SlippageIn)
    lot_size: float = Field(0.0, ge=0, le=1e9, description="0 = any quantity")

    _lot_size = field_validator("lot_size")(check_lot)


class JobProgress(BaseModel):
    """A training job's progress: ``done`` of ``total`` ``unit`` (fits, timesteps)."""

    done: int
    total: int
    unit: str
