"""Performance metrics of an equity curve and its trades.

Definitions follow empyrical (``empyrical-reloaded``) so the numbers match it to float
precision; where empyrical answers NaN or inf for a degenerate input, these functions answer a
defined number instead (listed in ``compute_metrics``). Bar returns are
``equity.pct_change()`` without the leading NaN: n equity points give n - 1 returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict

from raytrader.state import metric_kernels as kernels
from raytrader.state.ledger import Trade

_DAY_NS = 86_400 * 10**9
_NAT = np.iinfo(np.int64).min  # NaT in int64 nanoseconds

# Spread (std or downside deviation) below this fraction of the largest bar return is zero.
_ZERO_SPREAD = 1e-9

# Median bar spacing (in days) of coarse calendars, snapped to their usual annualization.
_COARSE: tuple[tuple[float, float, float], ...] = (
    (6.0, 8.0, 52.0),  # weekly
    (27.0, 32.0, 12.0),  # monthly
    (88.0, 93.0, 4.0),  # quarterly
    (360.0, 370.0, 1.0),  # yearly
)


def _distinct_sorted(ns: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``np.unique(ns)`` (maybe ``ns`` itself), at a fraction of its cost on sorted data."""
    if len(ns) < 2 or bool((ns[1:] > ns[:-1]).all()):
        return ns
    if not bool((ns[1:] >= ns[:-1]).all()):
        ns = np.sort(ns)
    return ns[np.concatenate(([True], ns[1:] != ns[:-1]))]


def periods_per_year(index: pd.DatetimeIndex, trading_days: int = 252) -> float:
    """Bars per year inferred from the median spacing of ``index``.

    - Daily bars: ``trading_days``, or 365 when the index has Saturday or Sunday bars
      (a 24/7 market such as crypto).
    - Weekly, monthly, quarterly, yearly bars: 52, 12, 4, 1; other spacings of more than three
      days: 365.25 / spacing in days.
    - Intraday bars of a 24/7 market (weekend bars, or some calendar day covered round the
      clock): ``365 * 24 * 60 / minutes`` per bar. Otherwise ``trading_days`` times the median
      number of bars per calendar day seen in the data (US equities in hourly bars: 252 * 7).
      A sample shorter than a day cannot tell the two apart and is read as one session.
    - Fewer than two distinct timestamps: ``trading_days``.

    Weekdays and calendar days are read in the index's own time zone.
    """
    if len(index) < 2:
        return float(trading_days)
    tz = index.tz
    # Wall-clock time; a zone fixed at UTC (the usual case) has it already.
    local = index if tz is None or tz.utcoffset(None) == timedelta(0) else index.tz_localize(None)
    ns = _distinct_sorted(local.as_unit("ns").asi8)
    if len(ns) < 2:
        return float(trading_days)
    steps = np.diff(ns)
    shortest = int(steps.min())
    # A regular grid is its own median (np.median of equal values is that value).
    spacing = float(shortest) if shortest == int(steps.max()) else float(np.median(steps))
    day = ns // _DAY_NS  # the calendar day of each timestamp, sorted
    first = np.flatnonzero(np.concatenate(([True], day[1:] != day[:-1])))  # of each day
    days_seen = day[first[1:]] if ns[0] == _NAT else day[first]  # NaT falls on no day
    # Day 0 (1970-01-01) was a Thursday: the weekday (Monday 0) is (day + 3) % 7.
    weekends = bool(((days_seen + 3) % 7 >= 5).any())
    if spacing < _DAY_NS:
        per_day = np.diff(np.append(first, len(day)))
        if weekends or per_day.max() * spacing >= _DAY_NS:
            return 365.0 * _DAY_NS / spacing
        return float(trading_days) * float(np.median(per_day))
    days = spacing / _DAY_NS
    if days <= 3.0:
        # Business-day bars have a median spacing of one day; three covers holiday-heavy data.
        return 365.0 if weekends else float(trading_days)
    for low, high, per_year in _COARSE:
        if low <= days <= high:
            return per_year
    return 365.25 / days


class Metrics(BaseModel):
    """Performance summary. Ratios and returns are fractions (0.1 is 10 %)."""

    model_config = ConfigDict(frozen=True)

    start: datetime
    end: datetime
    bars: int
    periods_per_year: float
    start_equity: float
    final_equity: float
    total_return: float
    cagr: float
    volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_bars: int
    max_drawdown_duration: timedelta
    exposure: float
    avg_exposure: float
    turnover: float
    traded_notional: float
    trade_count: int
    win_rate: float
    profit_factor: float
    avg_trade_pnl: float
    avg_trade_return: float

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


class ExposureStats(NamedTuple):
    """The exposure metrics of a run, for callers that computed them on their own."""

    time: float  # fraction of bars with a non-zero gross exposure
    mean: float  # mean of |gross exposure / equity|


@dataclass(frozen=True, slots=True)
class TradeStats:
    """The ``pnl`` and ``return_pct`` of closed trades as float64 arrays, one entry per trade.

    All ``compute_metrics`` needs of the trades; ``of`` takes them from ``Trade`` objects.
    """

    pnl: npt.NDArray[np.float64]
    return_pct: npt.NDArray[np.float64]

    def __post_init__(self) -> None:
        pnl = np.asarray(self.pnl, dtype=np.float64)
        return_pct = np.asarray(self.return_pct, dtype=np.float64)
        if pnl.ndim != 1 or pnl.shape != return_pct.shape:
            raise ValueError(
                f"TradeStats: pnl and return_pct need one value per trade, "
                f"got shapes {pnl.shape} and {return_pct.shape}"
            )
        object.__setattr__(self, "pnl", pnl)
        object.__setattr__(self, "return_pct", return_pct)

    @classmethod
    def of(cls, trades: Sequence[Trade]) -> TradeStats:
        return cls(
            np.array([t.pnl for t in trades], dtype=np.float64),
            np.array([t.return_pct for t in trades], dtype=np.float64),
        )


def compute_metrics(
    equity: pd.Series,
    trades: Sequence[Trade] | TradeStats,
    *,
    periods_per_year: float,
    exposure: pd.Series | npt.NDArray[np.float64] | ExposureStats | None = None,
    traded_notional: float = 0.0,
    risk_free: float = 0.0,
) -> Metrics:
    """Metrics of an equity curve (one value per bar, DatetimeIndex) and its closed trades.

    Definitions (r: bar returns, n = len(r), P = ``periods_per_year``,
    rf = ``(1 + risk_free) ** (1 / P) - 1``, the annual ``risk_free`` rate per bar):

    - ``total_return`` = final / start equity - 1; ``cagr`` = (1 + total_return) ** (P / n) - 1
      (empyrical ``annual_return``); -1.0 if equity ended at or below zero.
    - ``volatility`` = std(r, ddof=1) * sqrt(P).
    - ``sharpe`` = mean(r - rf) / std(r - rf, ddof=1) * sqrt(P).
    - ``sortino`` = mean(r - rf) * P / (sqrt(mean(min(r - rf, 0) ** 2)) * sqrt(P)).
    - ``calmar`` = cagr / |max_drawdown|.
    - ``max_drawdown``: min of equity / running peak - 1 (negative, empyrical's sign).
    - ``max_drawdown_bars``: the longest run of consecutive bars below the running peak
      (quantstats' drawdown "days" on calendar-daily data). ``max_drawdown_duration``: the
      longest time from a peak to the bar that recovers it, or to the last bar if none does
      (backtesting.py's "Max. Drawdown Duration").
    - ``exposure``: fraction of bars whose ``exposure`` value (gross exposure / equity) is
      non-zero; ``avg_exposure``: its mean. Both NaN when ``exposure`` is not given; taken
      as they are when it is ``ExposureStats``.
    - ``turnover`` = ``traded_notional`` / mean equity / years, years = n / P: how many times
      the average equity is traded per year.
    - ``win_rate`` = trades with pnl > 0 / all trades (break-even trades count as not won).
      ``profit_factor`` = gross profit / gross loss (as quantstats on the trades' pnl).
      ``trades`` are ``Trade`` objects or their ``TradeStats`` (the same numbers).

    Degenerate inputs answer numbers, not NaN: fewer than two returns give 0.0 for volatility,
    sharpe and sortino; a standard (downside) deviation of the excess returns below 1e-9 of
    their largest absolute value counts as zero and gives sharpe (sortino) 0.0, so constant
    returns do not divide by float residue; no drawdown gives calmar 0.0; no trades give
    win_rate, profit_factor and the trade averages 0.0; no losing trade gives profit_factor
    inf (0.0 if no trade won either; pydantic writes inf as null in JSON). A bar return after
    equity at or below zero counts as 0. Deposits and withdrawals are not taken out of the
    returns: pass an equity curve without external flows. Raise ``ValueError`` on an empty or
    non-finite equity curve, a non-positive start equity or a non-positive
    ``periods_per_year``.
    """
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise TypeError("compute_metrics: equity needs a DatetimeIndex")
    if len(equity) == 0:
        raise ValueError("compute_metrics: equity is empty")
    if not (math.isfinite(periods_per_year) and periods_per_year > 0):
        raise ValueError(f"compute_metrics: periods_per_year must be > 0, got {periods_per_year}")
    values = np.ascontiguousarray(equity.to_numpy(dtype=np.float64))
    if not np.isfinite(values).all():
        raise ValueError("compute_metrics: equity has NaN or infinite values")
    if values[0] <= 0:
        raise ValueError(f"compute_metrics: start equity must be positive, got {values[0]}")
    ppy = float(periods_per_year)
    n = len(values) - 1

    growth = float(values[-1] / values[0])
    total_return = growth - 1.0
    cagr = _cagr(growth, n, ppy)

    rf = (1.0 + risk_free) ** (1.0 / ppy) - 1.0
    ticks = np.ascontiguousarray(equity.index.asi8)
    mean, std_r, std, downside, hi, lo, max_drawdown, dd_bars, dd_span, mean_equity = (
        kernels.curve_stats(values, ticks, rf)
    )
    volatility = sharpe = sortino = 0.0
    if n >= 2:
        volatility = std_r * math.sqrt(ppy)
        # A spread that is float residue (constant returns: 1.01 ** k is not exactly geometric)
        # counts as zero; dividing by it would give ratios of 1e15.
        floor = _ZERO_SPREAD * max(hi, -lo)
        if std > floor:
            sharpe = mean / std * math.sqrt(ppy)
        if downside > floor:
            sortino = mean * ppy / (downside * math.sqrt(ppy))
    calmar = cagr / abs(max_drawdown) if max_drawdown < 0.0 else 0.0
    dd_duration = pd.Timedelta(dd_span, unit=equity.index.unit).to_pytimedelta()

    exposure_time = avg_exposure = math.nan
    if isinstance(exposure, ExposureStats):
        exposure_time, avg_exposure = exposure
    elif exposure is not None:
        gross = np.ascontiguousarray(exposure, dtype=np.float64)
        exposure_time, avg_exposure = kernels.exposure_stats(gross)

    years = n / ppy
    turnover = traded_notional / mean_equity / years if years > 0 and mean_equity > 0 else 0.0

    stats = trades if isinstance(trades, TradeStats) else TradeStats.of(trades)
    pnls = stats.pnl
    win_rate = profit_factor = avg_trade_pnl = avg_trade_return = 0.0
    if len(pnls):
        win_rate = float((pnls > 0.0).mean())
        profit_factor = _profit_factor(pnls)
        avg_trade_pnl = float(pnls.mean())
        avg_trade_return = float(stats.return_pct.mean())

    return Metrics(
        start=equity.index[0].to_pydatetime(),
        end=equity.index[-1].to_pydatetime(),
        bars=len(values),
        periods_per_year=ppy,
        start_equity=float(values[0]),
        final_equity=float(values[-1]),
        total_return=total_return,
        cagr=cagr,
        volatility=volatility,
        sharpe=sharpe,
        sortino=sortino,
        calmar=calmar,
        max_drawdown=max_drawdown,
        max_drawdown_bars=dd_bars,
        max_drawdown_duration=dd_duration,
        exposure=exposure_time,
        avg_exposure=avg_exposure,
        turnover=turnover,
        traded_notional=float(traded_notional),
        trade_count=len(pnls),
        win_rate=win_rate,
        profit_factor=profit_factor,
        avg_trade_pnl=avg_trade_pnl,
        avg_trade_return=avg_trade_return,
    )


def _cagr(growth: float, n: int, ppy: float) -> float:
    if n == 0:
        return 0.0
    if growth <= 0.0:
        return -1.0
    # numpy so that a huge growth over a short span gives inf instead of OverflowError.
    with np.errstate(over="ignore"):
        return float(np.power(growth, ppy / n)) - 1.0


def _profit_factor(pnls: npt.NDArray[np.float64]) -> float:
    gross_profit = float(pnls[pnls > 0.0].sum())
    gross_loss = -float(pnls[pnls < 0.0].sum())
    if gross_loss == 0.0:
        return math.inf if gross_profit > 0.0 else 0.0
    return gross_profit / gross_loss
