"""Application settings from the environment (``RAYTRADER_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAYTRADER_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(
        default_factory=lambda: Path.home() / ".raytrader",
        description="embedded store (state.db) and artifacts",
    )
    runs_dir: Path = Path("runs")
    redis_url: str | None = Field(None, description="redis://... selects the Redis store")
    api_key: SecretStr | None = Field(None, description="when set, required as X-API-Key")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False

    @property
    def store_url(self) -> str | None:
        return self.redis_url
