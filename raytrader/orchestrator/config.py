"""What a client sends to start a session."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationInfo, model_validator

from raytrader.backtesting.config import AgentSpec, BacktestConfig, check_capital
from raytrader.data.spec import DataSpec
from raytrader.execution.ccxt_broker import CcxtBrokerConfig
from raytrader.execution.paper_broker import PaperBrokerConfig
from raytrader.portfolio.config import PortfolioConfig


class FeedSpec(BaseModel):
    """Where bars come from.

    ``replay`` plays a data set as live (offline paper trading, tests, demos); ``ccxt`` polls an
    exchange's public candles (paper trading on live data: no order ever reaches the exchange).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["replay", "ccxt"] = "replay"
    data: DataSpec | None = Field(None, description="replay: the data set")
    speed: float | None = Field(
        None, gt=0, le=1_000_000, description="replay: bars per second; omitted = at once"
    )
    exchange: str | None = Field(
        None, pattern=r"^[a-z0-9]+$", max_length=40, description="ccxt: exchange id, e.g. binance"
    )
    api_url: HttpUrl | None = Field(None, description="ccxt: base URL of a gateway or mirror")
    poll_interval: float = Field(5.0, gt=0, le=3600, description="ccxt: seconds between polls")
    stream: bool = Field(
        False,
        description="ccxt: bars from the exchange's websocket (watch_ohlcv) while caught up; "
        "REST fills the backlog, reconnects and quiet spells (poll_interval)",
    )
    ws_url: HttpUrl | None = Field(
        None, description="ccxt stream: http(s) base of a websocket gateway or mirror"
    )

    @model_validator(mode="after")
    def _fields_of_the_kind(self) -> FeedSpec:
        if self.kind == "replay" and self.data is None:
            raise ValueError("a replay feed needs `data`")
        if self.kind == "ccxt":
            if self.exchange is None:
                raise ValueError("a ccxt feed needs `exchange`")
            if self.data is not None or self.speed is not None:
                raise ValueError("`data` and `speed` are for replay feeds")
        if self.ws_url is not None and not self.stream:
            raise ValueError("`ws_url` is for ccxt feeds with `stream: true`")
        if self.stream and self.kind != "ccxt":
            raise ValueError("`stream` is for ccxt feeds")
        return self


class LiveSpec(BaseModel):
    """live mode: the account orders go to, on the feed's exchange. Keys come from the
    environment of the process that trades (``raytrader.secrets``), never from here."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sandbox: bool = Field(False, description="the exchange's test URLs (set_sandbox_mode)")
    api_urls: dict[str, HttpUrl] | None = Field(
        None,
        description="origin of the exchange's API URLs -> base of a gateway or mirror, "
        "e.g. {'https://api.binance.com': 'https://gateway.internal'}",
    )
    timeout_ms: int = Field(10_000, ge=100, le=120_000, description="per request")
    rate_limit: bool = Field(True, description="space requests by the exchange's weights")
    taker_fee: float | None = Field(
        None, ge=0, le=0.1, description="the account's taker fee; None: the market's"
    )
    retry: CcxtBrokerConfig = CcxtBrokerConfig()

    @model_validator(mode="after")
    def _origins(self) -> LiveSpec:
        for origin in self.api_urls or {}:
            if not origin.startswith(("https://", "http://")) or "/" in origin.split("://")[1]:
                raise ValueError(f"api_urls: {origin!r} is not an origin like https://host")
        return self


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
    live: LiveSpec | None = Field(None, description="live mode: the exchange account")

    @model_validator(mode="after")
    def _live_feed_needs_symbols(self) -> SessionConfig:
        if self.feed.kind == "ccxt" and (not self.symbols or not self.timeframe):
            raise ValueError("a ccxt feed needs `symbols` and `timeframe`")
        return self

    @model_validator(mode="after")
    def _capital_of_the_agents(self) -> SessionConfig:
        check_capital(self.portfolio, self.agents)
        return self

    @model_validator(mode="after")
    def _live_needs_opt_in(self, info: ValidationInfo) -> SessionConfig:
        # Live trading is opted into by whoever runs the server, never by a request alone. A
        # stored config (re-read by the component actors) was checked when it was accepted.
        stored = isinstance(info.context, dict) and info.context.get("stored")
        if self.mode == "live":
            if not stored and os.environ.get("RAYTRADER_ALLOW_LIVE") != "1":
                raise ValueError(
                    "mode 'live' sends real orders and needs an explicit opt-in: start the "
                    "server with RAYTRADER_ALLOW_LIVE=1"
                )
            if self.feed.kind != "ccxt":
                raise ValueError("mode 'live' needs a ccxt feed (the exchange it trades on)")
            if self.portfolio.exits is not None:
                raise ValueError("portfolio.exits (brackets) are not supported in mode 'live'")
        elif self.live is not None:
            raise ValueError("`live` is for sessions in mode 'live'")
        return self

    @classmethod
    def stored(cls, data: dict[str, object]) -> SessionConfig:
        """A config read back from the store (accepted before: no second opt-in check)."""
        return cls.model_validate(data, context={"stored": True})

    def data_spec(self) -> DataSpec:
        """The replay feed's data with this session's symbol and timeframe choices applied."""
        if self.feed.data is None:
            raise ValueError("this session's feed has no data set (not a replay feed)")
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
