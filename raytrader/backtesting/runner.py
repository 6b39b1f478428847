"""Run a backtest from its config."""

from __future__ import annotations

from raytrader.agents import registry
from raytrader.backtesting.config import BacktestConfig
from raytrader.backtesting.engine import BacktestEngine, ProgressFn
from raytrader.backtesting.result import BacktestResult
from raytrader.data.market_data import MarketData


def run_backtest(
    config: BacktestConfig,
    data: MarketData | None = None,
    progress: ProgressFn | None = None,
) -> BacktestResult:
    """Load the data (unless given), build the agents by name and run the engine."""
    data = data if data is not None else config.data.load()
    agents = [registry.create(spec.name, spec.params) for spec in config.agents]
    engine = BacktestEngine(
        initial_cash=config.initial_cash,
        broker=config.broker,
        portfolio=config.portfolio,
        run_id=config.name,
    )
    result = engine.run(data, agents, progress=progress)
    if config.periods_per_year is not None:
        result.metrics(config.periods_per_year)
    return result
