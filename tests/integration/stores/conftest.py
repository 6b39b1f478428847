"""Fixtures of the state-store contract tests: a real redis-server and stores of each kind.

``start_redis_server`` and ``redis_url`` depend on nothing else here, so they can move to
``tests/conftest.py`` when other suites need Redis.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from raytrader.state.stores import StateStore, open_store

REDIS_URL_ENV = "RAYTRADER_TEST_REDIS_URL"
BACKENDS = ("sqlite", "redis")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def stop_redis_server(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_redis_server(tmp_dir: Path, timeout: float = 10.0) -> tuple[str, subprocess.Popen[bytes]]:
    """Start a throw-away ``redis-server`` (no persistence) on a free port of 127.0.0.1.

    Returns its URL and process once it answers PING; the caller stops the process
    (``stop_redis_server``). Fails the test, never skips it, when redis-server is missing.
    """
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail(
            "redis-server is not on PATH: the Redis store tests need Redis 7 installed "
            "(Debian/Ubuntu: `apt-get install redis-server`; macOS: `brew install redis`; "
            "`make unit` installs it where it can), or point "
            f"{REDIS_URL_ENV} at a Redis to use instead",
            pytrace=False,
        )
    last_log = ""
    for _ in range(5):  # another process may grab the port between probe and bind
        port = _free_port()
        log = tmp_dir / f"redis-{port}.log"
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
        args += ["no", "--dir", str(tmp_dir), "--logfile", str(log), "--daemonize", "no"]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            if _answers_ping(port):
                return f"redis://127.0.0.1:{port}/0", process
            time.sleep(0.05)
        stop_redis_server(process)
        last_log = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    pytest.fail(f"redis-server did not start; its log ends with:\n{last_log}", pytrace=False)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a Redis for the tests: ``$RAYTRADER_TEST_REDIS_URL`` or one started here."""
    external = os.environ.get(REDIS_URL_ENV)
    if external:
        yield external
        return
    url, process = start_redis_server(tmp_path_factory.mktemp("redis"))
    try:
        yield url
    finally:
        stop_redis_server(process)


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
