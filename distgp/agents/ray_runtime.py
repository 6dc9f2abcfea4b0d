"""Starting, joining and leaving Ray, and the CPUs each actor reserves.

Shared by the learning backend, the evaluators and the benchmarks, so that every part of distgp
starts Ray the same way and reports a failure the same way.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence

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
    captured: list[str] = []
    held = _HeldSignals()  # Ctrl-C inside ray.init would orphan the processes it started
    try:
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
                # Ray's C++ client logs each failed GCS retry (a refused token: 20 lines in
                # 20 s) to fd 2: held back, shown on success, summed up on failure
                with _captured_stderr() as captured:
                    ray.init(address=address, **quiet)
                sys.stderr.write(captured[0])
        finally:
            held.release()  # ray.init's own SIGTERM handler dumps a C++ stack trace: ours again
    except Exception as exc:
        held.deliver()  # a signal to the whole process group stopped Ray's own processes
        where = "a local Ray instance" if address is None else f"the Ray cluster at {address}"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        detail = f"{exc}\n{''.join(captured)}"
        raise BackendError(
            f"cannot start or reach {where} ({first}); {_connect_hint(address, detail)}"
        ) from None
    if held.interrupted:  # a complete instance shuts down cleanly; then the signal acts
        ray.shutdown()
        held.deliver()
    return True


@contextlib.contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """File descriptor 2 (C++ logs too) into a temporary file; its text is appended to the
    list yielded when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    captured: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode(errors="replace"))


def _connect_hint(address: str | None, detail: str) -> str:
    """What to do when ``ray.init`` failed (``detail``: its error and the logs it wrote): a
    cluster that answers but refuses this process's token fails like a wrong address."""
    token_mode = os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"
    how = (
        "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN_PATH=<the cluster's token file> "
        "(cluster/README.md, Security defaults)"
    )
    if address in (None, "auto", "local"):
        return "check the address, or start a cluster with 'ray start --head'"
    if "authtoken" in detail.lower() or "unauthenticated" in detail.lower():
        return f"the cluster refused this process's token: {how}"
    if not token_mode:
        return f"the cluster may have refused this process's token: {how}, or check the address"
    return "check the address, or start a cluster with 'ray start --head'"


class _HeldSignals:
    """SIGINT and SIGTERM held back while Ray starts, then given back (in the main thread
    only, where handlers can be set): interrupted mid-start, ``ray.init`` leaves processes
    that nothing can stop. ``caught``: the signals that arrived meanwhile."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.caught: list[int] = []
        self.previous: dict[int, object] = {}
        self._ray_setter = None
        if threading.current_thread() is threading.main_thread():
            for number in self.SIGNALS:
                self.previous[number] = signal.signal(number, self._hold)
            # ray.init first sets a SIGTERM handler of its own (sys.exit), which would end it
            # half-way: it sets none while held (a private helper; left alone if it moved)
            from ray._private import utils as ray_utils

            self._ray_setter = getattr(ray_utils, "set_sigterm_handler", None)
            if self._ray_setter is not None:
                ray_utils.set_sigterm_handler = lambda handler: None

    def _hold(self, number: int, frame) -> None:
        self.caught.append(number)

    def release(self) -> None:
        """Give the handlers back."""
        if self._ray_setter is not None:
            from ray._private import utils as ray_utils

            ray_utils.set_sigterm_handler = self._ray_setter
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    @property
    def interrupted(self) -> bool:
        """Whether a signal arrived whose own handler does not ignore it."""
        return any(self.previous.get(n) is not signal.SIG_IGN for n in self.caught)

    def deliver(self) -> None:
        """Let the first signal that arrived act (Ctrl-C raises KeyboardInterrupt, SIGTERM
        distgp's Terminated); KeyboardInterrupt if its handler did not raise. Nothing when no
        signal arrived, or only ignored ones."""
        if self.interrupted:
            self.release()  # again: ray.shutdown() puts SIGTERM's default action back
            signal.raise_signal(self.caught[0])
            raise KeyboardInterrupt


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


RESOURCE_STEPS = 10_000  # Ray counts fractional resource amounts in steps of 1e-4
RESOURCE_STEP = 1 / RESOURCE_STEPS


def round_share(share: float) -> float:
    """``share`` rounded down to Ray's granularity, never below one step."""
    steps = math.floor(share * RESOURCE_STEPS + 1e-6)
    return max(1, steps) / RESOURCE_STEPS


def packed_share(agents: int, cpus: Sequence[float]) -> float:
    """The largest share ``s <= 1`` with ``sum(floor(c / s) for c in cpus) >= agents``: each
    actor must fit on one node. Rounded down to Ray's granularity; 1 when no node has CPUs
    (an autoscaler may add some)."""
    cpus = [c for c in cpus if c > 0]
    if agents <= 0 or not cpus:
        return 1.0

    def fits(s: float) -> bool:
        return sum(math.floor(c / s + 1e-9) for c in cpus) >= agents

    candidates = sorted({min(1.0, c / k) for c in cpus for k in range(1, agents + 1)}, reverse=True)
    best = next((s for s in candidates if fits(s)), RESOURCE_STEP)
    return round_share(best)


def placement_share(
    nodes: Sequence[Mapping[str, float]], placements: Sequence[Mapping[str, float]]
) -> float:
    """The largest CPU share (:func:`packed_share`) at which agents with these ``placements``
    (the resources each asks for; empty: any node) pack into the ``nodes`` (each node's
    resources, ``CPU`` among them).

    Conservative: for the nodes each placement admits, every agent restricted to a subset of
    them must pack there; the smallest such share is taken."""

    def admits(need: Mapping[str, float]) -> frozenset[int]:
        return frozenset(
            i for i, node in enumerate(nodes) if all(node.get(r, 0) >= a for r, a in need.items())
        )

    eligible = [admits(need) for need in placements]
    share = 1.0
    for group in set(eligible):
        agents = sum(1 for e in eligible if e <= group)
        share = min(share, packed_share(agents, [nodes[i].get("CPU", 0.0) for i in group]))
    return share


def alive_nodes() -> list[dict[str, float]]:
    """The resources of each live node of the connected cluster."""
    import ray

    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def node_cpus_text(nodes: Sequence[Mapping[str, float]]) -> str:
    """The CPUs of each node, for messages: ``2 nodes of 1, 1 CPU``."""
    sizes = ", ".join(f"{n.get('CPU', 0.0):g}" for n in nodes)
    return f"{len(nodes)} node{'s' if len(nodes) != 1 else ''} of {sizes} CPU"


def cpu_share(
    agents: int,
    cpus_per_agent: float | None,
    fraction: float = 1.0,
    placements: Sequence[Mapping[str, float]] | None = None,
) -> float:
    """CPUs each of ``agents`` actors reserves on the connected cluster.

    ``cpus_per_agent`` when given; otherwise ``fraction`` of the fair share: the largest share
    at most 1 at which the actors pack into the live nodes, each on one node and pinned ones
    (``placements``) on the nodes that carry their resources (:func:`placement_share`). 0.5
    leaves room for another set of actors that alternates with these, as BKB's evaluating and
    learning agents do. Rounded down to Ray's granularity (1e-4), never 0.
    """
    if cpus_per_agent:
        return cpus_per_agent
    placements = list(placements) if placements is not None else [{}] * max(agents, 1)
    return round_share(fraction * placement_share(alive_nodes(), placements))


def cluster_cpus() -> float:
    """CPUs of the connected cluster."""
    import ray

    return float(ray.cluster_resources().get("CPU", 1.0))


def cluster_gpus() -> float:
    """GPUs of the connected cluster (0 when it has none)."""
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))
