"""Backtest configuration, as written in ``configs/*.yaml``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.config_files import ConfigError, load_config_file
from raytrader.data.spec import DataSpec
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import AgentCapital, PortfolioConfig

# ConfigError lives with the file loader; importers of this module keep finding it here.
__all__ = ["AgentSpec", "BacktestConfig", "ConfigError", "check_capital", "load_config"]


class AgentSpec(BaseModel):
    """An agent by registry name with its parameters (validated by the agent's schema)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_agent_with_valid_params(self) -> AgentSpec:
        from raytrader.agents import registry

        registry.create(self.name, self.params)  # raises naming the agent and the field
        return self


class BacktestConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("backtest", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataSpec
    agents: list[AgentSpec] = Field(min_length=1)
    initial_cash: float = Field(100_000.0, gt=0)
    broker: PaperBrokerConfig = PaperBrokerConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    periods_per_year: float | None = Field(
        None, gt=0, description="annualization; inferred from the bar spacing when omitted"
    )

    @model_validator(mode="after")
    def _capital_of_the_agents(self) -> BacktestConfig:
        check_capital(self.portfolio, self.agents)
        return self


def check_capital(portfolio: PortfolioConfig, agents: Sequence[AgentSpec]) -> None:
    """Raise unless ``portfolio.capital`` (if set) gives every agent exactly one weight."""
    if portfolio.capital is not None:
        AgentCapital.resolve(portfolio.capital, [a.name for a in agents])


def load_config(path: str | Path) -> BacktestConfig:
    """Read and validate a backtest YAML file (data paths relative to the file)."""
    return load_config_file(path, BacktestConfig)
