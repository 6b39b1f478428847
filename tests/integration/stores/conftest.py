"""Fixtures of the state-store contract tests: stores of each kind.

The Redis server (``redis_url``) comes from ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from raytrader.state.stores import StateStore, open_store

BACKENDS = ("sqlite", "redis")


@dataclass
class Backend:
    """Opens stores on one storage: the same file (SQLite) or prefix (Redis) each time."""

    kind: str
    data_dir: Path
    url: str | None = None
    prefix: str = ""
    opened: list[StateStore] = field(default_factory=list)
    prefixes: set[str] = field(default_factory=set)

    def open(self, **options: Any) -> StateStore:
        if self.kind == "redis":
            options.setdefault("prefix", self.prefix)
            self.prefixes.add(options["prefix"])
        store = open_store(self.url, self.data_dir, **options)
        self.opened.append(store)
        return store

    async def cleanup(self) -> None:
        for store in self.opened:
            await store.close()
        if self.url is not None and self.prefixes:
            await _delete_prefixes(self.url, self.prefixes)


async def _delete_prefixes(url: str, prefixes: set[str]) -> None:
    """Delete only the keys of these prefixes: an external Redis may hold other data."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        for prefix in prefixes:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()


def make_backend(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if kind == "sqlite":
        return Backend("sqlite", tmp_path)
    url = request.getfixturevalue("redis_url")
    # A prefix per test: tests never see each other's keys, even on a shared Redis.
    return Backend("redis", tmp_path, url=url, prefix=f"rt-test-{uuid.uuid4().hex[:12]}:")


@pytest_asyncio.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = make_backend(request.param, request, tmp_path)
    try:
        yield made
    finally:
        await made.cleanup()


@pytest_asyncio.fixture
async def store(backend: Backend) -> StateStore:
    return backend.open()


@pytest_asyncio.fixture
async def redis_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    made = make_backend("redis", request, tmp_path)
    try:
        yield made
    finally:
        await made.cleanup()
