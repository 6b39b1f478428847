"""The Parquet OHLCV cache: cost of writing download pages into month files, and of range reads.

Writes ``--days`` of 1-minute bars in pages of ``--page`` bars (as ``raytrader data download``
does: each page merged into its month's file and the coverage updated), then reads the whole
range, one month and one day. No network: the bars are generated.

Run: ``.venv/bin/python benchmarks/ohlcv_cache.py --days 90 365``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from raytrader.data.ohlcv_cache import OhlcvCache, SeriesKey

MINUTE = 60_000
DAY = 1_440 * MINUTE
START = 1_704_067_200_000  # 2024-01-01


def run(days: int, page: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        cache = OhlcvCache(Path(tmp))
        key = SeriesKey("bench", "BTC/USDT", "1m")
        n = days * 1_440
        page_times: list[float] = []
        started = time.perf_counter()
        for first in range(0, n, page):
            bars = [
                (START + i * MINUTE, 100.0 + i % 7, 101.0, 99.0, 100.5, 10.0)
                for i in range(first, min(n, first + page))
            ]
            t0 = time.perf_counter()
            cache.write(key, bars)
            cache.add_coverage(key, bars[0][0], bars[-1][0] + MINUTE)
            page_times.append(time.perf_counter() - t0)
        write_s = time.perf_counter() - started
        end = START + n * MINUTE
        size = sum(f.stat().st_size for f in cache.path(key).iterdir())

        def timed_read(a: int, b: int) -> float:
            t0 = time.perf_counter()
            frame = cache.read(key, a, b)
            assert len(frame) == (b - a) // MINUTE
            return time.perf_counter() - t0

        return {
            "bars": n,
            "pages": len(page_times),
            "page_ms_mean": statistics.fmean(page_times) * 1000,
            "page_ms_max": max(page_times) * 1000,
            "write_s": write_s,
            "mb": size / 1e6,
            "read_all_ms": timed_read(START, end) * 1000,
            "read_month_ms": timed_read(START, START + 30 * DAY) * 1000,
            "read_day_ms": timed_read(START + 3 * DAY, START + 4 * DAY) * 1000,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, nargs="+", default=[30, 365])
    parser.add_argument("--page", type=int, default=1000, help="bars per page (Binance: 1000)")
    args = parser.parse_args()
    table = Table(title=f"OHLCV cache, 1m bars, pages of {args.page}")
    for col in (
        "days",
        "bars",
        "pages",
        "page ms (mean)",
        "page ms (max)",
        "write s",
        "MB",
        "read all ms",
        "read 30 d ms",
        "read 1 d ms",
    ):
        table.add_column(col, justify="right")
    for days in args.days:
        r = run(days, args.page)
        table.add_row(
            str(days),
            f"{r['bars']:,.0f}",
            f"{r['pages']:,.0f}",
            f"{r['page_ms_mean']:.1f}",
            f"{r['page_ms_max']:.1f}",
            f"{r['write_s']:.1f}",
            f"{r['mb']:.1f}",
            f"{r['read_all_ms']:.0f}",
            f"{r['read_month_ms']:.0f}",
            f"{r['read_day_ms']:.0f}",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
