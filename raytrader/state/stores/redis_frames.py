"""``RedisFrameMemo``: Redis keeps the answers of OHLCV cache reads, for every worker of a cluster.

The Parquet cache (``raytrader.data.ohlcv_cache``) stays the source of truth; Redis only spares
workers the file reads (and a shared volume). Covered ranges hold closed bars, so an answer
never goes stale: entries expire after ``ttl`` seconds only to bound memory. A Redis error is
logged and treated as a miss: the cache works without it.
"""

from __future__ import annotations

from typing import Final

import structlog
from redis import Redis
from redis.exceptions import RedisError

__all__ = ["RedisFrameMemo"]

log = structlog.get_logger("raytrader.state.redis_frames")

DEFAULT_PREFIX: Final = "raytrader:"
DEFAULT_TTL: Final = 7 * 86_400


class RedisFrameMemo:
    """Frames as bytes under ``prefix + key`` in Redis, expiring after ``ttl`` seconds."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, ttl: int = DEFAULT_TTL) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0 seconds, got {ttl}")
        self.client: Redis = Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self.prefix = prefix
        self.ttl = ttl

    def get(self, key: str) -> bytes | None:
        try:
            value = self.client.get(self.prefix + key)
        except RedisError as exc:
            log.warning("redis_frames.get_failed", error=type(exc).__name__)
            return None
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes) -> None:
        try:
            self.client.set(self.prefix + key, value, ex=self.ttl)
        except RedisError as exc:
            log.warning("redis_frames.set_failed", error=type(exc).__name__)

    def close(self) -> None:
        self.client.close()
