"""Application settings from the environment (``RAYTRADER_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAYTRADER_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path("data")
    runs_dir: Path = Path("runs")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_json: bool = False
