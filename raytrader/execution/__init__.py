"""Execution: cost models and the paper broker (pure core: no Ray, FastAPI, Redis or ccxt)."""

from raytrader.execution.costs import CommissionModel, SlippageModel
from raytrader.execution.paper_broker import (
    DAY_EXPIRED,
    INSUFFICIENT_CASH,
    IOC_REMAINDER,
    PaperBroker,
    PaperBrokerConfig,
)

__all__ = [
    "DAY_EXPIRED",
    "INSUFFICIENT_CASH",
    "IOC_REMAINDER",
    "CommissionModel",
    "PaperBroker",
    "PaperBrokerConfig",
    "SlippageModel",
]
