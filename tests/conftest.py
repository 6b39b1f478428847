"""Shared test settings."""

from __future__ import annotations

import os

# Plots are written to files in tests, never shown.
os.environ.setdefault("MPLBACKEND", "Agg")

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from raytrader.orchestrator.sessions import SessionManager


def make_gbm_frame(n: int, seed: int = 0, freq: str = "1D", vol: float = 0.02) -> pd.DataFrame:
    """A seeded random-walk OHLCV frame (tests build their own data, not the bundled set)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, vol / 4, n))
    spread = np.abs(rng.normal(0, vol / 2, n))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    index = pd.date_range("2020-01-01", periods=n, freq=freq, tz="UTC", name="ts")
    volume = rng.integers(1_000, 10_000, n).astype(float)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


@pytest.fixture
def gbm_frame() -> Callable[..., pd.DataFrame]:
    return make_gbm_frame


# Ray is imported only by the tests that use these fixtures: unit tests start no runtime.


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[None]:
    """One local Ray runtime for the whole test run (start-up costs seconds: never twice)."""
    import ray

    from raytrader.orchestrator.runtime import init_ray

    init_ray(num_cpus=2)
    yield
    ray.shutdown()


@pytest_asyncio.fixture
async def manager(ray_runtime: None, tmp_path: Path) -> AsyncIterator[SessionManager]:
    """A session manager over fresh component actors and a SQLite store in ``tmp_path``."""
    import ray

    from raytrader.orchestrator.runtime import start_components
    from raytrader.orchestrator.sessions import SessionManager

    prefix = f"t{uuid.uuid4().hex[:8]}"
    components = start_components(None, str(tmp_path), prefix=prefix)
    mgr = SessionManager(components)
    yield mgr
    await mgr.shutdown()
    for handle in components.handles().values():
        ray.kill(handle, no_restart=True)
