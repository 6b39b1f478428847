"""Trained policies in a versioned registry: ``<root>/<name>/<version>/``.

The ML model registry's layout and metadata (``ModelRecord``: kind, features, params, seed,
training window, data hash, library versions), with the policy saved by stable-baselines3
(``policy.zip``) instead of joblib: a policy holds torch modules that SB3 knows how to save
and reload on another machine. Policies live beside, not among, the ML models (default
``<data dir>/policies``), so neither agent can pick up the other's artifacts.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from raytrader.ml.registry import (
    ModelNotFoundError,
    ModelRecord,
    ModelRegistry,
    RegisteredModel,
    TrainingInfo,
    _check_name,
    library_versions,
)

__all__ = ["ModelNotFoundError", "PolicyRegistry", "algo_class", "rl_library_versions"]

_POLICY_FILE = "policy.zip"
_META_FILE = "metadata.json"


def algo_class(kind: str) -> Any:
    """The stable-baselines3 algorithm class of ``kind`` (ppo, a2c, dqn, sac, td3)."""
    import stable_baselines3 as sb3

    classes = {"ppo": sb3.PPO, "a2c": sb3.A2C, "dqn": sb3.DQN, "sac": sb3.SAC, "td3": sb3.TD3}
    try:
        return classes[kind]
    except KeyError:
        raise ValueError(f"unknown RL algorithm {kind!r} (known: {sorted(classes)})") from None


def rl_library_versions() -> dict[str, str]:
    """The ML registry's versions plus those a policy depends on."""
    out = library_versions()
    for dist in ("torch", "gymnasium", "stable-baselines3"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


def _default_root() -> Path:
    from raytrader.settings import Settings

    return Settings().data_dir / "policies"


class PolicyRegistry(ModelRegistry):
    """Save, list, load and delete trained policies; ``root`` defaults to ``policies/`` in the
    data directory (``RAYTRADER_DATA_DIR``)."""

    def __init__(self, root: Path | str | None = None) -> None:
        super().__init__(root if root is not None else _default_root())

    def save(self, name: str, model: Any, info: TrainingInfo) -> ModelRecord:
        """Store an SB3 ``model`` as the next version of ``name``; returns its metadata."""
        _check_name(name)
        algo_class(info.kind)  # an unknown kind could never be loaded again
        folder, number = self._new_version_dir(name)
        record = ModelRecord(
            **info.model_dump(),
            name=name,
            version=number,
            created_at=datetime.now(UTC),
            library_versions=rl_library_versions(),
        )
        model.save(folder / _POLICY_FILE)
        # Metadata last and atomically: a version without it is invisible (a crashed save).
        tmp = folder / f".{_META_FILE}.tmp"
        tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
        tmp.replace(folder / _META_FILE)
        return record

    def load(self, name: str, version: int | None = None) -> RegisteredModel:
        """The policy (on the CPU) and metadata of a version (the latest when None)."""
        folder = self._version_dir(name, version)
        record = self.metadata(name, int(folder.name))
        model = algo_class(record.kind).load(folder / _POLICY_FILE, device="cpu")
        return RegisteredModel(model=model, record=record)
