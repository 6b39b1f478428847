"""The bar returns the risk endpoints estimate from: of a session's symbols (up to its last
bar) or of a bundled data set, with a bound on the work one request may take."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from fastapi import HTTPException

from raytrader.data.market_data import FloatArray, MarketData
from raytrader.data.spec import DataSpec
from raytrader.orchestrator import control
from raytrader.orchestrator.api.common import field_error
from raytrader.orchestrator.api.data import Source, bundled_frames
from raytrader.orchestrator.sessions import SessionManager
from raytrader.state.metrics import periods_per_year

MIN_RETURNS = 20
# Element-steps one estimate may take (returns x horizon x positions, paths x horizon x
# positions): a request beyond it is a 422 naming the parameter to lower.
MAX_WORK = 20_000_000


def check_work(cells: float, loc: tuple[str, ...], what: str) -> None:
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
        check_work(
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


async def returns_for(
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


def bars_per_year(index: pd.Index, given: float | None) -> float:
    if given is not None:
        return given
    if isinstance(index, pd.DatetimeIndex) and len(index) >= 2:
        return periods_per_year(index)
    return 252.0
