"""Market regimes of one symbol: the current state, its confidence, the history of
transitions, and a classification with chosen settings.

- ``GET /api/regime/current/{symbol}``: each dimension's state and confidence at the last bar.
- ``GET /api/regime/confidence/{symbol}``: each dimension's probability of every state there.
- ``GET /api/regime/history/{symbol}``: each dimension's transitions (bar, from, to).
- ``POST /api/regime/classify``: per bar states and probabilities, with the classifier's
  settings in the body.

``method=rules`` (the default) gives two dimensions, ``trend`` (down / sideways / up) and
``volatility`` (low / normal / high), from data up to each bar. ``method=mixture`` fits a
Gaussian mixture on the selected bars and filters it forward (one dimension, ``volatility``
states ordered by volatility): descriptive, in sample. The bars come from a bundled data set,
aggregated to ``timeframe`` when given; a bar before the classifier's warm-up has no state
(null).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query
from pydantic import BaseModel, Field

from raytrader.ml.regime import (
    GaussianRegimeModel,
    RegimeModelConfig,
    RegimeResult,
    RuleRegimeClassifier,
    RuleRegimeConfig,
)
from raytrader.orchestrator.api.common import (
    _STRICT,
    SYMBOL_PATTERN,
    Timeframe,
    UtcTime,
    examples,
    field_error,
)
from raytrader.orchestrator.api.data import Source, bundled_frames
from raytrader.orchestrator.api.deps import ERRORS
from raytrader.orchestrator.api.ml import DataIn, load_frame

router = APIRouter(prefix="/api/regime", tags=["regime"], responses=ERRORS)

Method = Literal["rules", "mixture"]
MAX_BARS = 50_000
MAX_ROWS = 5_000


class RulesIn(RuleRegimeConfig):
    model_config = _STRICT


class MixtureIn(RegimeModelConfig):
    model_config = _STRICT

    seed: int = Field(0, ge=0, le=2**31 - 1)
    stay_prior: float = Field(20.0, ge=0, le=1e6)


class ClassifyRequest(DataIn):
    model_config = examples(
        {"symbol": "S01", "method": "rules", "rules": {"trend_window": 50}, "limit": 10}
    )

    method: Method = "rules"
    rules: RulesIn = Field(default_factory=RulesIn)
    mixture: MixtureIn = Field(default_factory=MixtureIn)
    limit: int = Field(200, ge=1, le=MAX_ROWS, description="the latest this many bars")


class StateOut(BaseModel):
    state: str | None = Field(description="the most probable state; null in the warm-up")
    confidence: float | None = Field(description="its probability")


class CurrentOut(BaseModel):
    symbol: str
    method: str
    ts: datetime | None = Field(description="the last bar classified")
    regimes: dict[str, StateOut] = Field(description="per dimension: trend, volatility")


class ConfidenceOut(BaseModel):
    symbol: str
    method: str
    ts: datetime | None
    probabilities: dict[str, dict[str, float | None]] = Field(
        description="per dimension, the probability of every state"
    )


class TransitionOut(BaseModel):
    ts: datetime
    bar: int
    from_state: str = Field(alias="from")
    to_state: str = Field(alias="to")
    confidence: float | None


class HistoryOut(BaseModel):
    symbol: str
    method: str
    bars: int
    transitions: dict[str, list[TransitionOut]]
    time_in_state: dict[str, dict[str, float]] = Field(
        description="per dimension, the share of classified bars spent in each state"
    )


class BarRegimeOut(BaseModel):
    ts: datetime
    regimes: dict[str, StateOut]
    probabilities: dict[str, dict[str, float | None]]


class ClassifyOut(BaseModel):
    symbol: str
    method: str
    count: int
    bars: list[BarRegimeOut]
    transitions: dict[str, list[TransitionOut]]


def _num(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def classify_frame(
    frame: pd.DataFrame,
    method: Method,
    rules: RuleRegimeConfig | None = None,
    mixture: RegimeModelConfig | None = None,
    loc: tuple[str | int, ...] = ("query",),
) -> dict[str, RegimeResult]:
    """Regimes per dimension of every bar of ``frame``."""
    if len(frame) > MAX_BARS:
        raise field_error((*loc, "start"), f"at most {MAX_BARS} bars per classification")
    if method == "rules":
        r = RuleRegimeClassifier(rules).classify(frame)
        return {"trend": r.trend, "volatility": r.volatility}
    try:
        model = GaussianRegimeModel(mixture).fit(frame)
    except ValueError as exc:  # too few bars for the mixture
        raise field_error((*loc, "method"), str(exc)) from None
    return {"volatility": model.filter(frame)}


def _state_at(res: RegimeResult, i: int) -> StateOut:
    label = res.label.iloc[i]
    conf = float(res.confidence.iloc[i])
    return StateOut(state=label if isinstance(label, str) else None, confidence=_num(conf))


def _proba_at(res: RegimeResult, i: int) -> dict[str, float | None]:
    return {str(s): _num(float(v)) for s, v in res.proba.iloc[i].items()}


def _transitions(res: RegimeResult, limit: int | None = None) -> list[TransitionOut]:
    rows = res.transitions()
    if limit is not None:
        rows = rows.iloc[-limit:]
    return [
        TransitionOut.model_validate(
            {
                "ts": pd.Timestamp(r["ts"]).to_pydatetime(),
                "bar": int(r["bar"]),
                "from": str(r["from"]),
                "to": str(r["to"]),
                "confidence": _num(float(r["confidence"])),
            }
        )
        for r in rows.to_dict(orient="records")
    ]


SymbolPath = Annotated[
    str, Path(pattern=SYMBOL_PATTERN, description="e.g. S01; BTC/USDT in btc_1h", examples=["S01"])
]
SourceQ = Annotated[Source, Query(description="bundled data set")]
MethodQ = Annotated[Method, Query(description="rules, or a Gaussian mixture fitted here")]
TimeframeQ = Annotated[Timeframe | None, Query(description="classify bars of, e.g. 1w")]
StartQ = Annotated[UtcTime | None, Query(description="first bar at or after")]
EndQ = Annotated[UtcTime | None, Query(description="bars before")]


@dataclass(frozen=True)
class Classified:
    """A symbol's bars and each dimension's regimes, as the GET routes' query selects."""

    symbol: str
    method: Method
    frame: pd.DataFrame
    regimes: dict[str, RegimeResult]

    @property
    def last_ts(self) -> datetime:
        ts: datetime = self.frame.index[-1].to_pydatetime()
        return ts


def _load(
    symbol: str,
    source: Source,
    start: datetime | None,
    end: datetime | None,
    timeframe: str | None,
    method: Method,
) -> Classified:
    if symbol not in bundled_frames(source):
        have = ", ".join(sorted(bundled_frames(source)))
        raise HTTPException(404, f"unknown symbol {symbol!r} in {source} (have {have})")
    data = DataIn.model_validate(
        {"symbol": symbol, "source": source, "start": start, "end": end, "timeframe": timeframe},
        strict=False,
    )
    frame = load_frame(data, ("query",))
    if len(frame) == 0:
        raise field_error(("query", "start"), "no bars in the selected range")
    return Classified(symbol, method, frame, classify_frame(frame, method))


async def _classified(
    symbol: SymbolPath,
    source: SourceQ = "universe_daily",
    method: MethodQ = "rules",
    timeframe: TimeframeQ = None,
    start: StartQ = None,
    end: EndQ = None,
) -> Classified:
    return await asyncio.to_thread(_load, symbol, source, start, end, timeframe, method)


ClassifiedQ = Annotated[Classified, Depends(_classified)]


@router.get("/current/{symbol:path}", response_model=CurrentOut)
async def current(c: ClassifiedQ) -> CurrentOut:
    """Each dimension's state and confidence at the symbol's last bar."""
    return CurrentOut(
        symbol=c.symbol,
        method=c.method,
        ts=c.last_ts,
        regimes={k: _state_at(r, -1) for k, r in c.regimes.items()},
    )


@router.get("/confidence/{symbol:path}", response_model=ConfidenceOut)
async def confidence(c: ClassifiedQ) -> ConfidenceOut:
    """Each dimension's probability of every state at the symbol's last bar."""
    return ConfidenceOut(
        symbol=c.symbol,
        method=c.method,
        ts=c.last_ts,
        probabilities={k: _proba_at(r, -1) for k, r in c.regimes.items()},
    )


@router.get("/history/{symbol:path}", response_model=HistoryOut)
async def history(
    c: ClassifiedQ,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="latest transitions")] = 100,
) -> HistoryOut:
    """Each dimension's latest transitions and the share of bars spent in each state."""
    shares: dict[str, dict[str, float]] = {}
    for k, r in c.regimes.items():
        counts = r.label.dropna().value_counts(normalize=True)
        shares[k] = {s: float(counts.get(s, 0.0)) for s in r.states}
    return HistoryOut(
        symbol=c.symbol,
        method=c.method,
        bars=len(c.frame),
        transitions={k: _transitions(r, limit) for k, r in c.regimes.items()},
        time_in_state=shares,
    )


@router.post("/classify", response_model=ClassifyOut)
async def classify(req: ClassifyRequest) -> ClassifyOut:
    """States and probabilities of the latest ``limit`` bars, and every transition."""

    def run() -> ClassifyOut:
        frame = load_frame(req)
        res = classify_frame(frame, req.method, req.rules, req.mixture, ("body",))
        n = len(frame)
        rows = [
            BarRegimeOut(
                ts=frame.index[i].to_pydatetime(),
                regimes={k: _state_at(r, i) for k, r in res.items()},
                probabilities={k: _proba_at(r, i) for k, r in res.items()},
            )
            for i in range(max(0, n - req.limit), n)
        ]
        return ClassifyOut(
            symbol=req.symbol,
            method=req.method,
            count=len(rows),
            bars=rows,
            transitions={k: _transitions(r, MAX_ROWS) for k, r in res.items()},
        )

    return await asyncio.to_thread(run)
