"""Rule-based agents; importing this package registers them."""

from raytrader.agents.rules.bollinger_breakout import BollingerBreakout
from raytrader.agents.rules.momentum import Momentum
from raytrader.agents.rules.rsi_reversion import RsiReversion
from raytrader.agents.rules.sma_cross import SmaCross

__all__ = ["BollingerBreakout", "Momentum", "RsiReversion", "SmaCross"]
