"""``SqliteStore``: the embedded default, one WAL-mode SQLite file, zero set-up.

All SQL runs on one private worker thread that owns the connection, one whole
operation (a transaction included) per call: operations never interleave, and the
event loop never waits on disk.

Blocking event reads (``read_events(..., block_ms=...)``) wait in the event loop, not
on the worker thread. An append through any ``SqliteStore`` of this process on the same
file wakes them at once; appends by other processes are seen by polling every
``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, Literal, ParamSpec, TypeVar

from raytrader.state.stores.base import (
    DEFAULT_MAX_EVENTS,
    JournalEntry,
    JournalKind,
    SessionRecord,
    StoreBase,
    StoredEntry,
    check_after_seq,
    check_key,
    check_kind,
    check_name,
    check_read_args,
    dump_json,
    event_id_key,
    from_iso,
    load_json,
    to_iso,
    utc_now,
)

P = ParamSpec("P")
T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (session_id, kind)
);
CREATE TABLE IF NOT EXISTS journal (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    ts TEXT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
);
CREATE INDEX IF NOT EXISTS journal_by_key ON journal (session_id, kind, key);
-- A fill is booked once per session: replays after a crash are ignored.
CREATE UNIQUE INDEX IF NOT EXISTS journal_fill_once ON journal (session_id, key)
    WHERE kind = 'fill';
-- AUTOINCREMENT: ids are never reused, so an old Last-Event-ID stays meaningful.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_session ON events (session_id, id);
CREATE TABLE IF NOT EXISTS records (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (namespace, key)
);
"""


class _Waiters:
    """Blocked readers of one database file in this process, by session id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_session: dict[str, set[asyncio.Future[None]]] = {}

    def subscribe(self, session_id: str) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._by_session.setdefault(session_id, set()).add(fut)
        return fut

    def unsubscribe(self, session_id: str, fut: asyncio.Future[None]) -> None:
        with self._lock:
            futs = self._by_session.get(session_id)
            if futs is not None:
                futs.discard(fut)
                if not futs:
                    del self._by_session[session_id]

    def notify(self, session_id: str) -> None:
        """Wake the readers of ``session_id``; callable from any thread."""
        with self._lock:
            futs = list(self._by_session.get(session_id, ()))
        for fut in futs:
            with contextlib.suppress(RuntimeError):  # that reader's loop is closed
                fut.get_loop().call_soon_threadsafe(_wake, fut)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


_WAITERS: weakref.WeakValueDictionary[str, _Waiters] = weakref.WeakValueDictionary()
_WAITERS_LOCK = threading.Lock()


def _waiters_for(path: Path) -> _Waiters:
    key = str(path.resolve())
    with _WAITERS_LOCK:
        waiters = _WAITERS.get(key)
        if waiters is None:
            waiters = _WAITERS[key] = _Waiters()
        return waiters


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so MAX(seq) reads cannot race another writer.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _session_row(row: sqlite3.Row) -> SessionRecord:
    return SessionRecord(
        id=row["id"],
        name=row["name"],
        config=load_json(row["config"]),
        status=row["status"],
        reason=row["reason"],
        created=from_iso(row["created"]),
        updated=from_iso(row["updated"]),
    )


def _journal_row(row: sqlite3.Row) -> StoredEntry:
    return StoredEntry(
        seq=row["seq"],
        kind=check_kind(row["kind"]),
        key=row["key"],
        ts=from_iso(row["ts"]),
        payload=load_json(row["payload"]),
    )


class SqliteStore(StoreBase):
    """State in one SQLite file (created with its folder on first use).

    ``synchronous="NORMAL"`` survives a crash of the process (WAL); ``"FULL"`` also
    survives power loss, at the cost of an fsync per commit. ``max_events`` bounds the
    event log of each session approximately (the oldest are trimmed in batches).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        poll_interval: float = 0.1,
        max_events: int = DEFAULT_MAX_EVENTS,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        busy_timeout: float = 10.0,
    ) -> None:
        if str(path) == ":memory:":
            raise ValueError("SqliteStore needs a file path, not ':memory:'")
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError(f"synchronous must be 'NORMAL' or 'FULL', got {synchronous!r}")
        self.path = Path(path).expanduser()
        self.poll_interval = poll_interval
        self.max_events = max_events
        self._synchronous = synchronous
        self._busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="raytrader-sqlite")
        self._waiters = _waiters_for(self.path)
        # Events appended per session since the last trim (worker thread only).
        self._since_trim: dict[str, int] = {}
        self._closed = False

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # -- plumbing ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            with _transaction(conn):
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version > SCHEMA_VERSION:
                    raise RuntimeError(
                        f"{self.path} has state schema {version}, newer than this "
                        f"raytrader's {SCHEMA_VERSION}: upgrade raytrader"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _call(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        if self._conn is None:
            self._conn = self._connect()
        return fn(self._conn, *args, **kw)

    async def _run(
        self, fn: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kw: P.kwargs
    ) -> T:
        self._check_open()
        call = functools.partial(self._call, fn, *args, **kw)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    # -- sessions ------------------------------------------------------------------------

    async def put_session(self, record: SessionRecord) -> None:
        if not isinstance(record, SessionRecord):
            raise ValueError(f"put_session needs a SessionRecord, got {type(record).__name__}")
        config = dump_json(record.config, f"session {record.id!r} config")
        row = (record.id, record.name, config, record.status, record.reason)
        await self._run(_put_session, (*row, to_iso(record.created), to_iso(record.updated)))

    async def get_session(self, session_id: str) -> SessionRecord | None:
        check_name(session_id, "session id")
        return await self._run(_get_session, session_id)

    async def list_sessions(self, statuses: set[str] | None = None) -> list[SessionRecord]:
        records = await self._run(_list_sessions)
        if statuses is not None:
            records = [r for r in records if r.status in statuses]
        return records

    async def set_status(self, session_id: str, status: str, reason: str = "") -> SessionRecord:
        check_name(session_id, "session id")
        if not isinstance(status, str) or not status:
            raise ValueError(f"status must be a non-empty string, got {status!r}")
        if not isinstance(reason, str):
            raise ValueError(f"reason must be a string, got {reason!r}")
        record = await self._run(_set_status, session_id, status, reason, to_iso(utc_now()))
        if record is None:
            raise KeyError(f"unknown session {session_id!r}")
        return record

    async def delete_session(self, session_id: str) -> bool:
        check_name(session_id, "session id")
        return await self._run(self._delete_session, session_id)

    def _delete_session(self, conn: sqlite3.Connection, session_id: str) -> bool:
        with _transaction(conn):
            existed = conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount
            for table in ("snapshots", "journal", "events"):
                conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (session_id,))
        self._since_trim.pop(session_id, None)
        return existed > 0

    # -- snapshots -----------------------------------------------------------------------

    async def save_snapshot(self, session_id: str, kind: str, data: dict[str, Any]) -> None:
        check_name(session_id, "session id")
        check_name(kind, "snapshot kind")
        text = dump_json(data, f"snapshot {kind!r} of session {session_id!r}")
        await self._run(_save_snapshot, session_id, kind, text, to_iso(utc_now()))

    async def load_snapshot(self, session_id: str, kind: str) -> dict[str, Any] | None:
        check_name(session_id, "session id")
        check_name(kind, "snapshot kind")
        text = await self._run(_load_snapshot, session_id, kind)
        return None if text is None else load_json(text)

    # -- journal -------------------------------------------------------------------------

    async def append_journal(
        self, session_id: str, entries: Sequence[JournalEntry]
    ) -> list[StoredEntry]:
        check_name(session_id, "session id")
        rows = _journal_rows(entries)
        if not rows:
            return []
        return await self._run(_append_journal, session_id, rows)

    async def read_journal(
        self, session_id: str, kind: JournalKind | None = None, after_seq: int = 0
    ) -> list[StoredEntry]:
        check_name(session_id, "session id")
        if kind is not None:
            check_kind(kind)
        check_after_seq(after_seq)
        return await self._run(_read_journal, session_id, kind, after_seq)

    async def has_journal_key(self, session_id: str, kind: JournalKind, key: str) -> bool:
        check_name(session_id, "session id")
        check_kind(kind)
        check_key(key, f"journal {kind} key")
        return await self._run(_has_journal_key, session_id, kind, key)

    # -- events --------------------------------------------------------------------------

    async def append_events(self, session_id: str, events: Sequence[dict[str, Any]]) -> list[str]:
        check_name(session_id, "session id")
        texts = [dump_json(e, f"event {i} of session {session_id!r}") for i, e in enumerate(events)]
        if not texts:
            return []
        ids = await self._run(self._append_events, session_id, texts)
        return [f"{n}-0" for n in ids]

    def _append_events(
        self, conn: sqlite3.Connection, session_id: str, texts: list[str]
    ) -> list[int]:
        insert = "INSERT INTO events (session_id, data) VALUES (?, ?)"
        with _transaction(conn):
            ids = [_lastrowid(conn.execute(insert, (session_id, t))) for t in texts]
        self._waiters.notify(session_id)
        # Trim in batches of a tenth of the bound, like Redis's MAXLEN ~.
        pending = self._since_trim.get(session_id, 0) + len(ids)
        if pending > max(1, self.max_events // 10):
            with _transaction(conn):
                conn.execute(
                    "DELETE FROM events WHERE session_id = ? AND id <= (SELECT id FROM events"
                    " WHERE session_id = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (session_id, session_id, self.max_events),
                )
            pending = 0
        self._since_trim[session_id] = pending
        return ids

    async def read_events(
        self,
        session_id: str,
        after: str | None = None,
        limit: int = 1000,
        block_ms: int | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        check_name(session_id, "session id")
        check_read_args(limit, block_ms)
        # Clamped to SQLite's INTEGER range; ids past it cannot exist anyway.
        after_id = 0 if after is None else min(event_id_key(after)[0], 2**63 - 1)
        if not block_ms:
            rows = await self._run(_read_events, session_id, after_id, limit)
            return [(f"{n}-0", load_json(text)) for n, text in rows]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + block_ms / 1000
        while True:
            # Subscribe before reading: an append between the read and the wait still wakes us.
            waiter = self._waiters.subscribe(session_id)
            try:
                rows = await self._run(_read_events, session_id, after_id, limit)
                remaining = deadline - loop.time()
                if rows or remaining <= 0:
                    return [(f"{n}-0", load_json(text)) for n, text in rows]
                await asyncio.wait([waiter], timeout=min(remaining, self.poll_interval))
            finally:
                self._waiters.unsubscribe(session_id, waiter)

    # -- records -------------------------------------------------------------------------

    async def put_record(self, namespace: str, key: str, data: dict[str, Any]) -> None:
        check_name(namespace, "record namespace")
        check_key(key, "record key")
        text = dump_json(data, f"record {namespace}/{key}")
        await self._run(_put_record, namespace, key, text)

    async def put_records(self, namespace: str, records: Mapping[str, dict[str, Any]]) -> None:
        check_name(namespace, "record namespace")
        rows = [
            (namespace, check_key(key, "record key"), dump_json(data, f"record {namespace}/{key}"))
            for key, data in records.items()
        ]
        if rows:
            await self._run(_put_records, rows)

    async def get_record(self, namespace: str, key: str) -> dict[str, Any] | None:
        check_name(namespace, "record namespace")
        check_key(key, "record key")
        text = await self._run(_get_record, namespace, key)
        return None if text is None else load_json(text)

    async def list_records(self, namespace: str) -> dict[str, dict[str, Any]]:
        check_name(namespace, "record namespace")
        rows = await self._run(_list_records, namespace)
        return {key: load_json(text) for key, text in rows}

    async def delete_record(self, namespace: str, key: str) -> bool:
        check_name(namespace, "record namespace")
        check_key(key, "record key")
        return await self._run(_delete_record, namespace, key)

    # -- lifecycle -----------------------------------------------------------------------

    async def ping(self) -> bool:
        try:
            return await self._run(_ping)
        except (sqlite3.Error, OSError, RuntimeError):
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Queued after any operation already submitted: those finish first.
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_conn)
        self._executor.shutdown(wait=False)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# -- SQL, run on the worker thread ---------------------------------------------------------


def _lastrowid(cursor: sqlite3.Cursor) -> int:
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _put_session(conn: sqlite3.Connection, row: tuple[str, ...]) -> None:
    conn.execute(
        "INSERT INTO sessions (id, name, config, status, reason, created, updated)"
        " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
        " config = excluded.config, status = excluded.status, reason = excluded.reason,"
        " created = excluded.created, updated = excluded.updated",
        row,
    )


def _get_session(conn: sqlite3.Connection, session_id: str) -> SessionRecord | None:
    row = conn.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else _session_row(row)


def _list_sessions(conn: sqlite3.Connection) -> list[SessionRecord]:
    rows = conn.execute("SELECT * FROM sessions ORDER BY created, id").fetchall()
    return [_session_row(row) for row in rows]


def _set_status(
    conn: sqlite3.Connection, session_id: str, status: str, reason: str, updated: str
) -> SessionRecord | None:
    with _transaction(conn):
        conn.execute(
            "UPDATE sessions SET status = ?, reason = ?, updated = ? WHERE id = ?",
            (status, reason, updated, session_id),
        )
        return _get_session(conn, session_id)


def _save_snapshot(
    conn: sqlite3.Connection, session_id: str, kind: str, text: str, updated: str
) -> None:
    conn.execute(
        "INSERT INTO snapshots (session_id, kind, data, updated) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (session_id, kind) DO UPDATE SET data = excluded.data,"
        " updated = excluded.updated",
        (session_id, kind, text, updated),
    )


def _load_snapshot(conn: sqlite3.Connection, session_id: str, kind: str) -> str | None:
    row = conn.execute(
        "SELECT data FROM snapshots WHERE session_id = ? AND kind = ?", (session_id, kind)
    ).fetchone()
    return None if row is None else str(row["data"])


_JournalRow = tuple[JournalKind, str, str, str]


def _journal_rows(entries: Sequence[JournalEntry]) -> list[_JournalRow]:
    """Check and serialize a batch before anything is written (all or none)."""
    rows: list[_JournalRow] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, JournalEntry):
            raise ValueError(
                f"journal entry {i} must be a JournalEntry, got {type(entry).__name__}"
            )
        what = f"journal entry {i} ({entry.kind} {entry.key!r}) payload"
        rows.append((entry.kind, entry.key, to_iso(entry.ts), dump_json(entry.payload, what)))
    return rows


def _append_journal(
    conn: sqlite3.Connection, session_id: str, rows: list[_JournalRow]
) -> list[StoredEntry]:
    stored: list[StoredEntry] = []
    with _transaction(conn):
        (seq,) = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM journal WHERE session_id = ?", (session_id,)
        ).fetchone()
        for kind, key, ts, payload in rows:
            # OR IGNORE: the partial unique index drops a fill that is already there.
            cursor = conn.execute(
                "INSERT OR IGNORE INTO journal (session_id, seq, kind, key, ts, payload)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, seq + 1, kind, key, ts, payload),
            )
            if cursor.rowcount == 1:
                seq += 1
                stored.append(StoredEntry(seq, kind, key, from_iso(ts), load_json(payload)))
    return stored


def _read_journal(
    conn: sqlite3.Connection, session_id: str, kind: JournalKind | None, after_seq: int
) -> list[StoredEntry]:
    sql = "SELECT * FROM journal WHERE session_id = ? AND seq > ?"
    params: tuple[Any, ...] = (session_id, after_seq)
    if kind is not None:
        sql += " AND kind = ?"
        params += (kind,)
    rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
    return [_journal_row(row) for row in rows]


def _has_journal_key(conn: sqlite3.Connection, session_id: str, kind: str, key: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM journal WHERE session_id = ? AND kind = ? AND key = ? LIMIT 1",
        (session_id, kind, key),
    ).fetchone()
    return row is not None


def _read_events(
    conn: sqlite3.Connection, session_id: str, after_id: int, limit: int
) -> list[tuple[int, str]]:
    rows = conn.execute(
        "SELECT id, data FROM events WHERE session_id = ? AND id > ? ORDER BY id LIMIT ?",
        (session_id, after_id, limit),
    ).fetchall()
    return [(int(row["id"]), str(row["data"])) for row in rows]


def _put_record(conn: sqlite3.Connection, namespace: str, key: str, text: str) -> None:
    conn.execute(
        "INSERT INTO records (namespace, key, data) VALUES (?, ?, ?)"
        " ON CONFLICT (namespace, key) DO UPDATE SET data = excluded.data",
        (namespace, key, text),
    )


def _put_records(conn: sqlite3.Connection, rows: list[tuple[str, str, str]]) -> None:
    with _transaction(conn):
        conn.executemany(
            "INSERT INTO records (namespace, key, data) VALUES (?, ?, ?)"
            " ON CONFLICT (namespace, key) DO UPDATE SET data = excluded.data",
            rows,
        )


def _get_record(conn: sqlite3.Connection, namespace: str, key: str) -> str | None:
    row = conn.execute(
        "SELECT data FROM records WHERE namespace = ? AND key = ?", (namespace, key)
    ).fetchone()
    return None if row is None else str(row["data"])


def _list_records(conn: sqlite3.Connection, namespace: str) -> list[tuple[str, str]]:
    rows = conn.execute(
        "SELECT key, data FROM records WHERE namespace = ? ORDER BY key", (namespace,)
    ).fetchall()
    return [(str(row["key"]), str(row["data"])) for row in rows]


def _delete_record(conn: sqlite3.Connection, namespace: str, key: str) -> bool:
    cursor = conn.execute("DELETE FROM records WHERE namespace = ? AND key = ?", (namespace, key))
    return cursor.rowcount > 0


def _ping(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1").fetchone() is not None
