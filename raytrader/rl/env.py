"""``TradingEnv``: a gymnasium environment whose steps run the backtest engine's own pieces.

One step is one bar, in the engine's order (``raytrader.backtesting.engine``): the action taken
at bar ``t``'s close becomes signals; at ``t+1``'s open the order planner and rebalancer size
them (costs, lots, limits, cash), the pre-trade risk checks pass or refuse the orders, the
paper broker fills them against bar ``t+1`` with its commission and slippage, and the ledger
books the fills. The reward is the change of equity from close to close, so it is net of every
cost; the observation at ``t`` reads features of bars up to ``t`` only. The same actions
through ``BacktestEngine`` give the same fills and equity (a test checks it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from raytrader.backtesting.engine import open_prices
from raytrader.data.market_data import MarketData
from raytrader.domain import OrderState, OrderStatus
from raytrader.domain.bar import BarTuple
from raytrader.execution.paper_broker import PaperBroker
from raytrader.portfolio.planner import OrderPlanner, account_at
from raytrader.portfolio.rebalancer import Rebalancer
from raytrader.risk.checks import PreTradeRisk, RiskContext, bar_returns
from raytrader.risk.kill_switch import KillSwitch
from raytrader.rl.config import (
    Float32Array,
    TradingEnvConfig,
    decode_action,
    feature_tensor,
    observation,
    target_signals,
    weights_of,
)
from raytrader.state.ledger import Ledger

__all__ = ["TradingEnv"]

_MINUTE = timedelta(seconds=60)


class TradingEnv(gym.Env[Float32Array, Any]):
    """Trade ``data`` (one symbol or several: then the action is a vector of weights).

    Actions: ``long_flat`` Discrete(2) (flat, long), ``short_flat_long`` Discrete(3) (short,
    flat, long), each at ``max_weight``; ``continuous`` a Box(-1, 1) per symbol, the target
    weights (long-only accounts map [-1, 1] to [0, 1]; a gross above 1 is scaled to 1).
    Rewards: ``pnl`` the equity return of the step; ``risk_adjusted`` that minus
    ``drawdown_penalty`` times the step's increase of the drawdown from the equity's high.
    Episodes run to the end of the data (truncated) or ``episode_bars`` steps from a random
    start; they terminate when equity falls below ``bust_fraction`` of the initial cash.
    """

    metadata = {"render_modes": []}  # noqa: RUF012 - gymnasium's own attribute

    def __init__(self, data: MarketData, config: TradingEnvConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or TradingEnvConfig()
        self.data = data
        self.symbols = data.symbols
        n_sym = len(self.symbols)
        if cfg.action != "continuous" and n_sym != 1:
            raise ValueError(f"action {cfg.action!r} trades one symbol; use 'continuous'")
        self.t = 0
        self.steps = 0
        self.peak = cfg.initial_cash
        self._features = feature_tensor(data, cfg)
        # First bar with every feature of every symbol defined over a full window.
        finite = np.isfinite(self._features).all(axis=(0, 2))
        first = int(np.argmax(finite)) if finite.any() else data.n_bars
        self.start = max(first + cfg.window - 1, cfg.warmup)
        if self.start >= data.n_bars - 1:
            raise ValueError(
                f"{data.n_bars} bars leave no step after the warm-up of {self.start} bars"
            )
        self._close_ffill = _ffill(data.close)
        size = cfg.n_features(n_sym)
        self.observation_space = spaces.Box(-cfg.obs_clip, cfg.obs_clip, (size,), np.float32)
        if cfg.action == "long_flat":
            self.action_space: spaces.Space[Any] = spaces.Discrete(2)
        elif cfg.action == "short_flat_long":
            self.action_space = spaces.Discrete(3)
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (n_sym,), np.float32)
        self._reset_account(self.start)

    # ------------------------------------------------------------------ gymnasium API

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Float32Array, dict[str, Any]]:
        super().reset(seed=seed)
        start = self.start
        steps = self.config.episode_bars
        if steps is not None and self.data.n_bars - 1 - steps > self.start:
            start = int(self.np_random.integers(self.start, self.data.n_bars - steps))
        self._reset_account(start)
        return self._observe(), self._info()

    def step(self, action: Any) -> tuple[Float32Array, float, bool, bool, dict[str, Any]]:
        cfg = self.config
        t = self.t
        targets = decode_action(action, cfg, len(self.symbols))
        signals = target_signals(
            targets, self._targets, self.symbols, self.data.ts(t), cfg.min_change
        )
        if signals:
            self.planner.add(0, signals)
        before = self.equity
        self._advance(t + 1)
        self.t = t + 1
        self.steps += 1
        equity = self.equity
        ret = equity / before - 1.0 if before > 0 else 0.0
        reward = ret
        if cfg.reward == "risk_adjusted":
            old_dd = 1.0 - before / self.peak if self.peak > 0 else 0.0
            self.peak = max(self.peak, equity)
            new_dd = 1.0 - equity / self.peak if self.peak > 0 else 0.0
            reward -= cfg.drawdown_penalty * max(new_dd - old_dd, 0.0)
        else:
            self.peak = max(self.peak, equity)
        terminated = equity < cfg.bust_fraction * cfg.initial_cash
        truncated = not terminated and (
            self.t >= self.data.n_bars - 1
            or (cfg.episode_bars is not None and self.steps >= cfg.episode_bars)
        )
        return (
            self._observe(),
            float(reward * cfg.reward_scale),
            terminated,
            truncated,
            self._info(),
        )

    # ------------------------------------------------------------------ the simulator

    def _reset_account(self, start: int) -> None:
        cfg = self.config
        self.ledger = ledger = Ledger(cfg.initial_cash)
        self.broker = PaperBroker(cfg.broker, buying_power=lambda: ledger.cash)
        rebalancer = Rebalancer(cfg.portfolio, cfg.broker.commission, cfg.broker.slippage)
        self.planner = OrderPlanner(rebalancer, "rl")
        limits = cfg.portfolio.limits
        self.risk = PreTradeRisk(limits)
        # The optional limits read a context, as in the engine: the orders of the last minute,
        # the day's starting equity (booked at every close), recent returns.
        self._contextual = bool(limits.extended)
        self._day = KillSwitch(None, cfg.initial_cash) if limits.daily_loss_limit else None
        self._order_times: list[datetime] = []
        self.refused: list[OrderState] = []
        self._targets: dict[str, float] = {}
        self.t = start
        self.steps = 0
        self.peak = cfg.initial_cash

    def _advance(self, i: int) -> None:
        """Bar ``i``: the pending signals' orders at its open, then the broker's matching."""
        data, broker, ledger = self.data, self.broker, self.ledger
        ts = data.ts(i)
        if self.planner.pending:
            prices = open_prices(data.open[:, i], self._close_ffill[:, i - 1], self.symbols)
            acct = account_at(ledger, prices)
            plan = self.planner.plan(i, ts, prices, acct)
            for symbol in plan.cancel_symbols:
                for st in broker.open_orders(symbol):
                    broker.cancel(st.order.client_order_id, ts, "superseded by a new signal")
            passed, denied = self.risk.check(plan.orders, acct, prices, self._context(i, ts))
            if self._contextual:
                self._order_times.extend(ts for _ in passed)
            for order, why in denied:
                self.refused.append(OrderState(order).to(OrderStatus.REJECTED, ts, why))
            for order in passed:
                broker.submit(order)
        if broker.open_symbols:
            bars: dict[str, BarTuple] = {}
            for symbol in broker.open_symbols:
                j = self.symbols.index(symbol)
                o = float(data.open[j, i])
                if o == o:  # NaN open: no bar for this symbol now
                    bars[symbol] = (
                        o,
                        float(data.high[j, i]),
                        float(data.low[j, i]),
                        float(data.close[j, i]),
                        float(data.volume[j, i]),
                    )
            for fill in broker.on_bars(ts, bars):
                ledger.apply_fill(fill)
        if self._day is not None:
            self._day.update(ts, self.equity_at(i))

    def _context(self, i: int, ts: datetime) -> RiskContext | None:
        """The pre-trade checks' context at bar ``i``'s open, built as the engine builds it."""
        if not self._contextual:
            return None
        limits = self.config.portfolio.limits
        self._order_times = [t for t in self._order_times if t > ts - _MINUTE]
        returns = None
        if limits.needs_returns:
            closes = self._close_ffill[:, max(0, i - limits.risk_lookback - 1) : i]
            returns = bar_returns(self.symbols, closes)
        return RiskContext(
            now=ts,
            open_orders=len(self.broker.open_orders()),
            order_times=self._order_times,
            day_start_equity=self._day.day_start_for(ts) if self._day else None,
            returns=returns,
        )

    def _closes(self) -> dict[str, float]:
        return {s: float(self._close_ffill[j, self.t]) for j, s in enumerate(self.symbols)}

    @property
    def equity(self) -> float:
        """Equity at the current bar's close, as the engine marks it for agents."""
        closes = self._closes()
        return self.ledger.equity({s: closes[s] for s in self.ledger.positions()})

    def equity_at(self, i: int) -> float:
        """Equity at bar ``i``'s close summed in symbol order, as the engine books it for the
        day's starting equity."""
        positions = self.ledger.positions()
        held = 0.0
        for j, symbol in enumerate(self.symbols):
            pos = positions.get(symbol)
            if pos is not None:
                held += pos.quantity * float(self._close_ffill[j, i])
        return self.ledger.cash + held

    def _observe(self) -> Float32Array:
        t, w = self.t, self.config.window
        closes = self._closes()
        equity = self.equity
        held = {s: p.quantity for s, p in self.ledger.positions().items()}
        unrealized = self.ledger.unrealized_pnl(closes) / equity if equity > 0 else 0.0
        windows = [self._features[j, t - w + 1 : t + 1] for j in range(len(self.symbols))]
        return observation(
            windows, weights_of(held, closes, equity), unrealized, self.config.obs_clip
        )

    def _info(self) -> dict[str, Any]:
        return {"t": self.t, "ts": self.data.ts(self.t), "equity": self.equity}


def _ffill(a: np.ndarray[Any, Any]) -> np.ndarray[Any, np.dtype[np.float64]]:
    out = np.array(a, dtype=np.float64)
    for j in range(out.shape[0]):
        row = out[j]
        idx = np.where(np.isfinite(row), np.arange(row.size), 0)
        np.maximum.accumulate(idx, out=idx)
        out[j] = row[idx]
    return out
