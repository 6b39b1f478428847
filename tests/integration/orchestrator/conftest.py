"""Helpers of the orchestrator tests; the Ray runtime and ``manager`` live in tests/conftest.py."""

from __future__ import annotations

from raytrader.orchestrator.runtime import Components
from raytrader.orchestrator.sessions import SessionManager


def components_of(mgr: SessionManager) -> Components:
    return mgr.c
