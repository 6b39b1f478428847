"""Loading, validating and saving OHLCV files (real CSV and Parquet files in tmp_path)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from raytrader.data import (
    DataValidationError,
    MarketData,
    load_long,
    load_ohlcv,
    load_universe,
    save_long,
    save_ohlcv,
    validate_ohlcv,
)

SUFFIXES = [".csv", ".parquet"]


def good_table(n: int = 6) -> pd.DataFrame:
    """A valid raw table with ISO timestamp strings, as it would sit in a file."""
    ts = pd.date_range("2024-03-01", periods=n, freq="1h", tz="UTC")
    close = 100.0 + np.arange(n, dtype=float)
    return pd.DataFrame(
        {
            "ts": [t.isoformat() for t in ts],
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": 10.0 + np.arange(n, dtype=float),
        }
    )


def write_raw(table: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        table.to_csv(path, index=False)
    else:
        table.to_parquet(path, index=False)
    return path


def expect_error(path: Path, row: int | None, *problem_parts: str) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        load_ohlcv(path)
    err = info.value
    message = str(err)
    assert err.path == str(path)
    assert str(path) in message
    assert err.row == row
    if row is not None:
        assert f"row {row}:" in message
    else:
        assert "row" not in message.split(str(path), 1)[1].split(":")[0]
    for part in problem_parts:
        assert part in err.problem
        assert part in message
    assert isinstance(err, ValueError)
    return err


# --- validation failures ----------------------------------------------------------------------


def _nan_close(t: pd.DataFrame) -> None:
    t.loc[3, "close"] = np.nan


def _nan_open(t: pd.DataFrame) -> None:
    t.loc[0, "open"] = np.nan


def _high_below_low(t: pd.DataFrame) -> None:
    t.loc[2, "high"] = t.loc[2, "low"] - 0.25


def _high_below_close(t: pd.DataFrame) -> None:
    t.loc[4, "close"] = t.loc[4, "high"] + 0.5  # high still >= low


def _high_below_open(t: pd.DataFrame) -> None:
    t.loc[1, "open"] = t.loc[1, "high"] + 0.5


def _low_above_open(t: pd.DataFrame) -> None:
    t.loc[1, "open"] = t.loc[1, "low"] - 0.5


def _low_above_close(t: pd.DataFrame) -> None:
    t.loc[5, "close"] = t.loc[5, "low"] - 0.5


def _ts_backwards(t: pd.DataFrame) -> None:
    t.loc[3, "ts"] = "2024-03-01T00:30:00+00:00"  # before row 2 (02:00)


def _duplicate_bar(t: pd.DataFrame) -> None:
    t.loc[5, "ts"] = t.loc[4, "ts"]


def _negative_volume(t: pd.DataFrame) -> None:
    t.loc[2, "volume"] = -1.0


def _nan_volume(t: pd.DataFrame) -> None:
    t.loc[4, "volume"] = np.nan


def _bad_timestamp(t: pd.DataFrame) -> None:
    t.loc[1, "ts"] = "yesterday-ish"


ROW_CASES: list[tuple[str, Callable[[pd.DataFrame], None], int, tuple[str, ...]]] = [
    ("nan_close", _nan_close, 3, ("NaN price", "'close'")),
    ("nan_open", _nan_open, 0, ("NaN price", "'open'")),
    ("high_below_low", _high_below_low, 2, ("high < low",)),
    ("high_below_close", _high_below_close, 4, ("high < max(open, close)",)),
    ("high_below_open", _high_below_open, 1, ("high < max(open, close)",)),
    ("low_above_open", _low_above_open, 1, ("low > min(open, close)",)),
    ("low_above_close", _low_above_close, 5, ("low > min(open, close)",)),
    ("timestamps_backwards", _ts_backwards, 3, ("timestamps not increasing", "row 2")),
    ("duplicate_bar", _duplicate_bar, 5, ("duplicate bar", "same timestamp as row 4")),
    ("negative_volume", _negative_volume, 2, ("negative volume",)),
    ("nan_volume", _nan_volume, 4, ("NaN volume",)),
    ("bad_timestamp", _bad_timestamp, 1, ("unparseable timestamp", "yesterday-ish")),
]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("corrupt", "row", "parts"),
    [c[1:] for c in ROW_CASES],
    ids=[c[0] for c in ROW_CASES],
)
def test_row_problems_name_file_row_and_problem(
    tmp_path: Path,
    suffix: str,
    corrupt: Callable[[pd.DataFrame], None],
    row: int,
    parts: tuple[str, ...],
) -> None:
    table = good_table()
    corrupt(table)
    path = write_raw(table, tmp_path / f"bars{suffix}")
    expect_error(path, row, *parts)


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_columns_are_all_listed(tmp_path: Path, suffix: str) -> None:
    path = write_raw(good_table().drop(columns=["close", "volume"]), tmp_path / f"x{suffix}")
    err = expect_error(path, None, "missing columns", "'close'", "'volume'")
    assert "'open'" not in err.problem.split(";")[0]


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_missing_timestamp_column(tmp_path: Path, suffix: str) -> None:
    path = write_raw(good_table().rename(columns={"ts": "when"}), tmp_path / f"x{suffix}")
    expect_error(path, None, "missing columns", "ts (or timestamp/date/datetime/time)")


def test_non_numeric_price_in_csv(tmp_path: Path) -> None:
    table = good_table().astype({"high": object})
    table.loc[2, "high"] = "n/a?"
    path = write_raw(table, tmp_path / "x.csv")
    expect_error(path, 2, "non-numeric high", "n/a?")


def test_empty_files(tmp_path: Path) -> None:
    header_only = write_raw(good_table().iloc[:0], tmp_path / "h.csv")
    expect_error(header_only, None, "no data rows")
    blank = tmp_path / "blank.csv"
    blank.write_text("")
    expect_error(blank, None, "empty file")


def test_unsupported_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unsupported file type"):
        load_ohlcv(tmp_path / "bars.xlsx")
    with pytest.raises(FileNotFoundError):
        load_ohlcv(tmp_path / "nope.csv")


def test_error_survives_pickling() -> None:
    import pickle

    err = DataValidationError("/data/x.csv", "high < low", 7)
    back = pickle.loads(pickle.dumps(err))
    assert (back.path, back.row, back.problem, str(back)) == (
        err.path,
        err.row,
        err.problem,
        str(err),
    )


# --- timestamps ---------------------------------------------------------------------------------


def test_canonical_output(tmp_path: Path) -> None:
    table = good_table()[["volume", "close", "ts", "low", "high", "open"]]  # any column order
    table["extra"] = "ignored"
    df = load_ohlcv(write_raw(table, tmp_path / "x.csv"))
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dt == np.float64 for dt in df.dtypes)
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.name == "ts"
    assert str(df.index.tz) == "UTC"
    assert df.index.freq is None
    assert df.index[0] == pd.Timestamp("2024-03-01", tz="UTC")


@pytest.mark.parametrize("name", ["ts", "Timestamp", "DATE", "datetime", "Time"])
def test_timestamp_column_names_case_insensitive(tmp_path: Path, name: str) -> None:
    table = good_table().rename(columns={"ts": name, "close": "Close"})
    df = load_ohlcv(write_raw(table, tmp_path / "x.csv"))
    assert len(df) == 6
    assert df["close"].iloc[0] == 100.0


def test_naive_iso_is_utc_and_aware_iso_is_converted(tmp_path: Path) -> None:
    table = good_table(3)
    table["ts"] = ["2024-03-01 00:00:00", "2024-03-01T03:00:00+02:00", "2024-03-01T02:00:00Z"]
    df = load_ohlcv(write_raw(table, tmp_path / "x.csv"))
    expected = pd.DatetimeIndex(
        ["2024-03-01 00:00", "2024-03-01 01:00", "2024-03-01 02:00"], tz="UTC", name="ts"
    )
    pd.testing.assert_index_equal(df.index, expected.as_unit("ns"))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_epoch_milliseconds(tmp_path: Path, suffix: str) -> None:
    table = good_table(3)
    table["ts"] = [1_700_000_000_000, 1_700_000_060_000, 1_700_000_120_000]
    df = load_ohlcv(write_raw(table, tmp_path / f"x{suffix}"))
    assert df.index[0] == pd.Timestamp(1_700_000_000_000, unit="ms", tz="UTC")
    assert (df.index[1:] - df.index[:-1] == pd.Timedelta(minutes=1)).all()


def test_parquet_native_datetimes(tmp_path: Path) -> None:
    table = good_table(3)
    table["ts"] = pd.date_range("2024-01-01", periods=3, freq="D")  # naive -> UTC
    naive = load_ohlcv(write_raw(table, tmp_path / "naive.parquet"))
    assert naive.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    table["ts"] = pd.date_range("2024-01-01", periods=3, freq="D", tz="America/New_York")
    aware = load_ohlcv(write_raw(table, tmp_path / "aware.parquet"))
    assert aware.index[0] == pd.Timestamp("2024-01-01 05:00", tz="UTC")


def test_parquet_written_with_datetime_index(tmp_path: Path) -> None:
    frame = load_ohlcv(write_raw(good_table(), tmp_path / "x.csv"))
    path = tmp_path / "indexed.parquet"
    frame.to_parquet(path)  # index kept by pandas, not a column
    pd.testing.assert_frame_equal(load_ohlcv(path), frame)


def test_fractional_epoch_rejected(tmp_path: Path) -> None:
    table = good_table(3)
    table["ts"] = [1.7e12, 1.7e12 + 60_000.5, 1.7e12 + 120_000]
    expect_error(write_raw(table, tmp_path / "x.csv"), 1, "not integer epoch milliseconds")


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_save_load_round_trip(
    tmp_path: Path, suffix: str, gbm_frame: Callable[..., pd.DataFrame]
) -> None:
    frame = gbm_frame(500, seed=3, freq="15min")
    path = save_ohlcv(frame, tmp_path / "sub" / f"BTC{suffix}")
    assert path.exists()
    back = load_ohlcv(path)
    expected = validate_ohlcv(frame)
    pd.testing.assert_frame_equal(back, expected, check_exact=True)
    np.testing.assert_array_equal(back["close"].to_numpy(), frame["close"].to_numpy())


def test_save_refuses_invalid_frame(tmp_path: Path, gbm_frame: Callable[..., pd.DataFrame]) -> None:
    frame = gbm_frame(20)
    frame.iloc[7, frame.columns.get_loc("volume")] = -5.0
    path = tmp_path / "bad.parquet"
    with pytest.raises(DataValidationError) as info:
        save_ohlcv(frame, path)
    assert info.value.row == 7
    assert "negative volume" in str(info.value)
    assert not path.exists()


def test_load_universe_dir_and_list(tmp_path: Path, gbm_frame: Callable[..., pd.DataFrame]) -> None:
    a, b = gbm_frame(50, seed=1), gbm_frame(40, seed=2)
    save_ohlcv(a, tmp_path / "AAA.csv")
    save_ohlcv(b, tmp_path / "BBB.parquet")
    (tmp_path / "notes.txt").write_text("not data")
    frames = load_universe(tmp_path)
    assert list(frames) == ["AAA", "BBB"]
    pd.testing.assert_frame_equal(frames["BBB"], validate_ohlcv(b))
    listed = load_universe([tmp_path / "BBB.parquet", str(tmp_path / "AAA.csv")])
    assert list(listed) == ["BBB", "AAA"]
    data = MarketData.from_frames(frames)
    assert data.symbols == ("AAA", "BBB")
    assert data.n_bars == 50


def test_load_universe_rejects_duplicate_symbols(
    tmp_path: Path, gbm_frame: Callable[..., pd.DataFrame]
) -> None:
    save_ohlcv(gbm_frame(10), tmp_path / "AAA.csv")
    save_ohlcv(gbm_frame(10), tmp_path / "AAA.parquet")
    with pytest.raises(ValueError, match="'AAA' comes from both"):
        load_universe(tmp_path)


def test_load_universe_names_the_bad_file(tmp_path: Path) -> None:
    table = good_table()
    _negative_volume(table)
    write_raw(good_table(), tmp_path / "AAA.csv")
    bad = write_raw(table, tmp_path / "BBB.csv")
    with pytest.raises(DataValidationError) as info:
        load_universe(tmp_path)
    assert info.value.path == str(bad)
    assert info.value.row == 2


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_long_round_trip(
    tmp_path: Path, suffix: str, gbm_frame: Callable[..., pd.DataFrame]
) -> None:
    frames = {"X": gbm_frame(30, seed=1), "Y": gbm_frame(20, seed=2), "Z": gbm_frame(25, seed=3)}
    path = save_long(frames, tmp_path / f"bundle{suffix}")
    back = load_long(path)
    assert list(back) == ["X", "Y", "Z"]
    for symbol, frame in frames.items():
        pd.testing.assert_frame_equal(back[symbol], validate_ohlcv(frame), check_exact=True)


def test_long_file_interleaved_rows_and_error_rows(tmp_path: Path) -> None:
    a, b = good_table(4), good_table(4)
    a["symbol"], b["symbol"] = "A", "B"
    # Rows A0 B0 A1 B1 ...: time order holds within each symbol.
    table = pd.concat([a, b]).sort_index(kind="stable").reset_index(drop=True)
    path = write_raw(table, tmp_path / "long.parquet")
    frames = load_long(path)
    assert sorted(frames) == ["A", "B"]
    assert len(frames["B"]) == 4
    table.loc[5, "high"] = 0.0  # B's row 2 in the file's row 5
    write_raw(table, path)
    with pytest.raises(DataValidationError) as info:
        load_long(path)
    err = info.value
    assert err.path == str(path)
    assert err.row == 5
    assert "symbol 'B'" in err.problem
    assert "high < low" in str(err)


def test_long_file_requires_symbol_column(tmp_path: Path) -> None:
    path = write_raw(good_table(), tmp_path / "long.parquet")
    with pytest.raises(DataValidationError, match=r"missing columns .*'symbol'"):
        load_long(path)
