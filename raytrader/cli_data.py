"""``raytrader data download``: historical bars from an exchange (ccxt) into the Parquet cache."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from raytrader.log import configure_logging
from raytrader.settings import Settings

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

data_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Market data.")

# Reports list at most this many gaps and duplicates (the counts are always whole).
_LISTED = 20


def parse_time(text: str, option: str) -> int:
    """An ISO date or date-time (naive means UTC) as ms since the epoch; the error names the
    option."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO date or date-time (2024-01-01, 2024-01-01T12:00)",
            param_hint=option,
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@data_app.command()
def download(
    exchange: Annotated[str, typer.Option(help="ccxt exchange id, e.g. binance")],
    symbol: Annotated[str, typer.Option(help="unified symbol, e.g. BTC/USDT")],
    since: Annotated[str, typer.Option(help="first bar's open time, ISO (UTC if no zone)")],
    timeframe: Annotated[str, typer.Option(help="bar length as the exchange names it")] = "1h",
    until: Annotated[
        str | None, typer.Option(help="end of the range, excluded (default: now)")
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="the cache's root (default: DATA_DIR/ohlcv)")
    ] = None,
    api_url: Annotated[
        str | None, typer.Option(help="base URL replacing the exchange's API host (a mirror)")
    ] = None,
    page_limit: Annotated[
        int | None, typer.Option(min=1, help="bars per request (default: the exchange's cap)")
    ] = None,
    retries: Annotated[int, typer.Option(min=1, help="tries per request")] = 5,
    retry_base: Annotated[
        float, typer.Option(min=0.001, help="first backoff in seconds (doubles)")
    ] = 1.0,
) -> None:
    """Download bars into the Parquet cache (only what it lacks), then report gaps and
    duplicates in the exchange's answer."""
    from raytrader.data.download import (
        DownloadFailed,
        DownloadInputError,
        RetryPolicy,
        download_ohlcv,
        open_exchange,
    )
    from raytrader.data.ohlcv_cache import FrameMemo, OhlcvCache

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    since_ms = parse_time(since, "--since")
    until_ms = parse_time(until, "--until") if until is not None else None
    if until_ms is not None and until_ms <= since_ms:
        raise typer.BadParameter(f"--since {since} is not before --until {until}")
    root = cache_dir or settings.data_dir / "ohlcv"
    try:
        ex = open_exchange(exchange, api_url)
    except DownloadInputError as exc:
        raise typer.BadParameter(str(exc), param_hint="--exchange") from None
    memo: FrameMemo | None = None
    if settings.redis_url and settings.redis_url.startswith(("redis://", "rediss://")):
        from raytrader.state.stores.redis_frames import RedisFrameMemo

        memo = RedisFrameMemo(settings.redis_url)  # later reads of the range hit Redis
    cache = OhlcvCache(root, memo)
    retry = RetryPolicy(attempts=retries, base=retry_base, max_delay=max(retry_base, 30.0))

    async def run(progress: Any) -> Any:
        task = progress.add_task(f"{exchange} {symbol} {timeframe}", total=None)
        try:
            return await download_ohlcv(
                ex,
                cache,
                symbol,
                timeframe,
                since_ms,
                until_ms,
                page_limit=page_limit,
                retry=retry,
                progress=lambda done, total: progress.update(task, completed=done, total=total),
            )
        finally:
            await ex.close()

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        try:
            report = asyncio.run(run(progress))
        except DownloadInputError as exc:
            err_console.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except DownloadFailed as exc:
            err_console.print(f"[red]download failed:[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
    _print_report(report, cache.path(report.key))


def _print_report(report: Any, folder: Path) -> None:
    from raytrader.data.bar_checks import iso_ms

    console.print(
        f"{report.key}: {report.bars} bars in {iso_ms(report.start_ms)} .. "
        f"{iso_ms(report.end_ms)}; {report.fetched} downloaded in {report.requests} requests "
        f"({report.retries} retries), the rest from the cache",
        highlight=False,
    )
    console.print(f"cache: {folder}", highlight=False)
    if report.invalid_rows:
        console.print(f"[yellow]{report.invalid_rows} unusable rows dropped[/yellow]")
    dups = report.duplicates
    console.print(
        f"duplicates: {len(dups)}" + (" (dropped, the first copy kept)" if dups else ""),
        highlight=False,
    )
    for dup in dups[:_LISTED]:
        console.print(f"  {dup.describe()}", highlight=False)
    gaps = report.gaps
    console.print(
        f"gaps: {len(gaps)}" + (f" ({report.missing_bars} bars missing)" if gaps else ""),
        highlight=False,
    )
    for gap in gaps[:_LISTED]:
        console.print(f"  {gap.describe()}", highlight=False)
    if len(gaps) > _LISTED or len(dups) > _LISTED:
        console.print(f"  (the first {_LISTED} of each listed)", highlight=False)
