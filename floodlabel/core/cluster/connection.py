"""Ray, the optional cluster engine behind `embed --ray` and `eval --ray` (the `floodlabel[cluster]` extra).

    ray = connect("local")               # a one-machine Ray on loopback, shut down by disconnect()
    ray = connect("10.0.0.5:6379")       # a running cluster (`ray start --head` printed the address)

Nothing here is imported unless --ray is given; without Ray installed, `require_ray` raises one readable line.
Workers get the driver's FLOODLABEL_* variables (device, precision, cache folder and limit) through `worker_env`,
applied by `apply_env` before they open a model, so every node uses the same cache key and shared folder.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from floodlabel.core.common.errors import FloodLabelError

LOCAL = "local"
INSTALL_HINT = ("Ray is not installed: install the cluster extra, e.g. `.venv/bin/pip install -e '.[cluster]'` "
                "(or `pip install 'floodlabel[cluster]'`), or run without --ray")


class ClusterError(FloodLabelError):
    """Ray is missing, or the cluster cannot be reached."""


def require_ray() -> Any:
    """The `ray` module (with Ray Data), or ClusterError with the install command."""
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] part of the extra)
    except ImportError as exc:
        raise ClusterError(f"{INSTALL_HINT} ({exc})") from None
    return ray


def connect(address: str, num_cpus: int | None = None) -> tuple[Any, bool]:
    """(ray, started): joins the Ray in this process if one is already up (started=False: leave it running),
    else starts one ("local": a single-machine Ray bound to 127.0.0.1, no dashboard) or connects to `address`.

    Raises ClusterError when Ray is missing or the address cannot be reached."""
    ray = require_ray()
    _quiet_data(ray)
    if ray.is_initialized():
        return ray, False
    for name in ("ray", "ray.data", "ray.train"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        if address == LOCAL:
            ray.init(num_cpus=num_cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                     configure_logging=False, log_to_driver=True)
        else:
            ray.init(address=address, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {exc}") from None
    return ray, True


def _quiet_data(ray: Any) -> None:
    """Ray Data's per-operator progress lines would bury FloodLabel's own progress and summary."""
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
    except AttributeError:
        pass


def disconnect(ray: Any, started: bool) -> None:
    if started:
        ray.shutdown()


@contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """`connect(address)` for a `with` block (one Ray for a whole command), then shut down if it was started
    here. None: no Ray (yields None)."""
    if address is None:
        yield None
        return
    ray, started = connect(address)
    try:
        yield ray
    finally:
        disconnect(ray, started)


def worker_env() -> dict[str, str]:
    """The driver's FLOODLABEL_* variables, for the workers."""
    return {k: v for k, v in os.environ.items() if k.startswith("FLOODLABEL_")}


def apply_env(env: dict[str, str]) -> None:
    """Make a worker process see the driver's FLOODLABEL_* variables (and none left from an earlier job)."""
    for k in [k for k in os.environ if k.startswith("FLOODLABEL_") and k not in env]:
        del os.environ[k]
    os.environ.update(env)


def resources(ray: Any) -> tuple[int, int]:
    """(CPUs, GPUs) of the cluster."""
    res = ray.cluster_resources()
    return int(res.get("CPU", 0)), int(res.get("GPU", 0))
