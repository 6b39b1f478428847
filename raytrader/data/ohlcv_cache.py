"""A Parquet cache of downloaded OHLCV bars, partitioned by exchange, symbol and timeframe.

Layout (Hive-style directory names, so ``pyarrow.dataset`` or pandas read the tree as one
partitioned data set)::

    <root>/exchange=binance/symbol=BTC-USDT/timeframe=1h/2024-01.parquet
                                                        /2024-02.parquet
                                                        /_coverage.json

One file per calendar month of bar open times: a download page rewrites only the month it
falls in (at most ~44k rows for 1m bars), a range read opens only the months it overlaps, and
no compaction step is ever needed. Files are replaced atomically (write, then rename), so an
interrupted download leaves whole files.

``_coverage.json`` lists the time ranges already asked of the exchange (half-open, ms). A range
is *covered* when the exchange was asked for all of it, even where it had no bar (a gap stays a
gap: it is not asked again). Coverage is written after the bars, so a crash between the two
only makes the next download ask again for bars it has (duplicates are dropped on merge).

Reads of a covered range need no network. An optional ``FrameMemo`` (Redis in a cluster) keeps
the answers of range reads: a covered range holds closed bars only, so its answer never changes.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from raytrader.data.bar_checks import BarRow, iso_ms
from raytrader.data.loaders import OHLCV_COLUMNS, utc_index

__all__ = ["FrameMemo", "NotCached", "OhlcvCache", "SeriesKey"]

COVERAGE_FILE: Final = "_coverage.json"
_SCHEMA: Final = pa.schema(
    [pa.field("ts", pa.timestamp("ms", tz="UTC"), nullable=False)]
    + [pa.field(c, pa.float64()) for c in OHLCV_COLUMNS]
)

Interval = tuple[int, int]


class FrameMemo(Protocol):
    """A key-value store of serialized frames (``RedisFrameMemo``); misses return None."""

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes) -> None: ...


class NotCached(LookupError):
    """A read asked for a range the cache does not cover; ``missing`` lists what is not."""

    def __init__(self, key: SeriesKey, missing: Sequence[Interval]) -> None:
        self.missing = list(missing)
        spans = ", ".join(f"{iso_ms(a)} .. {iso_ms(b)}" for a, b in self.missing[:3])
        more = f" and {len(self.missing) - 3} more" if len(self.missing) > 3 else ""
        super().__init__(f"{key} is not cached for {spans}{more}: download it first")


@dataclass(frozen=True)
class SeriesKey:
    """One cached series: an exchange (ccxt id), a unified symbol and a timeframe."""

    exchange: str
    symbol: str
    timeframe: str

    def __str__(self) -> str:
        return f"{self.exchange} {self.symbol} {self.timeframe}"

    @property
    def partition(self) -> Path:
        # '/' and ':' (BTC/USDT:USDT) are not file-name characters everywhere.
        symbol = self.symbol.replace("/", "-").replace(":", "_")
        return Path(f"exchange={self.exchange}", f"symbol={symbol}", f"timeframe={self.timeframe}")


def merge_intervals(intervals: Sequence[Interval]) -> list[Interval]:
    """Sorted, non-overlapping, non-touching intervals covering the same time."""
    out: list[Interval] = []
    for a, b in sorted(i for i in intervals if i[1] > i[0]):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(start: int, end: int, covered: Sequence[Interval]) -> list[Interval]:
    """The parts of ``[start, end)`` outside ``covered`` (merged intervals)."""
    out: list[Interval] = []
    cursor = start
    for a, b in covered:
        if b <= cursor:
            continue
        if a >= end:
            break
        if a > cursor:
            out.append((cursor, min(a, end)))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor < end:
        out.append((cursor, end))
    return out


def _month(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m")


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    frame.index = utc_index(pd.DatetimeIndex(frame.pop("ts")))
    out: pd.DataFrame = frame.astype("float64")[list(OHLCV_COLUMNS)]
    return out


class OhlcvCache:
    """The Parquet cache under ``root``; ``memo`` (optional) keeps range reads (Redis)."""

    def __init__(self, root: Path | str, memo: FrameMemo | None = None) -> None:
        self.root = Path(root)
        self.memo = memo

    def path(self, key: SeriesKey) -> Path:
        """The series' directory."""
        return self.root / key.partition

    # -- coverage ------------------------------------------------------------------------------

    def coverage(self, key: SeriesKey) -> list[Interval]:
        """The ranges asked of the exchange, merged (``[start, end)`` in ms)."""
        file = self.path(key) / COVERAGE_FILE
        if not file.exists():
            return []
        raw = json.loads(file.read_text(encoding="utf-8"))
        return merge_intervals([(int(a), int(b)) for a, b in raw["intervals"]])

    def missing(self, key: SeriesKey, start_ms: int, end_ms: int) -> list[Interval]:
        """The parts of ``[start_ms, end_ms)`` not covered yet."""
        return subtract(start_ms, end_ms, self.coverage(key))

    def add_coverage(self, key: SeriesKey, start_ms: int, end_ms: int) -> None:
        """Mark ``[start_ms, end_ms)`` as asked of the exchange (after its bars are written)."""
        intervals = merge_intervals([*self.coverage(key), (start_ms, end_ms)])
        folder = self.path(key)
        folder.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"intervals": [list(i) for i in intervals]}, indent=1)
        _write_atomic(folder / COVERAGE_FILE, body.encode())

    # -- bars ----------------------------------------------------------------------------------

    def write(self, key: SeriesKey, bars: Sequence[BarRow]) -> None:
        """Merge bars (sorted or not) into the month files; a timestamp already cached keeps its
        cached bar (closed bars do not change: a later copy is a duplicate)."""
        if not bars:
            return
        folder = self.path(key)
        folder.mkdir(parents=True, exist_ok=True)
        by_month: dict[str, list[BarRow]] = {}
        for bar in bars:
            by_month.setdefault(_month(bar[0]), []).append(bar)
        for month, rows in by_month.items():
            file = folder / f"{month}.parquet"
            ts = np.array([r[0] for r in rows], dtype=np.int64)
            values = np.array([r[1:] for r in rows], dtype=np.float64).reshape(len(rows), 5)
            if file.exists():
                old = pq.read_table(file)
                old_ts = old.column("ts").cast(pa.int64()).to_numpy()
                old_values = np.column_stack([old.column(c).to_numpy() for c in OHLCV_COLUMNS])
                ts = np.concatenate([old_ts, ts])
                values = np.concatenate([old_values, values])
            # np.unique keeps each timestamp's first index: the cached bar, then answer order.
            ts, first = np.unique(ts, return_index=True)
            values = values[first]
            arrays = [pa.array(ts, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))]
            arrays += [pa.array(values[:, i]) for i in range(5)]
            sink = io.BytesIO()
            pq.write_table(pa.Table.from_arrays(arrays, schema=_SCHEMA), sink)
            _write_atomic(file, sink.getvalue())

    def bars(self, key: SeriesKey, start_ms: int, end_ms: int) -> pd.DataFrame:
        """The cached bars opening in ``[start_ms, end_ms)``, covered or not (no memo)."""
        folder = self.path(key)
        files = sorted(folder.glob("*.parquet")) if folder.exists() else []
        first, last = _month(start_ms), _month(max(start_ms, end_ms - 1))
        tables = [pq.read_table(f) for f in files if first <= f.stem <= last]
        table = pa.concat_tables(tables) if tables else _SCHEMA.empty_table()
        frame = _to_frame(table)
        lo = pd.Timestamp(start_ms, unit="ms", tz="UTC")
        hi = pd.Timestamp(end_ms, unit="ms", tz="UTC")
        return frame[(frame.index >= lo) & (frame.index < hi)]

    def read(self, key: SeriesKey, start_ms: int, end_ms: int) -> pd.DataFrame:
        """The bars opening in ``[start_ms, end_ms)`` as the canonical OHLCV frame (UTC index
        ``ts``, float64 ``open, high, low, close, volume``), without any network request.

        Raises ``NotCached`` (naming the missing ranges) unless the range is covered. With a
        memo, an answer is served from it when present and stored in it otherwise.
        """
        if end_ms <= start_ms:
            raise ValueError(f"empty range: start {iso_ms(start_ms)} is not before end")
        memo_key = f"ohlcv:{key.exchange}:{key.symbol}:{key.timeframe}:{start_ms}:{end_ms}"
        if self.memo is not None:
            blob = self.memo.get(memo_key)
            if blob is not None:
                return _to_frame(pa.ipc.open_stream(blob).read_all())
        missing = self.missing(key, start_ms, end_ms)
        if missing:
            raise NotCached(key, missing)
        frame = self.bars(key, start_ms, end_ms)
        if self.memo is not None:
            table = pa.Table.from_pandas(frame.reset_index(), schema=_SCHEMA, preserve_index=False)
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, _SCHEMA) as writer:
                writer.write_table(table)
            self.memo.set(memo_key, sink.getvalue().to_pybytes())
        return frame
