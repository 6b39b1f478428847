"""Exchange keys from a mounted Kubernetes Secret: ``RAYTRADER_EXCHANGE_CREDENTIALS_DIR``.

On the cluster the Secret ``raytrader-exchange`` is mounted read-only on every Ray node, and
the execution actor, wherever Ray put it, reads the keys from there when a live session opens
its broker. The directories here are laid out as the kubelet lays out a Secret volume (a
timestamped folder, ``..data`` pointing at it, one symlink per key), and an update swaps
``..data`` in one rename, as the kubelet does on a rotation.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from raytrader.orchestrator.actors import COMPONENTS
from raytrader.orchestrator.config import SessionConfig
from raytrader.orchestrator.live_session import LiveSession
from raytrader.orchestrator.runtime import NAMESPACE, Components
from raytrader.orchestrator.sessions import SessionManager
from raytrader.secrets import DIR_VAR, CredentialsError, load_credentials
from raytrader.state.stores.sqlite_store import SqliteStore
from tests.integration.exchange.conftest import live_config
from tests.integration.exchange.fake_exchange import FakeExchange

PREFIX = "RAYTRADER_EXCHANGE_BINANCE_"
KEY, SECRET = "dir-key-4b1d9e", "dir-secret-77c0a5f3"
NEW_KEY, NEW_SECRET = "dir-key-rotated-0e6f", "dir-secret-rotated-9a21"


def write_secret_volume(directory: Path, data: dict[str, str]) -> None:
    """Write (or update) ``data`` the way the kubelet fills a Secret volume."""
    directory.mkdir(exist_ok=True)
    payload = directory / f"..{uuid.uuid4().hex[:8]}"
    payload.mkdir()
    for key, value in data.items():
        (payload / key).write_text(value + "\n")
        link = directory / key
        if not link.is_symlink():
            link.symlink_to(Path("..data") / key)
    staged = directory / "..data_tmp"
    staged.symlink_to(payload.name)
    staged.replace(directory / "..data")  # the atomic swap of an update


def keys(key: str = KEY, secret: str = SECRET) -> dict[str, str]:
    return {PREFIX + "API_KEY": key, PREFIX + "SECRET": secret}


@pytest.fixture
def no_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for suffix in ("API_KEY", "SECRET", "PASSWORD"):
        monkeypatch.delenv(PREFIX + suffix, raising=False)
        monkeypatch.delenv(PREFIX + suffix + "_FILE", raising=False)


def test_keys_are_read_from_the_mounted_secret_and_a_rotation_at_the_next_read(
    tmp_path: Path,
) -> None:
    mount = tmp_path / "exchange"
    write_secret_volume(mount, keys())
    env = {DIR_VAR: str(mount)}
    creds = load_credentials("binance", env)
    assert creds is not None and creds.values() == [KEY, SECRET]
    assert load_credentials("kraken", env) is None  # another exchange's keys are not there

    write_secret_volume(mount, keys(NEW_KEY, NEW_SECRET))
    creds = load_credentials("binance", env)
    assert creds is not None and creds.values() == [NEW_KEY, NEW_SECRET]


def test_an_absent_optional_secret_is_an_empty_directory_and_no_credentials(
    tmp_path: Path,
) -> None:
    assert load_credentials("binance", {DIR_VAR: str(tmp_path)}) is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # The mount itself is missing (a typo in the path): not the same as no Secret.
        ({DIR_VAR: "/nonexistent/exchange"}, f"{DIR_VAR}: /nonexistent/exchange is not a dir"),
        (
            {PREFIX + "API_KEY": KEY},
            f"set {PREFIX}API_KEY or {DIR_VAR}/{PREFIX}API_KEY, not both",
        ),
        (
            {PREFIX + "SECRET_FILE": "/somewhere/secret"},
            f"set {PREFIX}SECRET_FILE or {DIR_VAR}/{PREFIX}SECRET, not both",
        ),
        (
            {PREFIX + "API_KEY": KEY, PREFIX + "API_KEY_FILE": "/somewhere/key"},
            f"set only one of {PREFIX}API_KEY, {PREFIX}API_KEY_FILE, {DIR_VAR}/{PREFIX}API_KEY",
        ),
    ],
)
def test_a_key_given_two_ways_or_a_missing_mount_is_refused_by_name(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    mount = tmp_path / "exchange"
    write_secret_volume(mount, keys())
    env = {DIR_VAR: str(mount), **env}
    with pytest.raises(CredentialsError) as err:
        load_credentials("binance", env)
    assert message in str(err.value)
    assert KEY not in str(err.value) and SECRET not in str(err.value)


def private_keys(venue: FakeExchange) -> set[str]:
    """The API keys the venue's order endpoints were called with."""
    return {key for _, _, _, key in venue.order_requests()}


@pytest.mark.asyncio
@pytest.mark.usefixtures("no_key_variables")
async def test_a_live_broker_opens_with_the_mounted_keys_and_reopens_with_rotated_ones(
    venue: FakeExchange, store: SqliteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAYTRADER_ALLOW_LIVE", "1")
    config = live_config(venue)
    mount = tmp_path / "exchange"
    mount.mkdir()
    monkeypatch.setenv(DIR_VAR, str(mount))
    # No Secret yet (the optional mount is empty): refused naming what to put in it.
    need = f"set {PREFIX}API_KEY and {PREFIX}SECRET"
    with pytest.raises(CredentialsError, match=need):
        await LiveSession.open("s-dir", config, None, store)
    assert venue.requests == []

    venue.api_key = KEY
    write_secret_volume(mount, keys())
    live = await LiveSession.open("s-dir", config, None, store)  # reconciles: an order call
    await live.close()
    assert private_keys(venue) == {KEY}

    # A rotation: the running broker keeps its keys; the next open reads the new files.
    venue.api_key = NEW_KEY
    write_secret_volume(mount, keys(NEW_KEY, NEW_SECRET))
    venue.requests.clear()
    live = await LiveSession.open("s-dir", config, None, store)
    await live.close()
    assert private_keys(venue) == {NEW_KEY}


@pytest.fixture
def node_with_a_mount(
    ray_runtime: None, tmp_path: Path, no_key_variables: None
) -> Iterator[tuple[Components, Path]]:
    """Component actors, of which only the execution actor's process sees the mount (the
    broker runs there), and the mount, empty as when the optional Secret is absent. This
    process (the driver, like the API's) has neither key nor mount."""
    mount = tmp_path / "exchange"
    mount.mkdir()
    prefix = f"t{uuid.uuid4().hex[:8]}"
    handles: dict[str, Any] = {
        name: ray.remote(cls)
        .options(
            name=f"{prefix}-{name}",
            namespace=NAMESPACE,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=2000,
            num_cpus=0,
            runtime_env={"env_vars": {DIR_VAR: str(mount)} if name == "execution" else {}},
        )
        .remote(None, str(tmp_path / "data"))
        for name, cls in COMPONENTS.items()
    }
    yield Components(**handles), mount
    for handle in handles.values():
        ray.kill(handle, no_restart=True)


async def started(mgr: SessionManager, config: SessionConfig) -> tuple[str, str]:
    """Start a session; its id and status once it is running or failed."""
    sid = await mgr.start(config)
    loop = asyncio.get_running_loop()
    end = loop.time() + 60
    while mgr.runs[sid].status == "starting":
        assert loop.time() < end, "the live session neither started nor failed"
        await asyncio.sleep(0.1)
    return sid, mgr.runs[sid].status


@pytest.mark.asyncio
async def test_the_execution_actor_trades_with_keys_only_its_node_has(
    node_with_a_mount: tuple[Components, Path],
    venue: FakeExchange,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    components, mount = node_with_a_mount
    monkeypatch.setenv("RAYTRADER_ALLOW_LIVE", "1")
    assert DIR_VAR not in os.environ
    venue.api_key = KEY
    mgr = SessionManager(components)
    try:
        # No Secret: the session fails, its reason naming what to put in the Secret.
        sid, status = await started(mgr, live_config(venue))
        assert status == "failed"
        assert f"set {PREFIX}API_KEY and {PREFIX}SECRET" in mgr.runs[sid].reason
        assert venue.order_requests() == []

        # The Secret created later: the next session finds it, no actor restarted.
        write_secret_volume(mount, keys())
        sid, status = await started(mgr, live_config(venue))
        assert status == "running", mgr.runs[sid].reason
        assert await mgr.stop(sid) == "stopping"
        assert await mgr.wait(sid, 10) == "stopped"
    finally:
        await mgr.shutdown()
    assert private_keys(venue) == {KEY}  # the broker reconciled with the node's keys
