"""The event-driven backtest engine.

One bar, in the order a live session runs it:

1. at the open: signals of the previous close become orders (priced at this open, the first
   price a live order would meet), sized by the rebalancer within limits and cash;
2. the paper broker matches every live order against this bar; fills go to the ledger;
3. at the close: the kill switch (if configured) books the equity, and agents see the bar (and
   only the past) and emit signals.

With capital weights (``PortfolioConfig.capital``) the agents share the account: the planner
nets their targets into one target per symbol (see ``OrderPlanner``), and the result carries
the attribution of positions and PnL back to the agents (``BacktestResult.attribution``).

When the kill switch trips at a close, the open orders are cancelled, every position is sold or
bought back with a market order for the next open if ``flatten`` is set, and every later order
is refused (journaled as rejected, reason ``halted: <why>``) to the end of the run: a backtest
has nobody to resume it.

With exits (``PortfolioConfig.exits``) every order that opens or increases a position carries
its take-profit / stop-loss / trailing-stop children (``raytrader.portfolio.exits``); a new
signal does not supersede them, and after each bar's fills they follow the position
(``raytrader.execution.exits``): resized when it grows, cancelled when it shrinks or closes. A
split cancels them (their prices are of the old share).

Indicators are computed once, vectorized, and revealed bar by bar through ``BarContext``. The
hot loop touches no pandas and allocates nothing on bars where nothing happens; the equity curve
is rebuilt vectorized from the points where the account changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from raytrader.agents.base import Agent
from raytrader.agents.context import BarContext
from raytrader.backtesting.attribution import attribute
from raytrader.backtesting.result import BacktestResult, SignalRecord
from raytrader.data.indicators import atr as atr_indicator
from raytrader.data.market_data import FloatArray, MarketData
from raytrader.domain import Fill, OrderState, OrderStatus
from raytrader.execution.exits import cancel_reduced_exits, sync_exits
from raytrader.execution.paper_broker import PaperBroker, PaperBrokerConfig
from raytrader.portfolio.config import AgentCapital, PortfolioConfig
from raytrader.portfolio.planner import OrderPlanner, account_at
from raytrader.portfolio.rebalancer import Rebalancer
from raytrader.risk.checks import PreTradeRisk, RiskContext, bar_returns
from raytrader.risk.kill_switch import KillSwitch, flatten_orders
from raytrader.state.ledger import Ledger

ProgressFn = Callable[[int], None]
_PROGRESS_EVERY = 20_000
_MINUTE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class CorporateAction:
    """A split (``value`` = ratio, e.g. 2.0 for 2-for-1) or cash dividend (per share)."""

    symbol: str
    ts: datetime
    kind: str  # "split" | "dividend"
    value: float


class _Account:
    """The engine's live view of the ledger, as agents see it (``PortfolioView``)."""

    __slots__ = ("_close", "_ledger", "i")

    def __init__(self, ledger: Ledger, close_ffill: FloatArray, symbols: Sequence[str]) -> None:
        self._ledger = ledger
        self._close = {s: close_ffill[j] for j, s in enumerate(symbols)}
        self.i = 0

    @property
    def cash(self) -> float:
        return self._ledger.cash

    def position(self, symbol: str) -> float:
        return self._ledger.position(symbol).quantity

    def equity(self) -> float:
        i = self.i
        return self._ledger.equity({s: float(self._close[s][i]) for s in self._ledger.positions()})


def _ffill(a: FloatArray) -> FloatArray:
    return pd.DataFrame(a.T).ffill().to_numpy().T


class BacktestEngine:
    """Runs agents over ``MarketData`` with the paper broker, the rebalancer and the ledger."""

    def __init__(
        self,
        initial_cash: float = 100_000.0,
        broker: PaperBrokerConfig | None = None,
        portfolio: PortfolioConfig | None = None,
        run_id: str = "bt",
    ) -> None:
        if not initial_cash > 0:
            raise ValueError(f"initial_cash must be positive, got {initial_cash}")
        self.initial_cash = initial_cash
        self.broker_config = broker or PaperBrokerConfig()
        self.portfolio_config = portfolio or PortfolioConfig()
        self.run_id = run_id

    def run(
        self,
        data: MarketData,
        agents: Sequence[Agent],
        corporate_actions: Sequence[CorporateAction] = (),
        progress: ProgressFn | None = None,
    ) -> BacktestResult:
        if not agents:
            raise ValueError("a backtest needs at least one agent")
        n, symbols = data.n_bars, data.symbols
        ledger = Ledger(self.initial_cash)
        broker = PaperBroker(self.broker_config, buying_power=lambda: ledger.cash)
        capital = self.portfolio_config.capital
        shares = AgentCapital.resolve(capital, [a.name for a in agents]) if capital else None
        planner = OrderPlanner(
            Rebalancer(
                self.portfolio_config, self.broker_config.commission, self.broker_config.slippage
            ),
            self.run_id,
            shares,
        )
        limits = self.portfolio_config.limits
        risk = PreTradeRisk(limits)
        kill_config = self.portfolio_config.kill_switch
        # The kill switch and the daily loss limit need the equity at every close.
        watch = kill_config is not None or limits.daily_loss_limit is not None
        kill = KillSwitch(kill_config, self.initial_cash) if watch else None
        contextual = kill is not None or bool(limits.extended)
        exits_on = self.portfolio_config.exits is not None
        order_times: list[datetime] = []  # of the orders sent in the last minute
        halted: tuple[datetime, str] | None = None
        close_ffill = _ffill(data.close)
        account = _Account(ledger, close_ffill, symbols)
        sym_row = {s: j for j, s in enumerate(symbols)}

        for agent in agents:
            if agent.needs_fit:
                agent.fit(data)
        indicators = [agent.indicators(data) for agent in agents]
        contexts = [BarContext(data, ind, account) for ind in indicators]
        atr_rows = self._atr(data) if self.portfolio_config.sizing.method == "atr_risk" else None
        warmup = max(agent.warmup for agent in agents)
        # Bars where some agent may act; other bars only need the broker and the ledger.
        decide = np.zeros(n, dtype=bool)
        for agent, ind in zip(agents, indicators, strict=True):
            active = agent.active_bars(data, ind)
            decide |= True if active is None else np.asarray(active, dtype=bool)
        decide[:warmup] = False
        decide_at: list[bool] = decide.tolist()
        single = agents[0] if len(agents) == 1 else None
        owner: dict[str, int] = {}  # client order id -> agent that asked for it
        refused: list[OrderState] = []
        actions = sorted(corporate_actions, key=lambda a: a.ts)
        action_bars = data.index.searchsorted(
            pd.DatetimeIndex([a.ts for a in actions], tz="UTC")
        ).tolist()

        # Account change points for the vectorized equity curve: bar -> (cash, quantities).
        change_bars: list[int] = []
        change_cash: list[float] = []
        change_qty: list[list[float]] = []
        fills: list[Fill] = []
        signal_log: list[SignalRecord] = []
        opens, highs, lows, closes, volumes = (
            data.open,
            data.high,
            data.low,
            data.close,
            data.volume,
        )
        next_action = 0

        def record(i: int) -> None:
            positions = ledger.positions()
            qty = [positions[s].quantity if s in positions else 0.0 for s in symbols]
            change_bars.append(i)
            change_cash.append(ledger.cash)
            change_qty.append(qty)

        action_bars.append(n)  # sentinel: no action past the data
        next_action_bar = action_bars[0]
        for start in range(0, n, _PROGRESS_EVERY):
            for i in range(start, min(start + _PROGRESS_EVERY, n)):
                if not (
                    decide_at[i]
                    or planner.pending
                    or broker.open_symbols
                    or i >= next_action_bar
                    or watch
                ):
                    continue  # nothing can happen on this bar
                account.i = i
                changed = False
                while i >= next_action_bar:
                    act = actions[next_action]
                    if exits_on and act.kind == "split":
                        # The exits' prices are of the old share: the position keeps none.
                        for st in broker.open_orders(act.symbol):
                            if st.order.parent_id:
                                broker.cancel(st.order.client_order_id, act.ts, "exits: split")
                    self._apply_action(ledger, act)
                    next_action += 1
                    next_action_bar = action_bars[next_action]
                    changed = True
                if planner.pending:
                    ts = data.ts(i)
                    prices = open_prices(opens[:, i], close_ffill[:, i - 1] if i else None, symbols)
                    atr_of = None
                    if atr_rows is not None:
                        atr_at = atr_rows[:, i - 1]

                        def atr_of(symbol: str, atr_at: FloatArray = atr_at) -> float:
                            return float(atr_at[sym_row[symbol]])

                    acct = account_at(ledger, prices)
                    plan = planner.plan(i, ts, prices, acct, atr_of)
                    # A new target supersedes orders still resting for the symbol (not once
                    # halted: what rests then is the kill switch's flattening).
                    for symbol in () if halted else plan.cancel_symbols:
                        for st in broker.open_orders(symbol):
                            if not st.order.parent_id:  # exits belong to the position
                                broker.cancel(
                                    st.order.client_order_id, ts, "superseded by a new signal"
                                )
                    context = None
                    if contextual:
                        if order_times:
                            order_times = [t for t in order_times if t > ts - _MINUTE]
                        context = RiskContext(
                            now=ts,
                            open_orders=len(broker.open_orders()),
                            order_times=order_times,
                            day_start_equity=kill.day_start_for(ts) if kill else None,
                            returns=bar_returns(
                                symbols, close_ffill[:, max(0, i - limits.risk_lookback - 1) : i]
                            )
                            if limits.needs_returns
                            else None,
                            halted=kill.reason if kill else "",
                        )
                    passed, denied = risk.check(plan.orders, acct, prices, context)
                    for order, why in denied:
                        refused.append(OrderState(order).to(OrderStatus.REJECTED, ts, why))
                    for order in passed:
                        cid = order.client_order_id
                        owner[cid] = plan.owners[cid]
                        if exits_on:
                            held = ledger.position(order.symbol).quantity
                            cancel_reduced_exits(broker, held, order.side, order.symbol, cid, ts)
                        broker.submit(order)
                        for child in plan.exits.get(cid, ()):
                            owner[child.client_order_id] = owner[cid]
                            broker.submit(child)
                    if contextual and passed:
                        order_times.extend(ts for _ in passed)
                if broker.open_symbols:
                    bars = {}
                    for symbol in broker.open_symbols:
                        j = sym_row[symbol]
                        o = opens[j, i]
                        if o == o:  # NaN open: this symbol has no bar now
                            bars[symbol] = (
                                float(o),
                                float(highs[j, i]),
                                float(lows[j, i]),
                                float(closes[j, i]),
                                float(volumes[j, i]),
                            )
                    # All symbols at once, so sells fund buys across symbols within the bar.
                    bar_fills = broker.on_bars(data.ts(i), bars)
                    for fill in bar_fills:
                        ledger.apply_fill(fill)
                        fills.append(fill)
                        k = owner.get(fill.client_order_id)
                        if k is not None:  # not a fill of the kill switch's flattening
                            agents[k].on_fill(fill)
                        changed = True
                    if exits_on and bar_fills:
                        held_now = {s: p.quantity for s, p in ledger.positions().items()}
                        sync_exits(
                            broker, held_now, dict.fromkeys(f.symbol for f in bar_fills), data.ts(i)
                        )
                if changed:
                    record(i)
                if kill is not None:
                    ts = data.ts(i)
                    why = kill.update(ts, self._equity(ledger, symbols, close_ffill, i))
                    if why and kill_config is not None:
                        halted = (ts, why)
                        self._halt(broker, ledger, symbols, i, ts, why, kill_config.flatten)
                if not decide_at[i]:
                    continue
                if single is not None:
                    ctx = contexts[0]
                    ctx.i = i
                    signals = single.on_bar(ctx)
                    if signals:
                        planner.add(0, signals)
                        signal_log.extend(SignalRecord(i, single.name, sig) for sig in signals)
                    continue
                for k, agent in enumerate(agents):
                    ctx = contexts[k]
                    ctx.i = i
                    signals = agent.on_bar(ctx)
                    if signals:
                        planner.add(k, signals)
                        signal_log.extend(SignalRecord(i, agent.name, sig) for sig in signals)
            if progress is not None:
                progress(min(start + _PROGRESS_EVERY, n))

        result = BacktestResult.build(
            data=data,
            close_ffill=close_ffill,
            initial_cash=self.initial_cash,
            change_bars=change_bars,
            change_cash=change_cash,
            change_qty=change_qty,
            ledger=ledger,
            fills=fills,
            orders=broker.orders() + refused,
            journal=list(broker.journal) + refused,
            signals=signal_log,
            adjustments=list(planner.rebalancer.adjustments),
            halted=halted,
        )
        if shares is not None:
            result.attribution, result.attributed_positions = attribute(
                result, close_ffill, self.initial_cash, shares.labels, planner.allocation_log
            )
        return result

    @staticmethod
    def _equity(ledger: Ledger, symbols: Sequence[str], close_ffill: FloatArray, i: int) -> float:
        """Equity at bar ``i``'s close, summed as a session's book sums it (symbol order)."""
        positions = ledger.positions()
        held = 0.0
        for j, symbol in enumerate(symbols):
            pos = positions.get(symbol)
            if pos is not None:
                held += pos.quantity * float(close_ffill[j, i])
        return ledger.cash + held

    def _halt(
        self,
        broker: PaperBroker,
        ledger: Ledger,
        symbols: Sequence[str],
        i: int,
        ts: datetime,
        why: str,
        flatten: bool,
    ) -> None:
        """The kill switch tripped at bar ``i``'s close: cancel, and flatten if asked."""
        for st in broker.open_orders():
            broker.cancel(st.order.client_order_id, ts, f"halted: {why}")
        if flatten:
            held = {s: p.quantity for s, p in ledger.positions().items()}
            for order in flatten_orders(held, symbols, f"{self.run_id}-halt-{i}", ts):
                broker.submit(order)

    @staticmethod
    def _apply_action(ledger: Ledger, act: CorporateAction) -> None:
        if act.kind == "split":
            ledger.apply_split(act.symbol, act.value, act.ts)
        elif act.kind == "dividend":
            ledger.apply_dividend(act.symbol, act.value, act.ts)
        else:
            raise ValueError(f"unknown corporate action kind {act.kind!r}")

    def _atr(self, data: MarketData) -> FloatArray:
        period = self.portfolio_config.sizing.atr_period
        return np.vstack(
            [
                atr_indicator(h, lo, c, period)
                for h, lo, c in zip(data.high, data.low, data.close, strict=True)
            ]
        )


def open_prices(
    opens: FloatArray, last_closes: FloatArray | None, symbols: Sequence[str]
) -> dict[str, float]:
    """Order-time prices: each symbol's open, or its last close when it has no bar now."""
    prices: dict[str, float] = {}
    for j, s in enumerate(symbols):
        o = float(opens[j])
        prices[s] = o if o == o else (float(last_closes[j]) if last_closes is not None else o)
    return prices
