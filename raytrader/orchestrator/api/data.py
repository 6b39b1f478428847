"""Market data: one symbol's bars, or several at once, from the bundled data sets."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from raytrader.data.resample import resample_ohlcv
from raytrader.data.spec import DataSpec
from raytrader.orchestrator.api.common import (
    SYMBOL_PATTERN,
    Strict,
    Symbol,
    Timeframe,
    UtcTime,
    examples,
    field_error,
)
from raytrader.orchestrator.api.deps import ERRORS

router = APIRouter(prefix="/api/v1/data", tags=["data"], responses=ERRORS)

Source = Literal["universe_daily", "btc_1h"]
MAX_LIMIT = 10_000


@lru_cache(maxsize=4)
def bundled_frames(source: Source) -> Mapping[str, pd.DataFrame]:
    """Every symbol of a bundled set (read once per process; callers must not mutate)."""
    return DataSpec(bundled=source).frames()


def select(
    source: Source,
    symbol: str,
    start: datetime | None,
    end: datetime | None,
    timeframe: str | None,
    loc: tuple[str | int, ...],
) -> pd.DataFrame:
    """One symbol's bars in ``[start, end)``, aggregated to ``timeframe``; 422s name ``loc``."""
    frames = bundled_frames(source)
    frame = frames.get(symbol)
    if frame is None:
        raise KeyError(symbol)
    if start is not None:
        frame = frame[frame.index >= pd.Timestamp(start)]
    if end is not None:
        frame = frame[frame.index < pd.Timestamp(end)]
    if timeframe is not None and len(frame) > 0:
        try:
            # On naive UTC times: pandas ignores the epoch origin of multi-day bins on a
            # tz-aware index (with a RuntimeWarning); the result comes back tz-aware UTC.
            frame = resample_ohlcv(frame.tz_localize(None), timeframe, _source_timeframe(source))
        except ValueError as exc:
            raise field_error((*loc, "timeframe"), str(exc)) from None
    return frame


def _source_timeframe(source: Source) -> str:
    return "1h" if source == "btc_1h" else "1d"


class BarOut(BaseModel):
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float


class SeriesOut(BaseModel):
    symbol: str
    source: str
    timeframe: str
    count: int = Field(description="bars returned")
    total: int = Field(description="bars in the selected range before ``limit``")
    bars: list[BarOut]


def bars_of(frame: pd.DataFrame, limit: int) -> list[BarOut]:
    """The last ``limit`` bars of ``frame``."""
    tail = frame.iloc[-limit:]
    return [
        BarOut(ts=ts.to_pydatetime(), open=o, high=h, low=lo, close=c, volume=v)
        for ts, o, h, lo, c, v in zip(
            tail.index,
            tail["open"].to_numpy(dtype=float),
            tail["high"].to_numpy(dtype=float),
            tail["low"].to_numpy(dtype=float),
            tail["close"].to_numpy(dtype=float),
            tail["volume"].to_numpy(dtype=float),
            strict=True,
        )
    ]


def _series(
    source: Source,
    symbol: str,
    start: datetime | None,
    end: datetime | None,
    timeframe: str | None,
    limit: int,
    loc: tuple[str | int, ...],
) -> SeriesOut:
    frame = select(source, symbol, start, end, timeframe, loc)
    return SeriesOut(
        symbol=symbol,
        source=source,
        timeframe=timeframe or _source_timeframe(source),
        count=min(limit, len(frame)),
        total=len(frame),
        bars=bars_of(frame, limit),
    )


def _check_range(start: datetime | None, end: datetime | None, loc: tuple[str, ...]) -> None:
    if start is not None and end is not None and end <= start:
        raise field_error((*loc, "end"), "end must be after start")


@router.get("/stock/{symbol:path}", response_model=SeriesOut)
async def stock(
    symbol: Annotated[
        str,
        Path(
            pattern=SYMBOL_PATTERN,
            description="e.g. S01, INDEX; BTC/USDT in btc_1h",
            examples=["S01"],
        ),
    ],
    source: Annotated[Source, Query(description="bundled data set")] = "universe_daily",
    start: Annotated[UtcTime | None, Query(description="first bar at or after")] = None,
    end: Annotated[UtcTime | None, Query(description="bars before")] = None,
    timeframe: Annotated[Timeframe | None, Query(description="aggregate to, e.g. 1w")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="the latest this many")] = 500,
) -> SeriesOut:
    """OHLCV bars of one symbol, the latest ``limit`` of the range (404 unknown symbol)."""
    _check_range(start, end, ("query",))
    try:
        return await asyncio.to_thread(
            _series, source, symbol, start, end, timeframe, limit, ("query",)
        )
    except KeyError:
        have = sorted(bundled_frames(source))
        raise HTTPException(
            404, f"unknown symbol {symbol!r} in {source} (have {', '.join(have)})"
        ) from None


class BatchRequest(Strict):
    model_config = examples(
        {"symbols": ["S01", "INDEX"], "start": "2023-01-01", "timeframe": "1w", "limit": 20}
    )

    symbols: list[Symbol] = Field(min_length=1, max_length=50)
    source: Source = "universe_daily"
    start: UtcTime | None = None
    end: UtcTime | None = None
    timeframe: Timeframe | None = None
    limit: int = Field(500, ge=1, le=MAX_LIMIT, description="the latest this many per symbol")


class BatchOut(BaseModel):
    source: str
    data: dict[str, SeriesOut]
    missing: list[str] = Field(description="requested symbols the data set does not hold")


@router.post("/batch", response_model=BatchOut)
async def batch(req: BatchRequest) -> BatchOut:
    """Bars of several symbols at once; unknown symbols are listed in ``missing``."""
    _check_range(req.start, req.end, ("body",))
    if len(req.symbols) * req.limit > 100_000:
        raise field_error(("body", "limit"), "symbols x limit must stay within 100000 bars")

    def run() -> BatchOut:
        frames = bundled_frames(req.source)
        data: dict[str, SeriesOut] = {}
        missing: list[str] = []
        for symbol in dict.fromkeys(req.symbols):
            if symbol not in frames:
                missing.append(symbol)
                continue
            data[symbol] = _series(
                req.source, symbol, req.start, req.end, req.timeframe, req.limit, ("body",)
            )
        return BatchOut(source=req.source, data=data, missing=missing)

    return await asyncio.to_thread(run)
