"""A paper session replaying a data set trades exactly as the backtest of the same config."""

from __future__ import annotations

import pandas as pd
import pytest

from raytrader.backtesting.runner import run_backtest
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.sessions import SessionManager

pytestmark = pytest.mark.asyncio


def session_config(
    agent: dict[str, object], synthetic: dict[str, object], exits: dict[str, float] | None = None
) -> SessionConfig:
    return SessionConfig.model_validate(
        {
            "name": "parity",
            "agents": [agent],
            "initial_cash": 100_000,
            "broker": {"commission": {"bps": 10, "minimum": 1}, "slippage": {"bps": 3}},
            "portfolio": {"lot_size": 0.01, "exits": exits},
            "feed": {"data": {"synthetic": synthetic}},
        }
    )


@pytest.mark.parametrize(
    ("agent", "synthetic", "exits"),
    [
        (
            {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
            {"kind": "single", "n_bars": 600, "seed": 3, "freq": "1h"},
            None,
        ),
        (
            {"name": "sma_cross", "params": {"fast": 5, "slow": 20}},
            {"kind": "single", "n_bars": 600, "seed": 3, "freq": "1h"},
            {"take_profit_pct": 0.01, "stop_loss_pct": 0.005, "trailing_pct": 0.008},
        ),
        (
            {
                "name": "momentum",
                "params": {
                    "lookback_period": 30,
                    "exit_ma_period": 20,
                    "index_ma_period": 50,
                    "atr_period": 10,
                },
            },
            {"kind": "universe", "n_bars": 260, "seed": 5, "n_symbols": 10},
            None,
        ),
    ],
    ids=["sma_cross", "sma_cross_exits", "momentum"],
)
async def test_replayed_session_matches_the_backtest(
    manager: SessionManager,
    agent: dict[str, object],
    synthetic: dict[str, object],
    exits: dict[str, float] | None,
) -> None:
    config = session_config(agent, synthetic, exits)
    backtest = run_backtest(config.as_backtest())
    assert len(backtest.fills) > 5
    if exits:  # the exits fired, and the session must fire them alike
        assert any(f.client_order_id.endswith(("-tp", "-sl", "-ts")) for f in backtest.fills)

    sid = await manager.start(config)
    assert await manager.wait(sid, timeout=300) == "stopped"
    summary = await manager.summary(sid)
    assert summary["reason"] == "feed ended"

    fills = await manager.fills(sid)
    got = [
        (f["ts"], f["symbol"], f["side"], f["quantity"], f["price"], f["commission"]) for f in fills
    ]
    want = [
        (f.ts.isoformat(), f.symbol, f.side.value, f.quantity, f.price, f.commission)
        for f in backtest.fills
    ]
    assert got == want

    equity = manager.equity_series(sid)
    pd.testing.assert_series_equal(
        equity,
        backtest.equity,
        check_names=False,
        check_freq=False,
        rtol=0,
        atol=0,
        check_index_type=False,
    )
