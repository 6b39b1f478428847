"""Where a run's market data comes from: bundled sets, files, the synthetic generator, or the
downloaded OHLCV cache."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from raytrader.data.market_data import MarketData
from raytrader.domain.time import to_utc


class SyntheticSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["single", "universe"] = "single"
    n_bars: int = Field(5000, ge=10, le=50_000_000)
    seed: int = 7
    freq: str = "1D"
    n_symbols: int = Field(30, ge=1, le=2000, description="universe only")
    symbol: str = "SYN"


class CachedSpec(BaseModel):
    """Bars downloaded by ``raytrader data download``, read from its Parquet cache (no
    network); the data spec's ``symbols``, ``start`` and ``end`` say which."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exchange: str = Field(pattern=r"^[a-z0-9]+$", max_length=40, description="ccxt exchange id")
    timeframe: str = Field(description="the timeframe downloaded, e.g. 1h")
    root: Path | None = Field(None, description="the cache's root (default: DATA_DIR/ohlcv)")


class DataSpec(BaseModel):
    """Exactly one of ``bundled``, ``path``, ``synthetic`` and ``cache``; then optional
    filters (``cache`` needs ``symbols``, ``start`` and ``end``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bundled: Literal["universe_daily", "btc_1h"] | None = None
    path: Path | None = Field(None, description="a CSV/Parquet file or a directory of them")
    synthetic: SyntheticSpec | None = None
    cache: CachedSpec | None = None
    symbols: list[str] | None = None
    start: datetime | None = None
    end: datetime | None = None
    timeframe: str | None = Field(None, description="resample to this timeframe, e.g. 1h, 1d")

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        sources = ("bundled", "path", "synthetic", "cache")
        given = [k for k in sources if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one data source of {', '.join(sources)} (got {given or 'none'})"
            )
        if self.cache is not None:
            lacking = [k for k in ("symbols", "start", "end") if not getattr(self, k)]
            if lacking:
                raise ValueError(f"data from the cache needs {', '.join(lacking)}")
        return self

    def relative_to(self, base: Path) -> DataSpec:
        """Resolve a relative ``path`` (or cache root) against the config file's directory."""
        if self.cache is not None and self.cache.root and not self.cache.root.is_absolute():
            cache = self.cache.model_copy(update={"root": base / self.cache.root})
            return self.model_copy(update={"cache": cache})
        if self.path is None or self.path.is_absolute():
            return self
        return self.model_copy(update={"path": base / self.path})

    def _cached_frames(self) -> dict[str, pd.DataFrame]:
        from raytrader.data.ohlcv_cache import NotCached, OhlcvCache, SeriesKey
        from raytrader.settings import Settings

        assert self.cache is not None and self.symbols and self.start and self.end
        spec = self.cache
        cache = OhlcvCache(spec.root or Settings().data_dir / "ohlcv")
        start = int(pd.Timestamp(to_utc(self.start)).value // 1_000_000)
        end = int(pd.Timestamp(to_utc(self.end)).value // 1_000_000)
        frames = {}
        for symbol in self.symbols:
            try:
                frames[symbol] = cache.read(
                    SeriesKey(spec.exchange, symbol, spec.timeframe), start, end
                )
            except NotCached as exc:
                raise ValueError(
                    f"{exc} (raytrader data download --exchange {spec.exchange} --symbol "
                    f"{symbol} --timeframe {spec.timeframe} --since {self.start.isoformat()} "
                    f"--until {self.end.isoformat()})"
                ) from None
        return frames

    def frames(self) -> dict[str, pd.DataFrame]:
        from raytrader.data import bundled, loaders, synthetic

        if self.bundled == "universe_daily":
            frames = bundled.load_bundled_universe()
        elif self.bundled == "btc_1h":
            frames = {"BTC/USDT": bundled.load_bundled_single()}
        elif self.cache is not None:
            frames = self._cached_frames()
        elif self.path is not None:
            if self.path.is_dir():
                frames = loaders.load_universe(self.path)
            elif self.path.suffix == ".parquet" and _is_long(self.path):
                frames = loaders.load_long(self.path)
            else:
                frames = {self.path.stem: loaders.load_ohlcv(self.path)}
        else:
            assert self.synthetic is not None
            s = self.synthetic
            if s.kind == "single":
                gen = synthetic.gbm_regimes(s.n_bars, seed=s.seed, freq=s.freq)
                frames = {s.symbol: gen.frame}
            else:
                frames = synthetic.correlated_universe(
                    n_symbols=s.n_symbols, n_bars=s.n_bars, seed=s.seed, freq=s.freq
                )
        if self.symbols is not None:
            missing = sorted(set(self.symbols) - set(frames))
            if missing:
                raise ValueError(f"symbols {missing} are not in the data (have {sorted(frames)})")
            frames = {s: frames[s] for s in self.symbols}
        out = {}
        for symbol, frame in frames.items():
            if self.start is not None:
                frame = frame[frame.index >= pd.Timestamp(to_utc(self.start))]
            if self.end is not None:
                frame = frame[frame.index < pd.Timestamp(to_utc(self.end))]
            if self.timeframe is not None:
                from raytrader.data.resample import resample_ohlcv

                frame = resample_ohlcv(frame, self.timeframe)
            out[symbol] = frame
        return out

    def load(self) -> MarketData:
        return MarketData.from_frames(self.frames())


def _is_long(path: Path) -> bool:
    import pyarrow.parquet as pq

    return "symbol" in pq.read_schema(path).names
