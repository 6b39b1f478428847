"""Signals to target positions to orders. Pure: no I/O."""

from raytrader.portfolio.config import PortfolioConfig
from raytrader.portfolio.rebalancer import AccountView, Adjustment, Rebalancer

__all__ = ["AccountView", "Adjustment", "PortfolioConfig", "Rebalancer"]
