"""What a backtest produced, and the frames and metrics derived from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Fill, OrderState, Signal
from raytrader.portfolio.rebalancer import Adjustment
from raytrader.state.ledger import Ledger, Trade
from raytrader.state.metrics import Metrics, compute_metrics, periods_per_year


@dataclass(frozen=True, slots=True)
class SignalRecord:
    bar: int
    agent: str
    signal: Signal


@dataclass(eq=False)
class BacktestResult:
    equity: pd.Series
    cash: pd.Series
    positions: pd.DataFrame
    gross_exposure: pd.Series
    fills: list[Fill]
    orders: list[OrderState]
    journal: list[OrderState]
    trades: list[Trade]
    signals: list[SignalRecord]
    adjustments: list[Adjustment]
    ledger: Ledger
    _metrics: Metrics | None = field(default=None, repr=False)
    #: When and why the kill switch halted the run (None: it did not).
    halted: tuple[datetime, str] | None = None
    #: With capital weights: each bar's PnL by agent (see ``backtesting.attribution``) and
    #: the last bar's positions by agent (None without capital weights).
    attribution: pd.DataFrame | None = None
    attributed_positions: pd.DataFrame | None = None

    @classmethod
    def build(
        cls,
        *,
        data: MarketData,
        close_ffill: FloatArray,
        initial_cash: float,
        change_bars: list[int],
        change_cash: list[float],
        change_qty: list[list[float]],
        ledger: Ledger,
        fills: list[Fill],
        orders: list[OrderState],
        journal: list[OrderState],
        signals: list[SignalRecord],
        adjustments: list[Adjustment],
        halted: tuple[datetime, str] | None = None,
    ) -> BacktestResult:
        n, m = data.n_bars, len(data.symbols)
        # State k holds from change_bars[k] on; state 0 is the opening account.
        bars = np.asarray([-1, *change_bars], dtype=np.int64)
        cash_pts = np.asarray([initial_cash, *change_cash])
        qty_pts = np.vstack([np.zeros((1, m)), np.asarray(change_qty).reshape(-1, m)])
        which = np.searchsorted(bars, np.arange(n), side="right") - 1
        cash = cash_pts[which]
        qty = qty_pts[which].T  # (m, n)
        held_value = np.where(qty != 0.0, qty * np.nan_to_num(close_ffill), 0.0)
        equity = cash + held_value.sum(axis=0)
        gross = np.abs(held_value).sum(axis=0)
        idx = data.index
        return cls(
            equity=pd.Series(equity, index=idx, name="equity"),
            cash=pd.Series(cash, index=idx, name="cash"),
            positions=pd.DataFrame(qty.T, index=idx, columns=list(data.symbols)),
            gross_exposure=pd.Series(gross, index=idx, name="gross_exposure"),
            fills=fills,
            orders=orders,
            journal=journal,
            trades=list(ledger.trades),
            signals=signals,
            adjustments=adjustments,
            ledger=ledger,
            halted=halted,
        )

    def metrics(self, periods: float | None = None) -> Metrics:
        """Performance metrics; ``periods`` per year is inferred from the index if not given."""
        if self._metrics is None or periods is not None:
            ppy = periods or periods_per_year(pd.DatetimeIndex(self.equity.index))
            exposure = (self.gross_exposure / self.equity).fillna(0.0)
            traded = float(sum(f.notional for f in self.fills))
            m = compute_metrics(
                self.equity,
                self.trades,
                periods_per_year=ppy,
                exposure=exposure,
                traded_notional=traded,
            )
            if periods is not None:
                return m
            self._metrics = m
        return self._metrics

    def fills_frame(self) -> pd.DataFrame:
        rows = [asdict(f) for f in self.fills]
        return pd.DataFrame(rows, columns=list(Fill.__dataclass_fields__))

    def orders_frame(self) -> pd.DataFrame:
        return pd.DataFrame([_order_row(st) for st in self.orders])

    def journal_frame(self) -> pd.DataFrame:
        return pd.DataFrame([_order_row(st) for st in self.journal])

    def signals_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"bar": r.bar, "agent": r.agent, **asdict(r.signal)} for r in self.signals]
        )


def _order_row(st: OrderState) -> dict[str, Any]:
    o = st.order
    return {
        "client_order_id": o.client_order_id,
        "ts": o.ts,
        "symbol": o.symbol,
        "side": str(o.side),
        "type": str(o.type),
        "quantity": o.quantity,
        "limit_price": o.limit_price,
        "stop_price": o.stop_price,
        "time_in_force": str(o.time_in_force),
        "status": str(st.status),
        "filled_quantity": st.filled_quantity,
        "avg_fill_price": st.avg_fill_price,
        "reason": st.reason,
        "updated": st.updated,
        "tag": o.tag,
    }
