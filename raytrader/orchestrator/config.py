"""What a client sends to start a session."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.backtesting.config import AgentSpec, BacktestConfig
from raytrader.data.spec import DataSpec
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import PortfolioConfig


class FeedSpec(BaseModel):
    """Where bars come from. ``replay`` plays a data set as live (offline paper trading)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["replay"] = "replay"
    data: DataSpec
    speed: float | None = Field(
        None, gt=0, le=1_000_000, description="bars per second; omitted = as fast as possible"
    )


class SessionConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("session", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    mode: Literal["paper", "live"] = "paper"
    agents: list[AgentSpec] = Field(min_length=1, max_length=20)
    symbols: list[str] | None = Field(None, min_length=1, description="subset of the feed's")
    timeframe: str | None = Field(None, description="resample the feed, e.g. 1h")
    initial_cash: float = Field(100_000.0, gt=0, le=1e12, description="capital")
    broker: PaperBrokerConfig = PaperBrokerConfig()
    portfolio: PortfolioConfig = PortfolioConfig()
    feed: FeedSpec

    @model_validator(mode="after")
    def _paper_only(self) -> SessionConfig:
        if self.mode == "live":
            raise ValueError(
                "mode 'live' needs a live broker and RAYTRADER_ALLOW_LIVE=1; this server "
                "runs paper sessions only"
            )
        return self

    def data_spec(self) -> DataSpec:
        """The feed's data with this session's symbol and timeframe choices applied."""
        update: dict[str, object] = {}
        if self.symbols is not None:
            update["symbols"] = self.symbols
        if self.timeframe is not None:
            update["timeframe"] = self.timeframe
        return self.feed.data.model_copy(update=update)

    def as_backtest(self) -> BacktestConfig:
        """The backtest of the same agents, data and costs (parity with a replayed session)."""
        return BacktestConfig(
            name=self.name,
            data=self.data_spec(),
            agents=self.agents,
            initial_cash=self.initial_cash,
            broker=self.broker,
            portfolio=self.portfolio,
        )
