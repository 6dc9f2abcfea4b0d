"""Starting, joining and leaving Ray, and the CPUs each actor reserves.

Shared by the learning backend, the evaluators and the benchmarks, so that every part of distgp
starts Ray the same way and reports a failure the same way.
"""

from __future__ import annotations

import os
import signal
import threading

from distgp.exceptions import BackendError, ConfigError


def connect(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Start a local Ray instance (``address=None``) or join a cluster, unless Ray already runs.

    Args:
        address: ``None`` for a local instance; else ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``.
        num_cpus: CPUs of a local instance (default: all of this machine's).

    Returns:
        Whether this call started Ray: the caller then owns it and passes ``True`` to
        :func:`disconnect` when done.
    """
    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": False, "configure_logging": False}
    on_sigterm = _sigterm_handler()
    try:
        if address is None:
            # "local" always starts a new instance: never join a cluster the user did not name.
            ray.init(
                address="local",
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                **quiet,
            )
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BackendError(
            f"cannot start or reach {where} ({first}); check the address, or start a cluster "
            "with 'ray start --head'"
        ) from None
    if on_sigterm is not None:  # ray.init's own handler dumps a C++ stack trace on SIGTERM
        signal.signal(signal.SIGTERM, on_sigterm)
    return True


def _sigterm_handler():
    """This process's SIGTERM handler, or ``None`` outside the main thread (where it cannot be
    set back)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.getsignal(signal.SIGTERM)


def disconnect(owned: bool) -> None:
    """Shut Ray down if ``owned`` (the value :func:`connect` returned) and it still runs."""
    import ray

    if owned and ray.is_initialized():
        ray.shutdown()


def check_share_fraction(fraction: float) -> float:
    """Validate the fraction of the fair CPU share an actor reserves (see :func:`cpu_share`)."""
    if not 0 < fraction <= 1:
        raise ConfigError(f"share_fraction must be in (0, 1], got {fraction}")
    return fraction


def cpu_share(agents: int, cpus_per_agent: float | None, fraction: float = 1.0) -> float:
    """CPUs each of ``agents`` actors reserves on the connected cluster.

    ``cpus_per_agent`` when given; otherwise ``fraction`` of the fair share
    ``min(1, CPUs / agents)`` (0.5 leaves room for another set of actors that alternates with
    these, as BKB's evaluating and learning agents do).
    """
    if cpus_per_agent:
        return cpus_per_agent
    return fraction * min(1.0, cluster_cpus() / max(agents, 1))


def cluster_cpus() -> float:
    """CPUs of the connected cluster."""
    import ray

    return float(ray.cluster_resources().get("CPU", 1.0))


def cluster_gpus() -> float:
    """GPUs of the connected cluster (0 when it has none)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))
