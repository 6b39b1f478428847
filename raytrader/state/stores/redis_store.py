"""``RedisStore``: the state store for clusters (``redis.asyncio``, one blocking pool).

Key layout (``P`` = prefix, default ``raytrader:``; ``{sid}`` is a cluster hash tag, so
all keys of one session live in one slot):

- ``P sessions``             set of session ids
- ``P session:{sid}``        hash: id, name, config (JSON), status, reason, created, updated
- ``P snapshots:{sid}``      hash: kind -> JSON
- ``P journal:{sid}``        list of JSON entries; an entry's seq is its index + 1
- ``P journal:{sid}:order``  set of journaled client order ids
- ``P journal:{sid}:fill``   set of journaled fill ids (a fill in it is not appended again)
- ``P events:{sid}``         stream, field ``d`` = JSON; XADD MAXLEN ~ bounds it
- ``P records:NS``           hash: key -> JSON
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

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

DEFAULT_PREFIX = "raytrader:"

# Atomic: Redis runs a script with nothing in between. KEYS: journal list, order-id set,
# fill-id set. ARGV: kind, key, JSON, for each entry. Returns each entry's seq, 0 if skipped.
_APPEND_JOURNAL = """
local out = {}
for i = 1, #ARGV, 3 do
    local kind, key = ARGV[i], ARGV[i + 1]
    local added = redis.call('SADD', kind == 'fill' and KEYS[3] or KEYS[2], key)
    if kind == 'order' or added == 1 then
        out[#out + 1] = redis.call('RPUSH', KEYS[1], ARGV[i + 2])
    else
        out[#out + 1] = 0
    end
end
return out
"""

# Update only an existing session (a plain HSET would create a partial record).
_SET_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'reason', ARGV[2], 'updated', ARGV[3])
return 1
"""

_SESSION_FIELDS = ("id", "name", "config", "status", "reason", "created", "updated")


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _session(fields: dict[Any, Any]) -> SessionRecord:
    f = {_text(k): _text(v) for k, v in fields.items()}
    return SessionRecord(
        id=f["id"],
        name=f["name"],
        config=load_json(f["config"]),
        status=f["status"],
        reason=f["reason"],
        created=from_iso(f["created"]),
        updated=from_iso(f["updated"]),
    )


def _stored(seq: int, doc: str) -> StoredEntry:
    d = load_json(doc)
    return StoredEntry(seq, check_kind(d["kind"]), d["key"], from_iso(d["ts"]), d["payload"])


class RedisStore(StoreBase):
    """State in Redis at ``url`` (``redis://`` or ``rediss://``), under ``prefix``.

    Connections come from a ``BlockingConnectionPool`` of ``max_connections``: past that,
    callers wait up to ``pool_timeout`` seconds instead of failing. Each blocked
    ``read_events`` holds one connection while it waits. ``max_events`` bounds each
    session's event stream approximately (XADD MAXLEN ~).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_connections: int = 100,
        pool_timeout: float = 20.0,
        max_events: int = DEFAULT_MAX_EVENTS,
        socket_connect_timeout: float = 5.0,
    ) -> None:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("RedisStore URL must start with redis://, rediss:// or unix://")
        if not isinstance(prefix, str):
            raise ValueError(f"prefix must be a string, got {prefix!r}")
        if max_events < 1:
            raise ValueError(f"max_events must be >= 1, got {max_events}")
        self.prefix = prefix
        self.max_events = max_events
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=pool_timeout,
            decode_responses=True,
            socket_connect_timeout=socket_connect_timeout,
        )
        # from_pool: the client owns the pool, so aclose() disconnects it too.
        self._redis: Redis = Redis.from_pool(pool)
        self._append_journal_script = self._redis.register_script(_APPEND_JOURNAL)
        self._set_status_script = self._redis.register_script(_SET_STATUS)
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisStore(prefix={self.prefix!r})"

    # -- keys ----------------------------------------------------------------------------

    def _sessions_key(self) -> str:
        return f"{self.prefix}sessions"

    def _session_key(self, sid: str, part: str) -> str:
        return f"{self.prefix}{part}:{{{sid}}}"

    def _session_keys(self, sid: str) -> list[str]:
        journal = self._session_key(sid, "journal")
        return [
            self._session_key(sid, "session"),
            self._session_key(sid, "snapshots"),
            journal,
            f"{journal}:order",
            f"{journal}:fill",
            self._session_key(sid, "events"),
        ]

    def _records_key(self, namespace: str) -> str:
        return f"{self.prefix}records:{namespace}"

    # -- sessions ------------------------------------------------------------------------

    async def put_session(self, record: SessionRecord) -> None:
        if not isinstance(record, SessionRecord):
            raise ValueError(f"put_session needs a SessionRecord, got {type(record).__name__}")
        fields: dict[FieldT, EncodableT] = {
            "id": record.id,
            "name": record.name,
            "config": dump_json(record.config, f"session {record.id!r} config"),
            "status": record.status,
            "reason": record.reason,
            "created": to_iso(record.created),
            "updated": to_iso(record.updated),
        }
        self._check_open()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._session_key(record.id, "session"), mapping=fields)
            pipe.sadd(self._sessions_key(), record.id)
            await pipe.execute()

    async def get_session(self, session_id: str) -> SessionRecord | None:
        check_name(session_id, "session id")
        self._check_open()
        fields = await self._redis.hgetall(self._session_key(session_id, "session"))
        return _session(fields) if fields else None

    async def list_sessions(self, statuses: set[str] | None = None) -> list[SessionRecord]:
        self._check_open()
        ids = sorted(_text(i) for i in await self._redis.smembers(self._sessions_key()))
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hgetall(self._session_key(sid, "session"))
            found: list[dict[Any, Any]] = await pipe.execute()
        # A session deleted between the two reads has an empty hash: skip it.
        records = [_session(fields) for fields in found if fields]
        if statuses is not None:
            records = [r for r in records if r.status in statuses]
        return sorted(records, key=lambda r: (r.created, r.id))

    async def set_status(self, session_id: str, status: str, reason: str = "") -> SessionRecord:
        check_name(session_id, "session id")
        if not isinstance(status, str) or not status:
            raise ValueError(f"status must be a non-empty string, got {status!r}")
        if not isinstance(reason, str):
            raise ValueError(f"reason must be a string, got {reason!r}")
        self._check_open()
        key = self._session_key(session_id, "session")
        updated = await self._set_status_script(
            keys=[key], args=[status, reason, to_iso(utc_now())]
        )
        if not updated:
            raise KeyError(f"unknown session {session_id!r}")
        record = await self.get_session(session_id)
        if record is None:  # deleted right after the update
            raise KeyError(f"unknown session {session_id!r}")
        return record

    async def delete_session(self, session_id: str) -> bool:
        check_name(session_id, "session id")
        self._check_open()
        keys = self._session_keys(session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys[0])
            pipe.delete(*keys[1:])
            pipe.srem(self._sessions_key(), session_id)
            existed, _, _ = await pipe.execute()
        return bool(existed)

    # -- snapshots -----------------------------------------------------------------------

    async def save_snapshot(self, session_id: str, kind: str, data: dict[str, Any]) -> None:
        check_name(session_id, "session id")
        check_name(kind, "snapshot kind")
        text = dump_json(data, f"snapshot {kind!r} of session {session_id!r}")
        self._check_open()
        await self._redis.hset(self._session_key(session_id, "snapshots"), kind, text)

    async def load_snapshot(self, session_id: str, kind: str) -> dict[str, Any] | None:
        check_name(session_id, "session id")
        check_name(kind, "snapshot kind")
        self._check_open()
        text = await self._redis.hget(self._session_key(session_id, "snapshots"), kind)
        return None if text is None else load_json(_text(text))

    # -- journal -------------------------------------------------------------------------

    async def append_journal(
        self, session_id: str, entries: Sequence[JournalEntry]
    ) -> list[StoredEntry]:
        check_name(session_id, "session id")
        args: list[str] = []
        docs: list[str] = []
        # Check and serialize the whole batch before anything is sent (all or none).
        for i, entry in enumerate(entries):
            if not isinstance(entry, JournalEntry):
                raise ValueError(
                    f"journal entry {i} must be a JournalEntry, got {type(entry).__name__}"
                )
            what = f"journal entry {i} ({entry.kind} {entry.key!r}) payload"
            doc = {"kind": entry.kind, "key": entry.key, "ts": to_iso(entry.ts)}
            text = dump_json({**doc, "payload": entry.payload}, what)
            args += [entry.kind, entry.key, text]
            docs.append(text)
        if not docs:
            return []
        self._check_open()
        journal = self._session_key(session_id, "journal")
        seqs = await self._append_journal_script(
            keys=[journal, f"{journal}:order", f"{journal}:fill"], args=args
        )
        return [_stored(int(seq), doc) for seq, doc in zip(seqs, docs, strict=True) if int(seq)]

    async def read_journal(
        self, session_id: str, kind: JournalKind | None = None, after_seq: int = 0
    ) -> list[StoredEntry]:
        check_name(session_id, "session id")
        if kind is not None:
            check_kind(kind)
        check_after_seq(after_seq)
        self._check_open()
        docs = await self._redis.lrange(self._session_key(session_id, "journal"), after_seq, -1)
        entries = [_stored(after_seq + i + 1, _text(doc)) for i, doc in enumerate(docs)]
        return entries if kind is None else [e for e in entries if e.kind == kind]

    async def has_journal_key(self, session_id: str, kind: JournalKind, key: str) -> bool:
        check_name(session_id, "session id")
        check_kind(kind)
        check_key(key, f"journal {kind} key")
        self._check_open()
        journal = self._session_key(session_id, "journal")
        return bool(await self._redis.sismember(f"{journal}:{kind}", key))

    # -- events --------------------------------------------------------------------------

    async def append_events(self, session_id: str, events: Sequence[dict[str, Any]]) -> list[str]:
        check_name(session_id, "session id")
        texts = [dump_json(e, f"event {i} of session {session_id!r}") for i, e in enumerate(events)]
        if not texts:
            return []
        self._check_open()
        key = self._session_key(session_id, "events")
        async with self._redis.pipeline(transaction=True) as pipe:
            for text in texts:
                pipe.xadd(key, {"d": text}, maxlen=self.max_events, approximate=True)
            ids: list[Any] = await pipe.execute()
        return [_text(i) for i in ids]

    async def read_events(
        self,
        session_id: str,
        after: str | None = None,
        limit: int = 1000,
        block_ms: int | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        check_name(session_id, "session id")
        check_read_args(limit, block_ms)
        ms, seq = (0, 0) if after is None else event_id_key(after)
        self._check_open()
        key = self._session_key(session_id, "events")
        # XREAD with an explicit id (never "$") returns entries added since that id, so
        # nothing appended between two calls of a follower is missed.
        reply = await self._redis.xread(
            {key: f"{ms}-{seq}"}, count=limit, block=block_ms if block_ms else None
        )
        return [(_text(i), load_json(_text(fields["d"]))) for i, fields in _xread_entries(reply)]

    # -- records -------------------------------------------------------------------------

    async def put_record(self, namespace: str, key: str, data: dict[str, Any]) -> None:
        check_name(namespace, "record namespace")
        check_key(key, "record key")
        text = dump_json(data, f"record {namespace}/{key}")
        self._check_open()
        await self._redis.hset(self._records_key(namespace), key, text)

    async def put_records(self, namespace: str, records: Mapping[str, dict[str, Any]]) -> None:
        check_name(namespace, "record namespace")
        fields: dict[FieldT, EncodableT] = {
            check_key(key, "record key"): dump_json(data, f"record {namespace}/{key}")
            for key, data in records.items()
        }
        self._check_open()
        if fields:
            await self._redis.hset(self._records_key(namespace), mapping=fields)

    async def get_record(self, namespace: str, key: str) -> dict[str, Any] | None:
        check_name(namespace, "record namespace")
        check_key(key, "record key")
        self._check_open()
        text = await self._redis.hget(self._records_key(namespace), key)
        return None if text is None else load_json(_text(text))

    async def list_records(self, namespace: str) -> dict[str, dict[str, Any]]:
        check_name(namespace, "record namespace")
        self._check_open()
        found = await self._redis.hgetall(self._records_key(namespace))
        items = sorted((_text(k), _text(v)) for k, v in found.items())
        return {k: load_json(v) for k, v in items}

    async def delete_record(self, namespace: str, key: str) -> bool:
        check_name(namespace, "record namespace")
        check_key(key, "record key")
        self._check_open()
        return bool(await self._redis.hdel(self._records_key(namespace), key))

    # -- lifecycle -----------------------------------------------------------------------

    async def ping(self, timeout: float = 5.0) -> bool:
        if self._closed:
            return False
        try:
            return bool(await asyncio.wait_for(self._redis.ping(), timeout))
        except (RedisError, OSError, TimeoutError):
            return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._redis.aclose()


def _xread_entries(reply: Any) -> list[tuple[Any, dict[Any, Any]]]:
    """The entries of a one-stream XREAD reply, in RESP2 (list) or RESP3 (dict) shape."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        return list(streams[0][0]) if streams and streams[0] else []
    return list(reply[0][1])
