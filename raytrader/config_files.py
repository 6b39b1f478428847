"""YAML config files: read, parse, validate against a pydantic model, one error format.

Every ``load_*_config`` of the project goes through ``load_config_file``, so a file that
cannot be read, is not YAML, is not a mapping or fails validation gives the same
``ConfigError``: the file's path, then each problem with the dotted field it concerns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from raytrader.data.spec import DataSpec

__all__ = [
    "ConfigError",
    "load_config_file",
    "read_yaml_mapping",
    "validate_config",
    "validation_problems",
]

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A config file could not be read or failed validation; the message names the file."""


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML file; ``ConfigError`` when it is not one."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return raw


def validation_problems(exc: ValidationError) -> str:
    """Every error of ``exc`` as ``field.path: message``, joined by ``; ``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'config'}: "
        f"{err['msg'].removeprefix('Value error, ')}"
        for err in exc.errors()
    )


def validate_config(raw: Any, model: type[M], where: str = "config") -> M:
    """Validate a parsed mapping as ``model``; ``ConfigError`` naming ``where`` and every
    problem's field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {validation_problems(exc)}") from exc


def load_config_file(path: str | Path, model: type[M]) -> M:
    """Read ``path`` and validate it as ``model``; a ``data`` field's relative paths are
    resolved against the file's directory."""
    path = Path(path)
    config = validate_config(read_yaml_mapping(path), model, str(path))
    data = getattr(config, "data", None)
    if isinstance(data, DataSpec):
        config = config.model_copy(update={"data": data.relative_to(path.parent)})
    return config
