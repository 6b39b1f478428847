"""Demo data shipped inside the package (regenerate with ``python -m
raytrader.data.bundled.make_bundled``).

- ``universe_daily.parquet``: 30 synthetic stocks ``S00..S29`` and their index ``INDEX``, ~8
  years of business days (long format, a ``symbol`` column).
- ``btc_1h.parquet``: one BTC-like symbol, 20,000 hourly bars with bull/bear regimes.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pandas as pd

from raytrader.data.loaders import load_long, load_ohlcv

__all__ = [
    "BUNDLED_FILES",
    "SINGLE_FILE",
    "UNIVERSE_FILE",
    "bundled_path",
    "load_bundled_single",
    "load_bundled_universe",
]

UNIVERSE_FILE = "universe_daily.parquet"
SINGLE_FILE = "btc_1h.parquet"
BUNDLED_FILES = (UNIVERSE_FILE, SINGLE_FILE)


def bundled_path(name: str) -> Path:
    """Path of a bundled file, by file name or stem (``"btc_1h"`` or ``"btc_1h.parquet"``)."""
    file_name = name if name.endswith(".parquet") else f"{name}.parquet"
    if file_name not in BUNDLED_FILES:
        raise KeyError(f"no bundled data set {name!r}; have {list(BUNDLED_FILES)}")
    resource = files(__name__).joinpath(file_name)
    # Installed wheels unpack to the file system, so the resource is a real path.
    path = Path(str(resource))
    if not path.is_file():
        raise FileNotFoundError(f"bundled file {file_name} is missing from {path.parent}")
    return path


def load_bundled_universe() -> dict[str, pd.DataFrame]:
    """The daily demo universe: symbol -> OHLCV frame (30 stocks and ``INDEX``)."""
    return load_long(bundled_path(UNIVERSE_FILE))


def load_bundled_single() -> pd.DataFrame:
    """The hourly BTC-like demo series as one OHLCV frame."""
    return load_ohlcv(bundled_path(SINGLE_FILE))
