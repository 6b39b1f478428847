"""State stores of the orchestrator: SQLite (embedded default) and Redis (clusters).

This is the shell's adapter, so it may import redis; the rest of ``raytrader.state``
stays pure. ``RedisStore`` is imported on first use, so the SQLite default works
without the ``orchestrator`` extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from raytrader.state.stores.base import (
    JOURNAL_KINDS,
    JournalEntry,
    JournalKind,
    SessionRecord,
    StateStore,
    StoredEntry,
    event_id_key,
)
from raytrader.state.stores.sqlite_store import SqliteStore

if TYPE_CHECKING:
    from raytrader.state.stores.redis_store import RedisStore

__all__ = [
    "DEFAULT_DB_NAME",
    "JOURNAL_KINDS",
    "JournalEntry",
    "JournalKind",
    "RedisStore",
    "SessionRecord",
    "SqliteStore",
    "StateStore",
    "StoredEntry",
    "event_id_key",
    "open_store",
]

DEFAULT_DB_NAME = "state.db"


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from raytrader.state.stores.redis_store import RedisStore

        return RedisStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url: str | None, data_dir: Path, **options: Any) -> StateStore:
    """The store for ``url`` (e.g. ``RAYTRADER_REDIS_URL``); nothing is connected yet.

    - ``None``, ``""`` or ``sqlite://``: ``SqliteStore`` at ``data_dir/state.db``;
    - ``sqlite:///rel/path.db``: relative to ``data_dir``; ``sqlite:////abs/path.db``: absolute;
    - ``redis://...`` or ``rediss://...``: ``RedisStore``.

    ``options`` go to the store's constructor (e.g. ``prefix=`` for Redis).
    """
    if not url or url in ("sqlite://", "sqlite:///"):
        return SqliteStore(Path(data_dir) / DEFAULT_DB_NAME, **options)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        # SQLAlchemy's convention: three slashes then a relative path, four for an absolute
        # one (joining an absolute path replaces data_dir).
        return SqliteStore(Path(data_dir) / path, **options)
    if url.startswith(("redis://", "rediss://")):
        from raytrader.state.stores.redis_store import RedisStore

        return RedisStore(url, **options)
    # Never echo the URL: it may hold a password.
    scheme = url.split("://", 1)[0] if "://" in url else "(none)"
    raise ValueError(
        f"unsupported state store URL scheme {scheme!r}: use redis://, rediss:// or sqlite:///path"
    )
