"""Strategies: agents' parameter schemas, named configurations, and signals over data."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Path
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import to_jsonable_python

from raytrader.agents import registry
from raytrader.agents.base import Agent, AgentParams
from raytrader.backtesting.engine import BacktestEngine
from raytrader.data.loaders import DataValidationError, validate_ohlcv
from raytrader.data.market_data import MarketData
from raytrader.domain.codec import to_dict
from raytrader.orchestrator.api.common import (
    NAME_PATTERN,
    Name,
    PortfolioIn,
    Price,
    Strict,
    Symbol,
    Timeframe,
    UtcTime,
    examples,
    field_error,
    finite,
)
from raytrader.orchestrator.api.data import Source, bundled_frames, select
from raytrader.orchestrator.api.deps import ERRORS, Manager

router = APIRouter(prefix="/api/v1/strategy", tags=["strategy"], responses=ERRORS)

CONFIGS = "strategy_config"
MAX_CELLS = 200_000  # bars x symbols one signal run may read

AgentName = Annotated[
    str, Path(pattern=NAME_PATTERN, description="a registered agent", examples=["sma_cross"])
]
ConfigName = Annotated[
    str, Path(pattern=NAME_PATTERN, description="a stored configuration", examples=["fast-sma"])
]


def agent_class(name: str, loc: tuple[str | int, ...] | None = None) -> type[Agent]:
    """The agent registered as ``name``: 404 for a path id, 422 naming ``loc`` in a body."""
    try:
        return registry.get(name)
    except registry.UnknownAgentError as exc:
        if loc is not None:
            raise field_error(loc, str(exc)) from None
        raise HTTPException(404, str(exc)) from None


def validate_params(
    cls: type[Agent], params: dict[str, Any], loc: tuple[str | int, ...]
) -> AgentParams:
    """The agent's parameters, or a 422 naming each bad field under ``loc``."""
    try:
        return cls.Params.model_validate(params)
    except ValidationError as exc:
        raise RequestValidationError(
            [
                {
                    "loc": (*loc, *err["loc"]),
                    "msg": err["msg"].removeprefix("Value error, "),
                    "type": err["type"],
                }
                for err in exc.errors()
            ]
        ) from None


def _summary(cls: type[Agent]) -> str:
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


class StrategyInfo(BaseModel):
    name: str
    description: str
    vectorizable: bool


class StrategyParameters(BaseModel):
    name: str
    description: str
    parameters_schema: dict[str, Any] = Field(description="JSON schema of the parameters")
    defaults: dict[str, Any] = Field(description="every parameter that has a default")


@router.get("/strategies", response_model=list[StrategyInfo])
async def strategies() -> list[StrategyInfo]:
    """The registered agents (built-ins and plug-ins)."""
    out = []
    for name in registry.available():
        cls = registry.get(name)
        out.append(
            StrategyInfo(name=name, description=_summary(cls), vectorizable=cls.vectorizable)
        )
    return out


@router.get("/strategy_parameters/{name}", response_model=StrategyParameters)
async def strategy_parameters(name: AgentName) -> StrategyParameters:
    """An agent's parameter schema (bounds included) and its defaults (404 unknown agent)."""
    cls = agent_class(name)
    defaults = {
        key: to_jsonable_python(f.get_default(call_default_factory=True))
        for key, f in cls.Params.model_fields.items()
        if not f.is_required()
    }
    return StrategyParameters(
        name=name,
        description=_summary(cls),
        parameters_schema=cls.Params.model_json_schema(),
        defaults=defaults,
    )


class ConfigureRequest(Strict):
    model_config = examples({"config_name": "fast-sma", "params": {"fast": 5, "slow": 20}})

    config_name: Name | None = Field(None, description="stored under this name; the agent's")
    params: dict[str, Any] = Field(default_factory=dict, max_length=100)
    description: str = Field("", max_length=500)


class StrategyConfig(BaseModel):
    config_name: str
    agent: str
    params: dict[str, Any] = Field(description="every parameter, defaults filled in")
    description: str
    created: datetime
    updated: datetime


@router.post("/configure_strategy/{name}", response_model=StrategyConfig)
async def configure_strategy(
    name: AgentName, req: ConfigureRequest, mgr: Manager
) -> StrategyConfig:
    """Validate an agent's parameters and store them as a named configuration."""
    cls = agent_class(name)
    params = validate_params(cls, req.params, ("body", "params"))
    key = req.config_name or name
    now = datetime.now(UTC)
    stored = await mgr.c.state.get_record.remote(CONFIGS, key)
    config = StrategyConfig(
        config_name=key,
        agent=name,
        params=params.model_dump(mode="json"),
        description=req.description,
        created=stored["created"] if stored else now,
        updated=now,
    )
    await mgr.c.state.put_record.remote(CONFIGS, key, config.model_dump(mode="json"))
    return config


@router.get("/configurations", response_model=list[StrategyConfig])
async def configurations(mgr: Manager) -> list[StrategyConfig]:
    """Every stored strategy configuration, by name."""
    records = await mgr.c.state.list_records.remote(CONFIGS)
    return [StrategyConfig.model_validate(r) for r in records.values()]


@router.get("/configurations/{config_name}", response_model=StrategyConfig)
async def configuration(config_name: ConfigName, mgr: Manager) -> StrategyConfig:
    return await _stored(mgr, config_name)


async def _stored(mgr: Manager, config_name: str) -> StrategyConfig:
    record = await mgr.c.state.get_record.remote(CONFIGS, config_name)
    if record is None:
        raise HTTPException(404, f"no strategy configuration named {config_name!r}")
    return StrategyConfig.model_validate(record)


class AgentSpecIn(Strict):
    name: Name
    params: dict[str, Any] = Field(default_factory=dict, max_length=100)


class DataSelection(Strict):
    source: Source = "universe_daily"
    symbols: list[Symbol] | None = Field(None, min_length=1, max_length=50)
    start: UtcTime | None = None
    end: UtcTime | None = None
    timeframe: Timeframe | None = None
    max_bars: int = Field(2500, ge=10, le=20_000, description="the latest this many bars")


class BarIn(Strict):
    ts: UtcTime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: float = Field(0.0, ge=0, le=1e15)


class GenerateSignalsRequest(Strict):
    model_config = examples(
        {
            "agent": {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
            "data": {"symbols": ["S01", "S02"], "max_bars": 500},
            "limit": 20,
        },
        {"config_name": "fast-sma", "data": {"source": "btc_1h", "max_bars": 1000}},
    )

    agent: AgentSpecIn | None = Field(None, description="an agent and its parameters")
    config_name: Name | None = Field(
        None, validate_default=True, description="or a stored configuration"
    )
    data: DataSelection = DataSelection()
    bars: dict[Symbol, list[BarIn]] | None = Field(
        None,
        min_length=1,
        max_length=20,
        description="inline bars per symbol (at most 5000 each), instead of `data`",
    )
    initial_cash: float = Field(100_000.0, gt=0, le=1e12)
    portfolio: PortfolioIn = PortfolioIn()
    limit: int = Field(100, ge=1, le=1000, description="the latest this many signals")

    @field_validator("config_name")
    @classmethod
    def _one_agent(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "agent" not in info.data:  # the agent itself was invalid; that error is reported
            return v
        if (info.data["agent"] is None) == (v is None):
            raise ValueError("give exactly one of agent and config_name")
        return v

    @field_validator("bars")
    @classmethod
    def _bounded(cls, v: dict[str, list[BarIn]] | None) -> dict[str, list[BarIn]] | None:
        for symbol, rows in (v or {}).items():
            if not 1 <= len(rows) <= 5000:
                raise ValueError(f"{symbol}: give 1 to 5000 bars, got {len(rows)}")
        return v


class SignalOut(BaseModel):
    bar: int = Field(description="index of the bar whose close produced the signal")
    ts: datetime
    agent: str
    symbol: str
    direction: int
    weight: float | None
    quantity: float | None
    strength: float
    order_type: str
    limit_price: float | None
    stop_price: float | None
    time_in_force: str
    reason: str


class SignalsOut(BaseModel):
    agent: str
    params: dict[str, Any]
    symbols: list[str]
    bars: int
    start: datetime
    end: datetime
    total: int = Field(description="signals over the whole data")
    count: int = Field(description="signals returned (the latest)")
    signals: list[SignalOut]


def _inline(bars: dict[str, list[BarIn]]) -> MarketData:
    frames = {}
    for symbol, rows in bars.items():
        frame = pd.DataFrame(
            [r.model_dump() for r in rows], columns=["ts", "open", "high", "low", "close", "volume"]
        )
        try:
            frames[symbol] = validate_ohlcv(frame, symbol)
        except DataValidationError as exc:
            loc: tuple[str | int, ...] = ("body", "bars", symbol)
            raise field_error((*loc, exc.row) if exc.row is not None else loc, str(exc)) from None
    return MarketData.from_frames(frames)


def _bundled(sel: DataSelection) -> MarketData:
    frames = bundled_frames(sel.source)
    symbols = sel.symbols or list(frames)
    unknown = [s for s in symbols if s not in frames]
    if unknown:
        raise field_error(
            ("body", "data", "symbols"),
            f"{unknown} are not in {sel.source} (have {', '.join(sorted(frames))})",
        )
    loc = ("body", "data")
    picked = {
        s: select(sel.source, s, sel.start, sel.end, sel.timeframe, loc)
        for s in dict.fromkeys(symbols)
    }
    picked = {s: f.iloc[-sel.max_bars :] for s, f in picked.items() if len(f)}
    if not picked:
        raise field_error(loc, "no bars in the selected range")
    data = MarketData.from_frames(picked)
    if data.n_bars > sel.max_bars:
        data = data.slice(data.n_bars - sel.max_bars, data.n_bars)
    return data


def _run(agent: Agent, data: MarketData, req: GenerateSignalsRequest) -> SignalsOut:
    if data.n_bars * len(data.symbols) > MAX_CELLS:
        raise field_error(
            ("body", "data", "max_bars"),
            f"bars x symbols must stay within {MAX_CELLS} (got {data.n_bars} x "
            f"{len(data.symbols)})",
        )
    engine = BacktestEngine(req.initial_cash, portfolio=req.portfolio, run_id="signals")
    try:
        result = engine.run(data, [agent])
    except (ValueError, ArithmeticError, IndexError, KeyError) as exc:
        raise field_error(
            ("body",), f"agent {agent.name!r} cannot run on this data: {exc}"
        ) from None
    records = result.signals[-req.limit :]
    signals = []
    for r in records:
        d = to_dict(r.signal)
        signals.append(
            SignalOut(
                bar=r.bar,
                ts=r.signal.ts,
                agent=r.agent,
                symbol=r.signal.symbol,
                direction=r.signal.direction,
                weight=finite(d["weight"]) if d["weight"] is not None else None,
                quantity=finite(d["quantity"]) if d["quantity"] is not None else None,
                strength=r.signal.strength,
                order_type=d["order_type"],
                limit_price=d["limit_price"],
                stop_price=d["stop_price"],
                time_in_force=d["time_in_force"],
                reason=r.signal.reason,
            )
        )
    return SignalsOut(
        agent=agent.name,
        params=agent.params.model_dump(mode="json"),
        symbols=list(data.symbols),
        bars=data.n_bars,
        start=data.index[0].to_pydatetime(),
        end=data.index[-1].to_pydatetime(),
        total=len(result.signals),
        count=len(signals),
        signals=signals,
    )


@router.post("/generate_signals", response_model=SignalsOut)
async def generate_signals(req: GenerateSignalsRequest, mgr: Manager) -> SignalsOut:
    """Run an agent (or a stored configuration) over bundled or inline bars; its signals.

    The agent trades a paper account as in a backtest (signals may depend on holdings); the
    latest ``limit`` signals are returned.
    """
    if req.bars is not None and "data" in req.model_fields_set:
        raise field_error(("body", "bars"), "give data or bars, not both")
    if req.agent is not None:
        cls = agent_class(req.agent.name, ("body", "agent", "name"))
        params = validate_params(cls, req.agent.params, ("body", "agent", "params"))
    else:
        assert req.config_name is not None
        stored = await _stored(mgr, req.config_name)
        cls = agent_class(stored.agent)
        params = validate_params(cls, stored.params, ("body", "config_name"))

    def work() -> SignalsOut:
        data = _inline(req.bars) if req.bars is not None else _bundled(req.data)
        return _run(cls(params), data, req)

    return await asyncio.to_thread(work)
