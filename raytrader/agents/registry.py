"""Agents by name: built-ins plus third-party agents from the ``raytrader.agents`` entry points."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, TypeVar

from pydantic import ValidationError

from raytrader.agents.base import API_VERSION, Agent, AgentParams

ENTRY_POINT_GROUP = "raytrader.agents"

_REGISTRY: dict[str, type[Agent]] = {}

A = TypeVar("A", bound=type[Agent])


class UnknownAgentError(ValueError):
    """No agent is registered under the requested name."""


class AgentConfigError(ValueError):
    """An agent's parameters failed validation."""


def register(cls: A) -> A:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    name = getattr(cls, "name", None)
    if not name:
        raise ValueError(f"{cls.__qualname__} has no `name` to register under")
    if cls.api_version != API_VERSION:
        raise ValueError(
            f"agent {name!r} targets agent API {cls.api_version}, this raytrader has {API_VERSION}"
        )
    existing = _REGISTRY.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"agent name {name!r} is taken by {existing.__module__}.{existing.__name__}"
        )
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    # Importing the modules runs their @register decorators.
    from raytrader.agents import ensemble, ml_agent, rl_agent, rules  # noqa: F401


def _load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _REGISTRY:
            continue
        obj = ep.load()
        if not (isinstance(obj, type) and issubclass(obj, Agent)):
            raise TypeError(f"entry point {ep.name!r} ({ep.value}) is not an Agent subclass")
        if obj.name != ep.name:
            raise ValueError(f"entry point {ep.name!r} points at agent named {obj.name!r}")
        register(obj)


def available() -> list[str]:
    """Names of every agent that can be created."""
    _load_builtins()
    _load_entry_points()
    return sorted(_REGISTRY)


def get(name: str) -> type[Agent]:
    """The agent class registered as ``name``."""
    _load_builtins()
    if name not in _REGISTRY:
        _load_entry_points()
    try:
        return _REGISTRY[name]
    except KeyError:
        names = sorted(_REGISTRY)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownAgentError(f"unknown agent {name!r}{hint} (available: {names})") from None


def params_schema(name: str) -> type[AgentParams]:
    return get(name).Params


def create(name: str, params: Mapping[str, Any] | None = None) -> Agent:
    """Instantiate agent ``name`` with validated ``params``."""
    cls = get(name)
    try:
        validated = cls.Params(**dict(params or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(params)'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise AgentConfigError(f"agent {name!r}: invalid params: {problems}") from exc
    return cls(validated)
