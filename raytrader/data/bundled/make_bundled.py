"""Regenerate the bundled demo files: ``python -m raytrader.data.bundled.make_bundled [DIR]``.

Seeds are fixed, so a rerun writes the same data (and, with the same pandas and pyarrow
versions, the same bytes).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from raytrader.data.loaders import save_long, save_ohlcv
from raytrader.data.synthetic import Regime, correlated_universe, gbm_regimes

log = logging.getLogger(__name__)

UNIVERSE_SEED = 2  # chosen among the first few: a typical bull market with one long bear
UNIVERSE_BARS = 2088  # 8 years of business days
SINGLE_SEED = 21
SINGLE_BARS = 20_000

BTC_REGIMES = (
    Regime("calm_bull", drift=0.60, vol=0.50),
    Regime("volatile_bear", drift=-0.80, vol=0.90),
)
# Per hourly bar: bull spells of ~80 days, bear spells of ~40 days.
BTC_TRANSITION = ((0.9995, 0.0005), (0.001, 0.999))


def on_tick_grid(frame: pd.DataFrame, tick: float, volume_decimals: int) -> pd.DataFrame:
    """Prices rounded to ``tick`` like real quotes (it also makes the files 3x smaller).

    Rounding is monotonic, so ``low <= open, close <= high`` survives it.
    """
    out = frame.copy()
    prices = ["open", "high", "low", "close"]
    out[prices] = (frame[prices] / tick).round() * tick
    if (out["low"] <= 0).any():
        raise ValueError(f"tick {tick} rounds some prices to zero")
    out["volume"] = frame["volume"].round(volume_decimals)
    return out


def make_universe() -> dict[str, pd.DataFrame]:
    frames = correlated_universe(
        n_symbols=30, n_bars=UNIVERSE_BARS, seed=UNIVERSE_SEED, freq="1D", start="2016-01-04"
    )
    return {symbol: on_tick_grid(frame, 0.01, 0) for symbol, frame in frames.items()}


def make_single() -> pd.DataFrame:
    series = gbm_regimes(
        SINGLE_BARS,
        seed=SINGLE_SEED,
        start="2021-01-01",
        freq="1h",
        s0=29_000.0,
        regimes=BTC_REGIMES,
        transition=BTC_TRANSITION,
        base_volume=1_500.0,
        gap_frac=0.02,
    )
    return on_tick_grid(series.frame, 0.01, 4)


def make_all(out_dir: Path | None = None) -> dict[str, Path]:
    """Write both files into ``out_dir`` (default: this package's directory)."""
    target = Path(__file__).parent if out_dir is None else Path(out_dir)
    written = {
        "universe_daily": save_long(make_universe(), target / "universe_daily.parquet"),
        "btc_1h": save_ohlcv(make_single(), target / "btc_1h.parquet"),
    }
    for name, path in written.items():
        log.info("wrote %s: %s (%d bytes)", name, path, path.stat().st_size)
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_all(Path(args[0]) if args else None)


if __name__ == "__main__":
    main()
