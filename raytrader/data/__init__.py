"""The data layer: loading and validating OHLCV files, synthetic markets, resampling,
vectorized indicators, bundled demo data and the aligned ``MarketData`` arrays."""

from raytrader.data.bundled import bundled_path, load_bundled_single, load_bundled_universe
from raytrader.data.indicators import (
    atr,
    bollinger,
    ema,
    exp_regression_momentum,
    macd,
    rsi,
    sma,
    true_range,
)
from raytrader.data.loaders import (
    OHLCV_COLUMNS,
    DataValidationError,
    load_long,
    load_ohlcv,
    load_universe,
    save_long,
    save_ohlcv,
    validate_ohlcv,
)
from raytrader.data.market_data import MarketData
from raytrader.data.resample import infer_timeframe, resample_ohlcv, timeframe_to_timedelta
from raytrader.data.synthetic import (
    Regime,
    RegimeSeries,
    SyntheticUniverse,
    correlated_universe,
    gbm_regimes,
    synthetic_universe,
)

__all__ = [
    "OHLCV_COLUMNS",
    "DataValidationError",
    "MarketData",
    "Regime",
    "RegimeSeries",
    "SyntheticUniverse",
    "atr",
    "bollinger",
    "bundled_path",
    "correlated_universe",
    "ema",
    "exp_regression_momentum",
    "gbm_regimes",
    "infer_timeframe",
    "load_bundled_single",
    "load_bundled_universe",
    "load_long",
    "load_ohlcv",
    "load_universe",
    "macd",
    "resample_ohlcv",
    "rsi",
    "save_long",
    "save_ohlcv",
    "sma",
    "synthetic_universe",
    "timeframe_to_timedelta",
    "true_range",
    "validate_ohlcv",
]
