"""Ledger (positions, cash, transactions, PnL, corporate actions, trades) and metrics."""

from raytrader.state.ledger import Ledger, Trade, Transaction, TransactionKind
from raytrader.state.metrics import Metrics, compute_metrics, periods_per_year

__all__ = [
    "Ledger",
    "Metrics",
    "Trade",
    "Transaction",
    "TransactionKind",
    "compute_metrics",
    "periods_per_year",
]
