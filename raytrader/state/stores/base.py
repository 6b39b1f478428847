"""The ``StateStore`` protocol, its record types and the checks every implementation shares."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, Protocol, Self, runtime_checkable

JournalKind = Literal["order", "fill"]
JOURNAL_KINDS: frozenset[str] = frozenset({"order", "fill"})
DEFAULT_MAX_EVENTS = 100_000

# Ids end up inside Redis keys (with a `{id}` hash tag), so no braces or blanks.
_NAME_RE = re.compile(r"[^\s{}\x00-\x1f\x7f]{1,200}")
_EVENT_ID_RE = re.compile(r"([0-9]{1,20})(?:-([0-9]{1,20}))?")


def utc_now() -> datetime:
    return datetime.now(UTC)


def check_utc(ts: datetime, what: str) -> datetime:
    """``ts`` converted to UTC; ``ValueError`` naming ``what`` if it is naive or no datetime."""
    if not isinstance(ts, datetime):
        raise ValueError(f"{what} must be a datetime, got {type(ts).__name__}")
    if ts.utcoffset() is None:
        raise ValueError(f"{what} must be tz-aware (UTC), got naive {ts.isoformat()}")
    return ts.astimezone(UTC)


def to_iso(ts: datetime) -> str:
    # Fixed width (always microseconds) so that ISO strings sort as the times do.
    return ts.astimezone(UTC).isoformat(timespec="microseconds")


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def check_name(value: str, what: str) -> str:
    """A session id, snapshot kind or record namespace: 1-200 characters, no blanks,
    control characters or braces."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise ValueError(f"{what} must be 1-200 characters without blanks or braces, got {value!r}")
    return value


def check_key(value: str, what: str) -> str:
    """A journal or record key: any non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    return value


def check_kind(kind: str) -> JournalKind:
    if kind == "order":
        return "order"
    if kind == "fill":
        return "fill"
    raise ValueError(f"journal kind must be 'order' or 'fill', got {kind!r}")


def dump_json(data: dict[str, Any], what: str) -> str:
    """Strict JSON text of a dict (no NaN or infinities); ``ValueError`` naming ``what``."""
    if not isinstance(data, dict):
        raise ValueError(f"{what} must be a dict, got {type(data).__name__}")
    try:
        return json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{what} is not JSON-serializable: {exc}") from None


def load_json(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"stored JSON is not an object: {text[:80]!r}")
    return value


def event_id_key(event_id: str) -> tuple[int, int]:
    """Sort key of an event id (``"<n>-<m>"`` or ``"<n>"``); ``ValueError`` if malformed.

    Both stores hand out ids of this shape, so a client's SSE ``Last-Event-ID`` can be
    compared and passed back as ``after``.
    """
    match = _EVENT_ID_RE.fullmatch(event_id) if isinstance(event_id, str) else None
    if match and int(match[1]) < 2**64 and int(match[2] or 0) < 2**64:
        return int(match[1]), int(match[2] or 0)
    raise ValueError(f"event id must look like '<n>-<m>', got {event_id!r}")


def check_read_args(limit: int, block_ms: int | None) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    if block_ms is not None and (
        isinstance(block_ms, bool) or not isinstance(block_ms, int) or block_ms < 0
    ):
        raise ValueError(f"block_ms must be None or an int >= 0, got {block_ms!r}")


def check_after_seq(after_seq: int) -> int:
    if isinstance(after_seq, bool) or not isinstance(after_seq, int) or after_seq < 0:
        raise ValueError(f"after_seq must be an int >= 0, got {after_seq!r}")
    return after_seq


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """One trading session in the registry. ``config`` is checked as JSON when stored."""

    id: str
    name: str
    config: dict[str, Any]
    status: str
    reason: str = ""
    created: datetime = field(default_factory=utc_now)
    updated: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        check_name(self.id, "session id")
        for attr in ("name", "status", "reason"):
            if not isinstance(getattr(self, attr), str):
                raise ValueError(f"session {self.id!r}: {attr} must be a string")
        if not self.status:
            raise ValueError(f"session {self.id!r}: status must not be empty")
        if not isinstance(self.config, dict):
            raise ValueError(f"session {self.id!r}: config must be a dict")
        object.__setattr__(self, "created", check_utc(self.created, f"session {self.id!r} created"))
        object.__setattr__(self, "updated", check_utc(self.updated, f"session {self.id!r} updated"))


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """An order state change (``key`` = client order id) or a fill (``key`` = fill id).

    The payload is checked as JSON when it is appended, so a bad batch fails as a whole.
    """

    kind: JournalKind
    key: str
    ts: datetime
    payload: dict[str, Any]

    def __post_init__(self) -> None:
        check_kind(self.kind)
        check_key(self.key, f"journal {self.kind} key")
        object.__setattr__(self, "ts", check_utc(self.ts, f"journal {self.kind} {self.key!r} ts"))
        if not isinstance(self.payload, dict):
            raise ValueError(f"journal {self.kind} {self.key!r}: payload must be a dict")


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """A journal entry as stored, with its per-session sequence number (1, 2, ...)."""

    seq: int
    kind: JournalKind
    key: str
    ts: datetime
    payload: dict[str, Any]

    @property
    def entry(self) -> JournalEntry:
        return JournalEntry(self.kind, self.key, self.ts, self.payload)


@runtime_checkable
class StateStore(Protocol):
    """Durable state of the orchestrator: sessions, snapshots, journal, events, records.

    Every implementation passes the same contract tests (``tests/integration/stores``).
    Methods raise ``ValueError`` naming the problem on bad input and ``RuntimeError``
    once the store is closed.
    """

    # Session registry
    async def put_session(self, record: SessionRecord) -> None:
        """Insert or replace the record with this id."""
        ...

    async def get_session(self, session_id: str) -> SessionRecord | None: ...

    async def list_sessions(self, statuses: set[str] | None = None) -> list[SessionRecord]:
        """Sessions (with one of ``statuses`` if given), oldest ``created`` first."""
        ...

    async def set_status(self, session_id: str, status: str, reason: str = "") -> SessionRecord:
        """Set status and reason, stamp ``updated``; ``KeyError`` if the id is unknown."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """Remove the session and all its data; ``True`` if the session record existed."""
        ...

    # Snapshots
    async def save_snapshot(self, session_id: str, kind: str, data: dict[str, Any]) -> None:
        """Replace the snapshot of this kind (latest wins)."""
        ...

    async def load_snapshot(self, session_id: str, kind: str) -> dict[str, Any] | None: ...

    # Journal
    async def append_journal(
        self, session_id: str, entries: Sequence[JournalEntry]
    ) -> list[StoredEntry]:
        """Append atomically; fills already journaled are skipped. Returns what was stored."""
        ...

    async def read_journal(
        self, session_id: str, kind: JournalKind | None = None, after_seq: int = 0
    ) -> list[StoredEntry]: ...

    async def has_journal_key(self, session_id: str, kind: JournalKind, key: str) -> bool: ...

    # Event log
    async def append_events(self, session_id: str, events: Sequence[dict[str, Any]]) -> list[str]:
        """Append atomically; returns the new ids, increasing (see ``event_id_key``)."""
        ...

    async def read_events(
        self,
        session_id: str,
        after: str | None = None,
        limit: int = 1000,
        block_ms: int | None = None,
    ) -> list[tuple[str, dict[str, Any]]]:
        """Events with ids after ``after`` (all if None), oldest first, at most ``limit``.

        With ``block_ms`` > 0, wait up to that long for one when none is there yet.
        """
        ...

    # Generic records (jobs, sweep trials)
    async def put_record(self, namespace: str, key: str, data: dict[str, Any]) -> None: ...

    async def put_records(self, namespace: str, records: Mapping[str, dict[str, Any]]) -> None:
        """Insert or replace many records at once: all are stored or, on bad input, none."""
        ...

    async def get_record(self, namespace: str, key: str) -> dict[str, Any] | None: ...

    async def list_records(self, namespace: str) -> dict[str, dict[str, Any]]:
        """All records of the namespace, by key in sorted order."""
        ...

    async def delete_record(self, namespace: str, key: str) -> bool: ...

    # Lifecycle
    async def ping(self) -> bool:
        """``True`` if the store answers; never raises."""
        ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class StoreBase:
    """``async with`` support and the closed check, shared by the implementations."""

    _closed: bool = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{type(self).__name__} is closed")

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._check_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
