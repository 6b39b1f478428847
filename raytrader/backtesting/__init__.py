"""The event-driven backtest engine, its config, results and reports."""
