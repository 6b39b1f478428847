"""One contract for every StateStore: each test runs on SQLite and on a real Redis."""

from __future__ import annotations

import asyncio
import math
import socket
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from raytrader.state.stores import (
    JournalEntry,
    RedisStore,
    SessionRecord,
    SqliteStore,
    StateStore,
    event_id_key,
    open_store,
)

pytestmark = pytest.mark.asyncio

T0 = datetime(2024, 1, 2, 9, 30, tzinfo=UTC)
Backend = Any  # conftest.Backend: conftest modules are not importable under importlib mode


def session(sid: str = "s1", minutes: int = 0, status: str = "running") -> SessionRecord:
    ts = T0 + timedelta(minutes=minutes)
    config = {"agents": ["sma_cross"], "cash": 100_000.0, "symbols": {"AAA": 1}}
    return SessionRecord(sid, f"name {sid}", config, status, "", ts, ts)


def order(key: str, status: str, second: int = 0) -> JournalEntry:
    return JournalEntry("order", key, T0 + timedelta(seconds=second), {"status": status})


def fill(key: str, qty: float = 1.0, second: int = 0) -> JournalEntry:
    return JournalEntry("fill", key, T0 + timedelta(seconds=second), {"qty": qty, "order": "o1"})


async def all_events(store: StateStore, sid: str) -> list[tuple[str, dict[str, Any]]]:
    return await store.read_events(sid, limit=1_000_000)


# -- sessions ------------------------------------------------------------------------------


class TestSessions:
    async def test_put_get_round_trip(self, store: StateStore) -> None:
        record = SessionRecord(
            "s1",
            "momentum ünïcode",
            {"nested": {"list": [1, 2.5, None, True]}, "big": 2**62},
            "running",
            "because",
            T0.replace(microsecond=123456),
            T0 + timedelta(hours=1),
        )
        await store.put_session(record)

        got = await store.get_session("s1")

        assert got == record
        assert got is not None and got.created.tzinfo is not None
        assert got.created.utcoffset() == timedelta(0)
        assert await store.get_session("nope") is None

    async def test_put_session_is_an_upsert(self, store: StateStore) -> None:
        await store.put_session(session("s1"))
        replaced = SessionRecord("s1", "other", {"x": 1}, "stopped", "done", T0, T0)

        await store.put_session(replaced)

        assert await store.get_session("s1") == replaced
        assert len(await store.list_sessions()) == 1

    async def test_list_sessions_oldest_first_and_by_status(self, store: StateStore) -> None:
        await store.put_session(session("b", minutes=2, status="stopped"))
        await store.put_session(session("a", minutes=1, status="running"))
        await store.put_session(session("c", minutes=3, status="failed"))

        assert [s.id for s in await store.list_sessions()] == ["a", "b", "c"]
        running = await store.list_sessions({"running", "failed"})
        assert [s.id for s in running] == ["a", "c"]
        assert await store.list_sessions(set()) == []

    async def test_set_status_updates_status_reason_and_time(self, store: StateStore) -> None:
        await store.put_session(session("s1"))

        record = await store.set_status("s1", "failed", "broker down")

        assert (record.status, record.reason) == ("failed", "broker down")
        assert record.updated > T0 and record.created == T0
        assert await store.get_session("s1") == record
        cleared = await store.set_status("s1", "running")
        assert cleared.reason == ""

    async def test_set_status_of_unknown_session_names_it(self, store: StateStore) -> None:
        with pytest.raises(KeyError, match="ghost"):
            await store.set_status("ghost", "running")
        assert await store.get_session("ghost") is None

    async def test_times_are_stored_as_utc(self, store: StateStore) -> None:
        paris = timezone(timedelta(hours=1))
        local = datetime(2024, 1, 2, 10, 30, tzinfo=paris)
        await store.put_session(SessionRecord("s1", "n", {}, "running", "", local, local))

        got = await store.get_session("s1")

        assert got is not None and got.created == T0 and got.created.tzinfo == UTC

    async def test_bad_session_input_raises_value_error(self, store: StateStore) -> None:
        naive = datetime(2024, 1, 2)  # noqa: DTZ001 - the point of the test
        with pytest.raises(ValueError, match="naive"):
            SessionRecord("s1", "n", {}, "running", "", naive, T0)
        with pytest.raises(ValueError, match="session id"):
            SessionRecord("has space", "n", {}, "running")
        with pytest.raises(ValueError, match="status"):
            SessionRecord("s1", "n", {}, "")
        with pytest.raises(ValueError, match="config is not JSON-serializable"):
            await store.put_session(SessionRecord("s1", "n", {"when": T0}, "running"))
        with pytest.raises(ValueError, match="config is not JSON-serializable"):
            await store.put_session(SessionRecord("s1", "n", {"x": math.nan}, "running"))
        with pytest.raises(ValueError, match="session id"):
            await store.get_session("")
        assert await store.list_sessions() == []


# -- snapshots -----------------------------------------------------------------------------


class TestSnapshots:
    async def test_latest_wins_per_session_and_kind(self, store: StateStore) -> None:
        await store.save_snapshot("s1", "ledger", {"cash": 1.0})
        await store.save_snapshot("s1", "ledger", {"cash": 2.0, "positions": {"AAA": 3}})
        await store.save_snapshot("s1", "agents", {"sma": [1, 2]})
        await store.save_snapshot("s2", "ledger", {"cash": 9.0})

        assert await store.load_snapshot("s1", "ledger") == {"cash": 2.0, "positions": {"AAA": 3}}
        assert await store.load_snapshot("s1", "agents") == {"sma": [1, 2]}
        assert await store.load_snapshot("s2", "ledger") == {"cash": 9.0}
        assert await store.load_snapshot("s1", "broker") is None
        assert await store.load_snapshot("s3", "ledger") is None

    async def test_bad_snapshot_keeps_the_previous_one(self, store: StateStore) -> None:
        await store.save_snapshot("s1", "ledger", {"cash": 1.0})

        with pytest.raises(ValueError, match=r"snapshot 'ledger'.*not JSON-serializable"):
            await store.save_snapshot("s1", "ledger", {"cash": {1, 2}})
        with pytest.raises(ValueError, match="must be a dict"):
            await store.save_snapshot("s1", "ledger", [1, 2])  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="snapshot kind"):
            await store.save_snapshot("s1", "", {})

        assert await store.load_snapshot("s1", "ledger") == {"cash": 1.0}


# -- journal -------------------------------------------------------------------------------


class TestJournal:
    async def test_sequence_numbers_and_order_history(self, store: StateStore) -> None:
        first = await store.append_journal("s1", [order("o1", "new"), order("o1", "accepted", 1)])
        second = await store.append_journal("s1", [fill("f1", second=2), order("o1", "filled", 2)])

        assert [e.seq for e in first + second] == [1, 2, 3, 4]
        journal = await store.read_journal("s1")
        assert [(e.seq, e.kind, e.key) for e in journal] == [
            (1, "order", "o1"),
            (2, "order", "o1"),
            (3, "fill", "f1"),
            (4, "order", "o1"),
        ]
        assert [e.payload["status"] for e in journal if e.kind == "order"] == [
            "new",
            "accepted",
            "filled",
        ]
        assert journal == first + second
        assert journal[2].ts == T0 + timedelta(seconds=2) and journal[2].ts.tzinfo is not None
        assert journal[2].entry == fill("f1", second=2)

    async def test_read_by_kind_and_after_seq(self, store: StateStore) -> None:
        await store.append_journal("s1", [order("o1", "new"), fill("f1"), order("o1", "filled")])
        await store.append_journal("s1", [fill("f2")])

        assert [e.key for e in await store.read_journal("s1", "fill")] == ["f1", "f2"]
        assert [e.seq for e in await store.read_journal("s1", "order")] == [1, 3]
        assert [e.seq for e in await store.read_journal("s1", after_seq=2)] == [3, 4]
        assert [e.seq for e in await store.read_journal("s1", "fill", after_seq=2)] == [4]
        assert await store.read_journal("s1", after_seq=4) == []
        assert await store.read_journal("other") == []

    async def test_has_journal_key(self, store: StateStore) -> None:
        await store.append_journal("s1", [order("o1", "new"), fill("f1")])

        assert await store.has_journal_key("s1", "order", "o1")
        assert await store.has_journal_key("s1", "fill", "f1")
        assert not await store.has_journal_key("s1", "fill", "o1")
        assert not await store.has_journal_key("s1", "order", "o2")
        assert not await store.has_journal_key("s2", "order", "o1")

    async def test_fills_are_journaled_once(self, store: StateStore) -> None:
        await store.append_journal("s1", [order("o1", "new"), fill("f1", qty=1.0)])

        # A replay after a crash: the same fill again, in a later batch and twice in one.
        stored = await store.append_journal(
            "s1", [fill("f1", qty=99.0), fill("f2"), fill("f2", qty=5.0), order("o1", "filled")]
        )

        assert [(e.seq, e.key) for e in stored] == [(3, "f2"), (4, "o1")]
        fills = await store.read_journal("s1", "fill")
        assert [(e.key, e.payload["qty"]) for e in fills] == [("f1", 1.0), ("f2", 1.0)]
        assert [e.seq for e in await store.read_journal("s1")] == [1, 2, 3, 4]
        assert await store.append_journal("s1", [fill("f1")]) == []
        # The same fill id in another session is another fill.
        assert [e.seq for e in await store.append_journal("s2", [fill("f1")])] == [1]

    async def test_a_batch_with_a_bad_payload_leaves_nothing(self, store: StateStore) -> None:
        await store.append_journal("s1", [order("o1", "new")])
        bad = JournalEntry("order", "o3", T0, {"at": T0})  # a datetime is no JSON
        batch = [fill("f1"), order("o2", "new"), bad]

        with pytest.raises(ValueError, match=r"journal entry 2 \(order 'o3'\)"):
            await store.append_journal("s1", batch)
        with pytest.raises(ValueError, match="not JSON-serializable"):
            await store.append_journal(
                "s1", [fill("f1"), JournalEntry("fill", "f9", T0, {"q": math.inf})]
            )

        assert [e.key for e in await store.read_journal("s1")] == ["o1"]
        assert not await store.has_journal_key("s1", "fill", "f1")
        assert not await store.has_journal_key("s1", "order", "o2")
        stored = await store.append_journal("s1", batch[:2])
        assert [e.seq for e in stored] == [2, 3]

    async def test_bad_journal_input_raises_value_error(self, store: StateStore) -> None:
        naive = datetime(2024, 1, 2)  # noqa: DTZ001 - the point of the test
        with pytest.raises(ValueError, match="kind must be 'order' or 'fill'"):
            JournalEntry("trade", "k", T0, {})  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="naive"):
            JournalEntry("fill", "k", naive, {})
        with pytest.raises(ValueError, match="key"):
            JournalEntry("fill", "", T0, {})
        with pytest.raises(ValueError, match="kind must be"):
            await store.read_journal("s1", "trade")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="after_seq"):
            await store.read_journal("s1", after_seq=-1)
        with pytest.raises(ValueError, match="kind must be"):
            await store.has_journal_key("s1", "trade", "k")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="JournalEntry"):
            await store.append_journal("s1", [{"kind": "fill"}])  # type: ignore[list-item]
        assert await store.append_journal("s1", []) == []
        assert await store.read_journal("s1") == []

    async def test_payloads_round_trip(self, store: StateStore) -> None:
        payload = {
            "price": 0.1 + 0.2,
            "qty": 1e-9,
            "big": 2**63 - 1,
            "text": 'é€😀\n"quoted"',
            "none": None,
            "flags": [True, False],
            "nested": {"a": {"b": []}, "empty": {}},
        }
        await store.append_journal("s1", [JournalEntry("order", "o1", T0, payload)])

        (entry,) = await store.read_journal("s1")

        assert entry.payload == payload

    async def test_concurrent_appends_get_distinct_sequence_numbers(
        self, store: StateStore
    ) -> None:
        batches = [[order(f"o{i}", "new"), fill(f"f{i}")] for i in range(60)]

        await asyncio.gather(*(store.append_journal("s1", b) for b in batches))

        journal = await store.read_journal("s1")
        assert [e.seq for e in journal] == list(range(1, 121))
        # Each batch is contiguous: nothing interleaves inside an atomic append.
        for first, second in zip(journal[::2], journal[1::2], strict=True):
            assert (first.kind, second.kind) == ("order", "fill")
            assert first.key[1:] == second.key[1:]


# -- event log -----------------------------------------------------------------------------


class TestEvents:
    async def test_ids_increase_and_round_trip(self, store: StateStore) -> None:
        first = await store.append_events("s1", [{"type": "bar", "i": 0}, {"type": "fill", "i": 1}])
        second = await store.append_events("s1", [{"type": "equity", "i": 2}])
        ids = first + second

        assert [event_id_key(i) for i in ids] == sorted(event_id_key(i) for i in ids)
        assert len(set(ids)) == 3
        events = await all_events(store, "s1")
        assert events == [
            (ids[0], {"type": "bar", "i": 0}),
            (ids[1], {"type": "fill", "i": 1}),
            (ids[2], {"type": "equity", "i": 2}),
        ]

    async def test_after_and_limit(self, store: StateStore) -> None:
        ids = await store.append_events("s1", [{"i": i} for i in range(10)])

        assert [e["i"] for _, e in await store.read_events("s1", after=ids[3])] == list(
            range(4, 10)
        )
        assert await store.read_events("s1", after=ids[-1]) == []
        assert await store.read_events("s1", after="18446744073709551615-0") == []
        page = await store.read_events("s1", limit=4)
        assert [e["i"] for _, e in page] == [0, 1, 2, 3]
        nxt = await store.read_events("s1", after=page[-1][0], limit=4)
        assert [e["i"] for _, e in nxt] == [4, 5, 6, 7]
        # "0" (or "0-0") means from the start, like a client that has seen nothing.
        assert len(await store.read_events("s1", after="0")) == 10
        assert len(await store.read_events("s1", after="0-0")) == 10

    async def test_sessions_have_separate_logs(self, store: StateStore) -> None:
        await store.append_events("s1", [{"s": 1}])
        await store.append_events("s2", [{"s": 2}, {"s": 2}])

        assert [e for _, e in await all_events(store, "s1")] == [{"s": 1}]
        assert len(await all_events(store, "s2")) == 2
        assert await all_events(store, "s3") == []

    async def test_blocking_read_wakes_when_another_task_appends(self, store: StateStore) -> None:
        (before,) = await store.append_events("s1", [{"i": 0}])

        async def append_later() -> list[str]:
            await asyncio.sleep(0.2)
            return await store.append_events("s1", [{"i": 1}])

        start = time.monotonic()
        got, ids = await asyncio.gather(
            store.read_events("s1", after=before, block_ms=10_000), append_later()
        )

        assert got == [(ids[0], {"i": 1})]
        assert time.monotonic() - start < 5

    async def test_blocking_read_from_the_start_of_an_empty_log(self, store: StateStore) -> None:
        reader = asyncio.create_task(store.read_events("s1", block_ms=10_000))
        await asyncio.sleep(0.1)
        assert not reader.done()

        ids = await store.append_events("s1", [{"i": 0}])

        assert await asyncio.wait_for(reader, 5) == [(ids[0], {"i": 0})]

    async def test_blocking_read_times_out_empty(self, store: StateStore) -> None:
        (last,) = await store.append_events("s1", [{"i": 0}])

        start = time.monotonic()
        got = await store.read_events("s1", after=last, block_ms=300)

        assert got == []
        assert 0.25 <= time.monotonic() - start < 5

    async def test_blocking_read_returns_at_once_when_events_wait(self, store: StateStore) -> None:
        await store.append_events("s1", [{"i": 0}])

        start = time.monotonic()
        got = await store.read_events("s1", block_ms=10_000)

        assert [e for _, e in got] == [{"i": 0}]
        assert time.monotonic() - start < 2

    async def test_a_cancelled_blocking_read_leaves_the_store_usable(
        self, store: StateStore
    ) -> None:
        reader = asyncio.create_task(store.read_events("s1", block_ms=10_000))
        await asyncio.sleep(0.1)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader

        ids = await store.append_events("s1", [{"i": 0}])

        assert await store.read_events("s1") == [(ids[0], {"i": 0})]

    async def test_bad_event_input_raises_value_error(self, store: StateStore) -> None:
        await store.append_events("s1", [{"i": 0}])

        with pytest.raises(ValueError, match="event 1 of session 's1'"):
            await store.append_events("s1", [{"i": 1}, {"bad": object()}])
        with pytest.raises(ValueError, match="event id"):
            await store.read_events("s1", after="yesterday")
        with pytest.raises(ValueError, match="limit"):
            await store.read_events("s1", limit=0)
        with pytest.raises(ValueError, match="block_ms"):
            await store.read_events("s1", block_ms=-1)
        assert await store.append_events("s1", []) == []

        assert [e for _, e in await all_events(store, "s1")] == [{"i": 0}]

    async def test_the_log_is_bounded(self, backend: Backend) -> None:
        store = backend.open(max_events=50)
        last: list[str] = []
        for batch in range(20):
            last = await store.append_events("s1", [{"i": batch * 100 + i} for i in range(100)])

        events = await all_events(store, "s1")

        # Approximate like MAXLEN ~: at least the newest 50 stay, far fewer than 2000.
        assert 50 <= len(events) < 1000
        assert events[-1] == (last[-1], {"i": 1999})
        assert [e["i"] for _, e in events] == list(range(2000 - len(events), 2000))


# -- generic records -----------------------------------------------------------------------


class TestRecords:
    async def test_put_get_list_delete(self, store: StateStore) -> None:
        await store.put_record("jobs", "j2", {"state": "running"})
        await store.put_record("jobs", "j1", {"state": "queued"})
        await store.put_record("jobs", "j1", {"state": "done", "result": [1, 2]})
        await store.put_record("trials", "j1", {"sharpe": 1.5})

        assert await store.get_record("jobs", "j1") == {"state": "done", "result": [1, 2]}
        assert await store.get_record("jobs", "j3") is None
        listed = await store.list_records("jobs")
        assert list(listed) == ["j1", "j2"]
        assert listed["j2"] == {"state": "running"}
        assert await store.list_records("trials") == {"j1": {"sharpe": 1.5}}
        assert await store.list_records("empty") == {}

        assert await store.delete_record("jobs", "j1") is True
        assert await store.delete_record("jobs", "j1") is False
        assert list(await store.list_records("jobs")) == ["j2"]
        assert await store.get_record("trials", "j1") == {"sharpe": 1.5}

    async def test_put_records_in_one_batch(self, store: StateStore) -> None:
        await store.put_record("trials", "t0", {"v": 0})
        await store.put_records("trials", {f"t{i}": {"v": i * 10} for i in range(200)})
        await store.put_records("trials", {})

        listed = await store.list_records("trials")
        assert len(listed) == 200
        assert listed["t0"] == {"v": 0}
        assert listed["t199"] == {"v": 1990}

        with pytest.raises(ValueError, match="record trials/bad is not JSON-serializable"):
            await store.put_records("trials", {"t500": {"v": 1}, "bad": {"fn": print}})
        with pytest.raises(ValueError, match="record key"):
            await store.put_records("trials", {"": {"v": 1}})
        assert "t500" not in await store.list_records("trials")

    async def test_bad_record_input_raises_value_error(self, store: StateStore) -> None:
        await store.put_record("jobs", "j1", {"ok": True})

        with pytest.raises(ValueError, match="record jobs/j1 is not JSON-serializable"):
            await store.put_record("jobs", "j1", {"fn": print})
        with pytest.raises(ValueError, match="namespace"):
            await store.put_record("a b", "j1", {})
        with pytest.raises(ValueError, match="record key"):
            await store.get_record("jobs", "")

        assert await store.get_record("jobs", "j1") == {"ok": True}

    async def test_many_concurrent_calls(self, store: StateStore) -> None:
        # More than a connection pool holds at once: callers wait, none fails.
        await asyncio.gather(*(store.put_record("jobs", f"j{i:03}", {"i": i}) for i in range(300)))

        listed = await store.list_records("jobs")

        assert len(listed) == 300 and listed["j299"] == {"i": 299}


# -- whole sessions and lifecycle ----------------------------------------------------------


async def fill_session(store: StateStore, sid: str) -> None:
    await store.put_session(session(sid))
    await store.save_snapshot(sid, "ledger", {"cash": 1.0})
    await store.save_snapshot(sid, "cursor", {"bar": 7})
    await store.append_journal(sid, [order("o1", "new"), fill("f1")])
    await store.append_events(sid, [{"type": "fill"}])


async def test_delete_session_removes_everything_of_it(store: StateStore) -> None:
    await fill_session(store, "s1")
    await fill_session(store, "s2")
    await store.put_record("jobs", "s1", {"keep": True})

    assert await store.delete_session("s1") is True

    assert await store.get_session("s1") is None
    assert [s.id for s in await store.list_sessions()] == ["s2"]
    assert await store.load_snapshot("s1", "ledger") is None
    assert await store.load_snapshot("s1", "cursor") is None
    assert await store.read_journal("s1") == []
    assert not await store.has_journal_key("s1", "fill", "f1")
    assert not await store.has_journal_key("s1", "order", "o1")
    assert await all_events(store, "s1") == []
    assert await store.delete_session("s1") is False
    # Another session and the generic records are untouched.
    assert await store.get_session("s2") is not None
    assert len(await store.read_journal("s2")) == 2
    assert len(await all_events(store, "s2")) == 1
    assert await store.get_record("jobs", "s1") == {"keep": True}
    # A session started again under the same id starts afresh.
    assert [e.seq for e in await store.append_journal("s1", [fill("f1")])] == [1]


async def test_reopening_keeps_everything(backend: Backend) -> None:
    first = backend.open()
    await fill_session(first, "s1")
    (old_id,) = await first.append_events("s1", [{"n": 1}])
    await first.put_record("jobs", "j1", {"n": 1})
    await first.close()

    async with backend.open() as second:
        assert await second.get_session("s1") == session("s1")
        assert await second.load_snapshot("s1", "cursor") == {"bar": 7}
        assert [e.key for e in await second.read_journal("s1")] == ["o1", "f1"]
        assert await second.append_journal("s1", [fill("f1")]) == []
        assert [e.seq for e in await second.append_journal("s1", [fill("f2")])] == [3]
        (new_id,) = await second.append_events("s1", [{"n": 2}])
        assert event_id_key(new_id) > event_id_key(old_id)
        assert [e for _, e in await second.read_events("s1", after=old_id)] == [{"n": 2}]
        assert await second.get_record("jobs", "j1") == {"n": 1}


async def test_lifecycle(backend: Backend) -> None:
    store = backend.open()
    assert isinstance(store, StateStore)
    assert await store.ping() is True

    await store.close()
    await store.close()  # idempotent

    assert await store.ping() is False
    with pytest.raises(RuntimeError, match="closed"):
        await store.get_session("s1")
    with pytest.raises(RuntimeError, match="closed"):
        await store.append_events("s1", [{"i": 0}])
    async with backend.open() as other:
        assert await other.ping() is True
    assert await other.ping() is False


# -- one backend only ----------------------------------------------------------------------


async def test_redis_prefixes_do_not_see_each_other(redis_backend: Backend) -> None:
    a = redis_backend.open()
    b = redis_backend.open(prefix=redis_backend.prefix + "other:")
    assert isinstance(a, RedisStore) and isinstance(b, RedisStore)
    await fill_session(a, "s1")
    await a.put_record("jobs", "j1", {"n": 1})

    assert await b.get_session("s1") is None
    assert await b.list_sessions() == []
    assert await b.load_snapshot("s1", "ledger") is None
    assert await b.read_journal("s1") == []
    assert not await b.has_journal_key("s1", "fill", "f1")
    assert await all_events(b, "s1") == []
    assert await b.list_records("jobs") == {}
    assert await b.delete_session("s1") is False
    assert await a.get_session("s1") is not None


async def test_redis_ping_is_false_when_nothing_listens() -> None:
    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with RedisStore(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1) as store:
        assert await store.ping(timeout=3) is False


_WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from raytrader.state.stores import JournalEntry, SessionRecord, SqliteStore

    async def main() -> None:
        async with SqliteStore(sys.argv[1]) as store:
            await store.put_session(SessionRecord("s1", "from child", {}, "running"))
            entry = JournalEntry("fill", "f-child", datetime.now(UTC), {"qty": 1})
            await store.append_journal("s1", [entry])
            await store.append_events("s1", [{"from": "child"}])

    asyncio.run(main())
    """
)


async def test_sqlite_file_shared_with_another_process(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    async with SqliteStore(path, poll_interval=0.05) as store:
        await store.append_journal("s1", [fill("f-parent")])
        reader = asyncio.create_task(store.read_events("s1", block_ms=30_000))

        # The child opens the same file while this store holds it open, writes and exits.
        child = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", _WRITER, str(path)], capture_output=True
        )

        assert child.returncode == 0, child.stderr.decode()
        # A follower here sees the other process's append by polling.
        got = await asyncio.wait_for(reader, 10)
        assert [e for _, e in got] == [{"from": "child"}]
        assert [e.seq for e in await store.read_journal("s1")] == [1, 2]
        record = await store.get_session("s1")
        assert record is not None and record.name == "from child"


async def test_sqlite_stores_on_one_file_wake_each_other(tmp_path: Path) -> None:
    # A long poll interval: only the in-process notification can wake the reader in time.
    async with (
        SqliteStore(tmp_path / "state.db", poll_interval=60) as reader_store,
        SqliteStore(tmp_path / "state.db") as writer_store,
    ):
        reader = asyncio.create_task(reader_store.read_events("s1", block_ms=30_000))
        await asyncio.sleep(0.1)

        await writer_store.append_events("s1", [{"i": 1}])

        assert [e for _, e in await asyncio.wait_for(reader, 5)] == [{"i": 1}]


class TestOpenStore:
    def test_sqlite_urls(self, tmp_path: Path) -> None:
        stores = {
            None: tmp_path / "state.db",
            "": tmp_path / "state.db",
            "sqlite://": tmp_path / "state.db",
            "sqlite:///sub/my.db": tmp_path / "sub" / "my.db",
            f"sqlite:///{tmp_path}/abs.db": tmp_path / "abs.db",
        }
        for url, path in stores.items():
            store = open_store(url, tmp_path)
            assert isinstance(store, SqliteStore) and store.path == path, url

    async def test_redis_urls(self, tmp_path: Path) -> None:
        for url in ("redis://localhost:6379/0", "rediss://user:secret@example.invalid:6380/1"):
            store = open_store(url, tmp_path, prefix="x:")
            assert isinstance(store, RedisStore) and store.prefix == "x:"
            await store.close()  # nothing was connected

    def test_unknown_scheme_is_refused_without_echoing_the_url(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="'postgres'") as info:
            open_store("postgres://user:secret@db/x", tmp_path)
        assert "secret" not in str(info.value)
