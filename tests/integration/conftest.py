"""Fixtures shared by the integration tests: a real ``redis-server`` of their own."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_URL_ENV = "RAYTRADER_TEST_REDIS_URL"


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
