"""Pluggable agents: the contract, the registry and the built-in agents."""

from raytrader.agents.base import API_VERSION, Agent, AgentParams
from raytrader.agents.context import BarContext, PortfolioView
from raytrader.agents.registry import (
    AgentConfigError,
    UnknownAgentError,
    available,
    create,
    get,
    register,
)

__all__ = [
    "API_VERSION",
    "Agent",
    "AgentConfigError",
    "AgentParams",
    "BarContext",
    "PortfolioView",
    "UnknownAgentError",
    "available",
    "create",
    "get",
    "register",
]
