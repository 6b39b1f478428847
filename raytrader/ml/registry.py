"""A versioned model registry in a directory: ``<root>/<name>/<version>/``.

Each version holds ``model.joblib`` (the fitted pipeline) and ``metadata.json`` beside it
(features, params, training window, data hash, seed, CV metrics, feature importance, library
versions). Versions count up from 1 per name. ``metadata.json`` is written last and
atomically, so a version without it (a crashed save) is invisible and its number is not
reused.
"""

from __future__ import annotations

import contextlib
import json
import platform
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ModelNotFoundError",
    "ModelRecord",
    "ModelRegistry",
    "RegisteredModel",
    "TrainingInfo",
    "library_versions",
]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_MODEL_FILE = "model.joblib"
_META_FILE = "metadata.json"


class ModelNotFoundError(LookupError):
    """No model, or no such version of it, in the registry."""

    def __str__(self) -> str:  # LookupError would quote the message like a key
        return str(self.args[0])


class TrainingInfo(BaseModel):
    """What a training run knows about the model it saves."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    kind: str = Field(description="model kind, e.g. xgboost")
    features: list[str]
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    training_start: datetime | None = None
    training_end: datetime | None = None
    n_samples: int = 0
    data_hash: str = ""
    cv_metrics: dict[str, float] = Field(default_factory=dict)
    feature_config: dict[str, Any] = Field(
        default_factory=dict, description="how to rebuild the features at prediction time"
    )
    label_config: dict[str, Any] = Field(default_factory=dict)
    symbol: str | None = None
    search: dict[str, Any] | None = Field(
        None, description="the parameter search that chose params: method, objective, best trials"
    )


class ModelRecord(TrainingInfo):
    """The metadata of one saved version."""

    name: str
    version: int
    created_at: datetime
    feature_importance: dict[str, float] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class RegisteredModel:
    """A loaded version: the fitted model and its metadata."""

    model: Any
    record: ModelRecord


def library_versions() -> dict[str, str]:
    """Versions of the libraries a saved model depends on."""
    out = {"python": platform.python_version()}
    for dist in ("raytrader", "numpy", "pandas", "scikit-learn", "xgboost", "joblib"):
        with contextlib.suppress(PackageNotFoundError):
            out[dist] = version(dist)
    return out


def _default_root() -> Path:
    from raytrader.settings import Settings

    return Settings().data_dir / "models"


class ModelRegistry:
    """Save, list, load and delete model versions under ``root``.

    ``root`` defaults to ``models/`` in the data directory (``RAYTRADER_DATA_DIR``).
    """

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root) if root is not None else _default_root()

    # -- writing ---------------------------------------------------------------------------

    def save(self, name: str, model: Any, info: TrainingInfo) -> ModelRecord:
        """Store ``model`` as the next version of ``name``; returns its metadata."""
        import joblib  # type: ignore[import-untyped]

        _check_name(name)
        importance: dict[str, float] = {}
        with contextlib.suppress(TypeError, ValueError, AttributeError):
            from raytrader.ml.models import feature_importance

            importance = feature_importance(model, info.features)
        folder, number = self._new_version_dir(name)
        record = ModelRecord(
            **info.model_dump(),
            name=name,
            version=number,
            created_at=datetime.now(UTC),
            feature_importance=importance,
            library_versions=library_versions(),
        )
        joblib.dump(model, folder / _MODEL_FILE)
        tmp = folder / f".{_META_FILE}.tmp"
        tmp.write_text(record.model_dump_json(indent=2), encoding="utf-8")
        tmp.replace(folder / _META_FILE)
        return record

    def _new_version_dir(self, name: str) -> tuple[Path, int]:
        base = self.root / name
        base.mkdir(parents=True, exist_ok=True)
        taken = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
        number = max(taken, default=0) + 1
        while True:  # mkdir is the lock: two concurrent saves never share a version
            try:
                (base / str(number)).mkdir()
            except FileExistsError:
                number += 1
                continue
            return base / str(number), number

    def delete(self, name: str, version: int) -> None:
        """Remove one version (the name goes when its last version does)."""
        folder = self._version_dir(name, version)
        shutil.rmtree(folder)
        base = self.root / name
        if not any(p.name.isdigit() for p in base.iterdir()):
            shutil.rmtree(base)

    # -- reading ---------------------------------------------------------------------------

    def names(self) -> list[str]:
        """Names with at least one complete version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._versions(p.name))

    def versions(self, name: str) -> list[int]:
        """Complete versions of ``name``, oldest first."""
        _check_name(name)
        found = self._versions(name)
        if not found:
            raise ModelNotFoundError(f"no model named {name!r} (available: {self.names()})")
        return found

    def _versions(self, name: str) -> list[int]:
        base = self.root / name
        if not base.is_dir():
            return []
        return sorted(
            int(p.name) for p in base.iterdir() if p.name.isdigit() and (p / _META_FILE).is_file()
        )

    def list(self, name: str | None = None) -> list[ModelRecord]:
        """Metadata of every version (of ``name`` only, if given), by name then version."""
        names = [name] if name is not None else self.names()
        return [self.metadata(n, v) for n in names for v in self.versions(n)]

    def metadata(self, name: str, version: int | None = None) -> ModelRecord:
        """Metadata of a version (the latest when ``version`` is None)."""
        folder = self._version_dir(name, version)
        text = (folder / _META_FILE).read_text(encoding="utf-8")
        return ModelRecord.model_validate(json.loads(text))

    def load(self, name: str, version: int | None = None) -> RegisteredModel:
        """The fitted model and metadata of a version (the latest when ``version`` is None)."""
        import joblib

        folder = self._version_dir(name, version)
        record = self.metadata(name, int(folder.name))
        return RegisteredModel(model=joblib.load(folder / _MODEL_FILE), record=record)

    def feature_importance(self, name: str, version: int | None = None) -> dict[str, float]:
        """Importance per feature recorded when the version was saved."""
        return dict(self.metadata(name, version).feature_importance)

    def _version_dir(self, name: str, version: int | None) -> Path:
        found = self.versions(name)
        number = found[-1] if version is None else version
        if number not in found:
            raise ModelNotFoundError(f"model {name!r} has no version {number} (versions: {found})")
        return self.root / name / str(number)


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise ValueError(
            f"invalid model name {name!r}: letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
