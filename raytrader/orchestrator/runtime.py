"""Ray start-up and the component actors."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Any

import ray

from raytrader.orchestrator.actors import COMPONENTS

NAMESPACE = "raytrader"


def init_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join ``address`` (or ``RAY_ADDRESS``) when given, else start an embedded local Ray.

    ``ray.init`` installs its own SIGTERM/SIGINT handlers; the caller's are put back so that
    a server's graceful shutdown still runs on ``kill -TERM``.
    """
    if ray.is_initialized():
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    # "local" always starts an embedded runtime: without it Ray would join whatever cluster
    # the last `ray start` on this machine left behind.
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    kwargs: dict[str, Any] = {"namespace": NAMESPACE, "log_to_driver": False}
    if address == "local":
        # Stay on loopback: an embedded runtime has no business on the network.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
    ray.init(address=address, **kwargs)
    for sig, handler in saved.items():
        if handler is not None:
            signal.signal(sig, handler)


@dataclass(frozen=True)
class Components:
    data: Any
    strategy: Any
    portfolio: Any
    risk: Any
    execution: Any
    state: Any

    def handles(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in COMPONENTS}


def start_components(
    store_url: str | None,
    data_dir: str,
    prefix: str = "raytrader",
    store_prefix: str | None = None,
) -> Components:
    """Create (or find, on a cluster) the long-lived component actors.

    Each restarts without limit when its process dies; a restarted actor starts empty and
    sessions reload it from the store. ``store_prefix`` namespaces the keys of a Redis store.
    """
    handles = {}
    for name, cls in COMPONENTS.items():
        actor_cls = ray.remote(cls)
        handles[name] = actor_cls.options(
            name=f"{prefix}-{name}",
            namespace=NAMESPACE,
            get_if_exists=True,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=2000,
            num_cpus=0,
        ).remote(store_url, data_dir, store_prefix)
    return Components(**handles)
