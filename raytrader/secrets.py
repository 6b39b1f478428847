"""Exchange API credentials: from the environment or a mounted secret file, never from configs.

For an exchange named ``binance`` (upper-cased in the variable names):

* ``RAYTRADER_EXCHANGE_BINANCE_API_KEY`` / ``..._SECRET`` / ``..._PASSWORD`` (optional): the values;
* ``RAYTRADER_EXCHANGE_BINANCE_API_KEY_FILE`` / ``..._SECRET_FILE`` / ``..._PASSWORD_FILE``: paths
  of files holding them; surrounding whitespace is dropped;
* ``RAYTRADER_EXCHANGE_CREDENTIALS_DIR``: a directory of files named like the variables
  (``<dir>/RAYTRADER_EXCHANGE_BINANCE_API_KEY``...), which is what a Kubernetes Secret with
  those keys looks like mounted as a volume: one setting serves every exchange.

Each value comes from one of these places; two at once is an error. Files are read on every
call, so a rotated Secret is picked up by the next ``load_credentials``, with no restart.

Values are held as ``SecretStr`` (printed as ``**********``), and errors name the variable, never
its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr

_NAME = re.compile(r"^[a-z0-9]{1,40}$")
_FIELDS = ("api_key", "secret", "password")
DIR_VAR = "RAYTRADER_EXCHANGE_CREDENTIALS_DIR"


class CredentialsError(ValueError):
    """Credentials are missing or badly given (the message names variables, not values)."""


class ExchangeCredentials(BaseModel):
    """API key, secret and (some exchanges) passphrase of one exchange account."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr
    secret: SecretStr
    password: SecretStr | None = None

    def ccxt_config(self) -> dict[str, Any]:
        """The constructor config ccxt wants (plain strings: keep it out of logs)."""
        out = {"apiKey": self.api_key.get_secret_value(), "secret": self.secret.get_secret_value()}
        if self.password is not None:
            out["password"] = self.password.get_secret_value()
        return out

    def values(self) -> list[str]:
        """The secret strings, for redacting messages that might echo them."""
        out = [self.api_key.get_secret_value(), self.secret.get_secret_value()]
        if self.password is not None:
            out.append(self.password.get_secret_value())
        return [v for v in out if v]


def env_prefix(exchange: str) -> str:
    if not _NAME.match(exchange):
        raise CredentialsError(f"exchange name {exchange!r} is not like 'binance'")
    return f"RAYTRADER_EXCHANGE_{exchange.upper()}_"


def _read_file(path: Path, where: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"{where}: cannot read the file ({exc.strerror})") from None


def _credentials_dir(env: Mapping[str, str]) -> Path | None:
    raw = env.get(DIR_VAR)
    if not raw:
        return None
    directory = Path(raw)
    if not directory.is_dir():
        # A mount that is missing, not an empty one (an absent optional Secret mounts empty).
        raise CredentialsError(f"{DIR_VAR}: {raw} is not a directory")
    return directory


def _read(var: str, env: Mapping[str, str], directory: Path | None) -> str | None:
    value = env.get(var)
    path = env.get(var + "_FILE")
    in_dir = directory / var if directory is not None and (directory / var).exists() else None
    given = [
        name
        for name, found in ((var, value), (var + "_FILE", path), (f"{DIR_VAR}/{var}", in_dir))
        if found is not None
    ]
    if len(given) == 2:
        raise CredentialsError(f"set {given[0]} or {given[1]}, not both")
    if len(given) > 2:
        raise CredentialsError(f"set only one of {', '.join(given)}")
    if path is not None:
        return _read_file(Path(path), var + "_FILE")
    if in_dir is not None:
        return _read_file(in_dir, f"{DIR_VAR}/{var}")
    return value.strip() if value is not None else None


def load_credentials(
    exchange: str, env: Mapping[str, str] | None = None
) -> ExchangeCredentials | None:
    """The credentials of ``exchange`` from ``env`` (default: the process environment), or
    None when none of its variables is set; a key without a secret is an error."""
    env = os.environ if env is None else env
    prefix = env_prefix(exchange)
    names = {"api_key": "API_KEY", "secret": "SECRET", "password": "PASSWORD"}
    directory = _credentials_dir(env)
    got = {f: _read(prefix + names[f], env, directory) for f in _FIELDS}
    if all(v is None for v in got.values()):
        return None
    missing = [prefix + names[f] for f in ("api_key", "secret") if not got[f]]
    if missing:
        raise CredentialsError(f"incomplete credentials for {exchange}: set {', '.join(missing)}")
    return ExchangeCredentials(
        api_key=SecretStr(got["api_key"] or ""),
        secret=SecretStr(got["secret"] or ""),
        password=SecretStr(got["password"]) if got["password"] else None,
    )


def redact(text: str, secrets: Sequence[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for value in sorted(secrets, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text
