"""Reading and writing OHLCV files (CSV or Parquet), with validation that names file, row and
problem.

Every loader returns the canonical frame: a tz-aware UTC ``DatetimeIndex`` named ``ts``,
strictly increasing, and float64 columns ``open, high, low, close, volume`` in that order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NoReturn

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "OHLCV_COLUMNS",
    "TIMESTAMP_COLUMNS",
    "DataValidationError",
    "load_long",
    "load_ohlcv",
    "load_universe",
    "save_long",
    "save_ohlcv",
    "utc_index",
    "validate_ohlcv",
]

OHLCV_COLUMNS = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
TIMESTAMP_COLUMNS = ("ts", "timestamp", "date", "datetime", "time")
SYMBOL_COLUMN = "symbol"
CSV_SUFFIXES = frozenset({".csv"})
PARQUET_SUFFIXES = frozenset({".parquet", ".pq"})
IntArray = npt.NDArray[np.int64]


def utc_index(index: pd.DatetimeIndex, name: str = "ts") -> pd.DatetimeIndex:
    """``index`` as tz-aware UTC, nanosecond unit, named ``name`` and without a ``freq``.

    One canonical form, so frames from files, generators and resampling compare equal.
    """
    aware = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    naive = aware.tz_localize(None).as_unit("ns").to_numpy()
    return pd.DatetimeIndex(naive, name=name).tz_localize("UTC")


class DataValidationError(ValueError):
    """A data file (or frame) that is not valid OHLCV.

    ``row`` is the 0-based data row (header excluded) or ``None`` when the problem is not
    about one row (a missing column, an empty file).
    """

    def __init__(self, path: str | Path, problem: str, row: int | None = None) -> None:
        self.path = str(path)
        self.row = row
        self.problem = problem
        where = f"{self.path}: row {row}" if row is not None else self.path
        super().__init__(f"{where}: {problem}")

    def __reduce__(self) -> tuple[type[DataValidationError], tuple[str, str, int | None]]:
        # Keeps the attributes when the error crosses a process boundary (pickling).
        return (type(self), (self.path, self.problem, self.row))


# ---------------------------------------------------------------------------------------------
# Low level: raw table -> canonical frame
# ---------------------------------------------------------------------------------------------


def _file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise ValueError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .parquet)")


def _read_table(path: Path) -> pd.DataFrame:
    kind = _file_kind(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if kind == "csv":
        try:
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            raise DataValidationError(path, "empty file (no header, no rows)") from None
    table = pd.read_parquet(path)
    if isinstance(table.index, pd.DatetimeIndex):  # a frame written with its index kept
        table = table.reset_index()
    return table


def _normalize_columns(table: pd.DataFrame, path: str, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Lower-case column names, find the timestamp column, report every missing column."""
    lowered = {str(c): str(c).strip().lower() for c in table.columns}
    seen: dict[str, str] = {}
    for original, low in lowered.items():
        if low in seen:
            raise DataValidationError(
                path, f"duplicate column {original!r} (also {seen[low]!r}, names are case-blind)"
            )
        seen[low] = original
    table = table.rename(columns=lowered)
    ts_cols = [c for c in TIMESTAMP_COLUMNS if c in table.columns]
    missing = [c for c in (*extra, *OHLCV_COLUMNS) if c not in table.columns]
    if not ts_cols:
        missing.insert(0, "ts (or timestamp/date/datetime/time)")
    if missing:
        raise DataValidationError(
            path,
            f"missing columns {missing}; found {[str(c) for c in lowered]}",
        )
    if len(ts_cols) > 1:
        raise DataValidationError(path, f"ambiguous timestamp columns {ts_cols}; keep one")
    return table.rename(columns={ts_cols[0]: "ts"})


def _parse_timestamps(raw: pd.Series, path: str, rows: IntArray) -> pd.DatetimeIndex:
    """ISO strings (naive read as UTC, aware converted), datetimes, or integer epoch ms."""
    missing = raw.isna().to_numpy()
    if missing.any():
        i = int(np.argmax(missing))
        raise DataValidationError(path, "missing timestamp", int(rows[i]))
    if pd.api.types.is_bool_dtype(raw.dtype):
        raise DataValidationError(path, f"timestamp column has boolean dtype {raw.dtype}")
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy()
        fractional = values != np.floor(values)
        if fractional.any():
            i = int(np.argmax(fractional))
            raise DataValidationError(
                path, f"timestamp {values[i]!r} is not integer epoch milliseconds", int(rows[i])
            )
        parsed = pd.to_datetime(values.astype(np.int64), unit="ms", utc=True)
    elif isinstance(raw.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(raw.dtype):
        parsed = pd.DatetimeIndex(raw)
        parsed = parsed.tz_localize("UTC") if parsed.tz is None else parsed.tz_convert("UTC")
    else:
        text = raw.astype(str)
        coerced = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        bad = coerced.isna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise DataValidationError(
                path, f"unparseable timestamp {text.iloc[i]!r} (expected ISO 8601)", int(rows[i])
            )
        parsed = pd.DatetimeIndex(coerced)
    return utc_index(pd.DatetimeIndex(parsed))


def _numeric(table: pd.DataFrame, path: str, rows: IntArray) -> dict[str, npt.NDArray[np.float64]]:
    out: dict[str, npt.NDArray[np.float64]] = {}
    for name in OHLCV_COLUMNS:
        col = table[name]
        if pd.api.types.is_bool_dtype(col.dtype):
            raise DataValidationError(path, f"column {name!r} is boolean, expected numbers")
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(values) & col.notna().to_numpy()
        if bad.any():
            i = int(np.argmax(bad))
            raise DataValidationError(path, f"non-numeric {name} {col.iloc[i]!r}", int(rows[i]))
        out[name] = values
    return out


def _first(mask: npt.NDArray[np.bool_]) -> int | None:
    return int(np.argmax(mask)) if mask.any() else None


def _check_values(
    index: pd.DatetimeIndex,
    cols: Mapping[str, npt.NDArray[np.float64]],
    path: str,
    rows: IntArray,
) -> None:
    """Raise on the first invalid bar: one check at a time, in a fixed order."""

    def fail(i: int, problem: str) -> NoReturn:
        raise DataValidationError(path, f"{problem} (bar at {index[i].isoformat()})", int(rows[i]))

    for name in PRICE_COLUMNS:
        i = _first(~np.isfinite(cols[name]))
        if i is not None:
            kind = "NaN" if np.isnan(cols[name][i]) else "infinite"
            fail(i, f"{kind} price in column {name!r}")
    volume = cols["volume"]
    i = _first(~np.isfinite(volume))
    if i is not None:
        fail(i, f"{'NaN' if np.isnan(volume[i]) else 'infinite'} volume")
    o, h, lo, c = cols["open"], cols["high"], cols["low"], cols["close"]
    i = _first(h < lo)
    if i is not None:
        fail(i, f"high < low (high={h[i]!r}, low={lo[i]!r})")
    i = _first(h < np.maximum(o, c))
    if i is not None:
        fail(i, f"high < max(open, close) (high={h[i]!r}, open={o[i]!r}, close={c[i]!r})")
    i = _first(lo > np.minimum(o, c))
    if i is not None:
        fail(i, f"low > min(open, close) (low={lo[i]!r}, open={o[i]!r}, close={c[i]!r})")
    i = _first(volume < 0)
    if i is not None:
        fail(i, f"negative volume {volume[i]!r}")
    if len(index) > 1:
        step = np.diff(index.asi8)
        i = _first(step <= 0)
        if i is not None:
            j = i + 1
            if step[i] == 0:
                fail(j, f"duplicate bar: same timestamp as row {int(rows[i])}")
            fail(
                j,
                f"timestamps not increasing: {index[j].isoformat()} after "
                f"{index[i].isoformat()} (row {int(rows[i])})",
            )


def _to_frame(table: pd.DataFrame, path: str, rows: IntArray | None = None) -> pd.DataFrame:
    """Validated canonical frame from a table with ``ts`` and OHLCV columns."""
    if rows is None:
        rows = np.arange(len(table), dtype=np.int64)
    index = _parse_timestamps(table["ts"], path, rows)
    cols = _numeric(table, path, rows)
    _check_values(index, cols, path, rows)
    return pd.DataFrame(cols, index=index, columns=list(OHLCV_COLUMNS))


def validate_ohlcv(df: pd.DataFrame, path: str | Path = "<frame>") -> pd.DataFrame:
    """Validate a frame (``ts`` index or column) and return it in canonical form.

    Raises ``DataValidationError`` naming ``path`` (a label for in-memory frames), the row and
    the problem.
    """
    table = df.reset_index() if isinstance(df.index, pd.DatetimeIndex) else df
    if isinstance(df.index, pd.DatetimeIndex) and df.index.name is None:
        table = table.rename(columns={"index": "ts"})
    table = _normalize_columns(table, str(path))
    return _to_frame(table, str(path))


# ---------------------------------------------------------------------------------------------
# Public I/O
# ---------------------------------------------------------------------------------------------


def load_ohlcv(path: str | Path) -> pd.DataFrame:
    """Read one symbol's OHLCV from CSV or Parquet (chosen by suffix) and validate it."""
    path = Path(path)
    table = _read_table(path)
    table = _normalize_columns(table, str(path))
    if table.empty:
        raise DataValidationError(path, "no data rows")
    return _to_frame(table, str(path))


def _write(table: pd.DataFrame, path: Path) -> None:
    kind = _file_kind(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False, engine="pyarrow", compression="zstd")


def save_ohlcv(df: pd.DataFrame, path: str | Path) -> Path:
    """Validate ``df`` and write it as Parquet or CSV (by suffix); returns the path."""
    path = Path(path)
    frame = validate_ohlcv(df, path)
    _write(frame.reset_index(), path)
    return path


def load_universe(paths_or_dir: str | Path | Iterable[str | Path]) -> dict[str, pd.DataFrame]:
    """Load several one-symbol files; the symbol is the file stem (``AAPL.csv`` -> ``AAPL``).

    A directory loads every ``.csv``/``.parquet``/``.pq`` file in it, in name order.
    """
    if isinstance(paths_or_dir, str | Path):
        root = Path(paths_or_dir)
        if root.is_dir():
            paths = sorted(
                p
                for p in root.iterdir()
                if p.is_file() and p.suffix.lower() in CSV_SUFFIXES | PARQUET_SUFFIXES
            )
            if not paths:
                raise FileNotFoundError(f"{root}: no .csv or .parquet files")
        else:
            paths = [root]
    else:
        paths = [Path(p) for p in paths_or_dir]
    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, Path] = {}
    for p in paths:
        symbol = p.stem
        if symbol in frames:
            raise ValueError(f"symbol {symbol!r} comes from both {sources[symbol]} and {p}")
        frames[symbol] = load_ohlcv(p)
        sources[symbol] = p
    return frames


def load_long(path: str | Path) -> dict[str, pd.DataFrame]:
    """Read a multi-symbol "long" file (``symbol`` column plus ts and OHLCV) as symbol -> frame.

    Symbols keep their order of first appearance; rows of one symbol may be interleaved with
    others but must be in time order. Error rows refer to rows of the file.
    """
    path = Path(path)
    table = _read_table(path)
    table = _normalize_columns(table, str(path), extra=(SYMBOL_COLUMN,))
    if table.empty:
        raise DataValidationError(path, "no data rows")
    symbols = table[SYMBOL_COLUMN]
    if symbols.isna().any():
        i = int(np.argmax(symbols.isna().to_numpy()))
        raise DataValidationError(path, "missing symbol", i)
    keys = symbols.astype(str).to_numpy()
    frames: dict[str, pd.DataFrame] = {}
    order = pd.unique(keys)
    positions = pd.Series(np.arange(len(keys), dtype=np.int64)).groupby(keys, sort=False)
    for symbol in order:
        rows = positions.get_group(symbol).to_numpy()
        part = table.iloc[rows].reset_index(drop=True)
        try:
            frames[str(symbol)] = _to_frame(part, str(path), rows)
        except DataValidationError as exc:
            raise DataValidationError(path, f"symbol {symbol!r}: {exc.problem}", exc.row) from None
    return frames


def save_long(frames: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """Write symbol -> frame as one long Parquet/CSV file, rows grouped by symbol."""
    path = Path(path)
    if not frames:
        raise ValueError("save_long needs at least one symbol")
    parts = []
    for symbol, df in frames.items():
        try:
            frame = validate_ohlcv(df, path).reset_index()
        except DataValidationError as exc:
            raise DataValidationError(path, f"symbol {symbol!r}: {exc.problem}", exc.row) from None
        frame.insert(0, SYMBOL_COLUMN, symbol)
        parts.append(frame)
    _write(pd.concat(parts, ignore_index=True), path)
    return path
