"""One local Ray runtime for the whole test run, and component actors per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
import ray

from raytrader.orchestrator.runtime import Components, init_ray, start_components
from raytrader.orchestrator.sessions import SessionManager


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[None]:
    init_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest_asyncio.fixture
async def manager(ray_runtime: None, tmp_path: Path) -> AsyncIterator[SessionManager]:
    """A session manager over fresh component actors and a SQLite store in ``tmp_path``."""
    prefix = f"t{uuid.uuid4().hex[:8]}"
    components = start_components(None, str(tmp_path), prefix=prefix)
    mgr = SessionManager(components)
    yield mgr
    await mgr.shutdown()
    for handle in components.handles().values():
        ray.kill(handle, no_restart=True)


def components_of(mgr: SessionManager) -> Components:
    return mgr.c
