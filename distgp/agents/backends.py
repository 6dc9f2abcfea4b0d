"""Backends move messages between the driver and the agents; they do no learning.

* :class:`InlineBackend`: every agent in this process, called in turn. Fast and deterministic; for
  tests, debugging and single-agent fits.
* :class:`RayBackend`: one Ray actor per agent. With no address it starts a local Ray instance
  (the local multiprocess simulation); with an address it joins that cluster and spreads the agents
  over its nodes. Each agent reserves a share of the CPUs (and, when asked, of a GPU) and uses
  as many threads as its CPU share holds (at least one), whatever the environment says.

Both encode every call into bytes (:mod:`distgp.consensus.wire`), hand only those bytes to the
agent, and decode the bytes it answers; :class:`Traffic` counts them, both ways, with the float64
comparators beside. They return, per agent, either the decoded answer or an :class:`AgentFailure`
(the agent died or did not answer in time); :meth:`Backend.recover` rebuilds a failed agent from
its shard (the same arrays, or the same file on a node of the same placement).

Fault injection (tests and ``distgp bench faults``): :meth:`RayBackend.kill` kills an agent's
process, and ``RayBackend(agent_class=...)`` runs a subclass of :class:`Agent` (for instance one
that hangs in a given round) inside the actors.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from distgp.agents.agent import Agent, ShardArrays, ShardFile
from distgp.agents.ray_runtime import (
    RESOURCE_STEP,
    alive_nodes,
    check_share_fraction,
    cluster_cpus,
    cluster_gpus,
    connect,
    cpu_share,
    disconnect,
    node_cpus_text,
    round_share,
)
from distgp.consensus import wire
from distgp.exceptions import BackendError, ConfigError, InputDataError
from distgp.threads import check_threads

BACKENDS = ("inline", "ray")
START_TIMEOUT = 120.0  # seconds an agent's actor may take to start (scheduling, process, imports)
PLACED_RESTART_TIMEOUT = 30.0  # a pinned agent's replacement: its node may just have died
MIN_RESTART_WAIT = 10.0  # the least a replacement may take to start, whatever the round timeout


@dataclass(frozen=True)
class AgentFailure:
    """An agent that did not answer a call.

    Attributes:
        agent: agent index.
        reason: ``died`` (process lost) or ``timeout`` (no answer within the round timeout).
        detail: the underlying message.
    """

    agent: int
    reason: str
    detail: str = ""


@dataclass
class Traffic:
    """Bytes that crossed between the driver and the agents, both ways.

    Attributes:
        bytes: what was sent, as encoded.
        float64_bytes: the same messages with float64 fields in the same support coding.
        dense_float64_bytes: the same messages with dense float64 vectors.
        messages: messages counted.
    """

    bytes: int = 0
    float64_bytes: int = 0
    dense_float64_bytes: int = 0
    messages: int = 0

    def add(self, data: bytes, decoded: Any) -> None:
        self.bytes += len(data)
        self.float64_bytes += wire.float64_size(decoded)
        self.dense_float64_bytes += wire.dense_float64_size(decoded)
        self.messages += 1

    def snapshot(self) -> Traffic:
        return Traffic(self.bytes, self.float64_bytes, self.dense_float64_bytes, self.messages)


Shard = ShardArrays | ShardFile


class Backend(ABC):
    """Transport of encoded messages between the driver and ``N`` agents.

    Attributes:
        traffic: every byte counted so far.
        recorder: when a list, every message is appended as ``(direction, agent, bytes)`` with
            direction ``"down"`` (to the agent) or ``"up"`` (tests audit it).
    """

    name = "abstract"

    def __init__(self) -> None:
        self._shards: list[Shard] = []
        self.traffic = Traffic()
        self.recorder: list[tuple[str, int, bytes]] | None = None

    @property
    def agents(self) -> int:
        return len(self._shards)

    @abstractmethod
    def start(self, shards: list[Shard]) -> None:
        """Create one agent per shard. A file shard's spec crosses (and is counted); arrays are
        the simulation's hand-over and are not.

        Starting again replaces the previous agents (the transport, e.g. a Ray instance, is
        kept; :class:`RayBackend` hands the new shards to its live actors where it can), so one
        backend can serve several runs."""

    @abstractmethod
    def _send(self, messages: dict[int, bytes], timeout: float | None) -> dict[int, Any]:
        """Deliver encoded calls; per agent the encoded answer or an :class:`AgentFailure`."""

    @abstractmethod
    def recover(self, agent: int) -> None:
        """Replace a failed agent by a fresh one built from the same shard (not set up yet);
        :class:`BackendError` when it cannot be."""

    def call(
        self, method: str, args: dict[int, tuple], timeout: float | None = None
    ) -> dict[int, Any]:
        """Call ``method(*args[j])`` on each listed agent; failures come back as AgentFailure.

        An agent's bad-input answer (an unreadable or too small shard) raises
        :class:`InputDataError` naming the agent and its node."""
        messages = {}
        for j, a in args.items():
            decoded = [method, list(a)]
            messages[j] = wire.encode(decoded)
            self._count("down", j, messages[j], decoded)
        out: dict[int, Any] = {}
        for j, answer in self._send(messages, timeout).items():
            if isinstance(answer, AgentFailure):
                out[j] = answer
                continue
            value = wire.decode(answer)
            self._count("up", j, answer, value)
            if isinstance(value, dict) and set(value) == {"error"}:
                raise InputDataError(f"{self._who(j, value['error'])}: {value['error']}")
            out[j] = value
        return out

    def _who(self, agent: int, error: str) -> str:
        """Who answered ``error``: the agent, its node and, for a shard file, the file (unless
        the error names it already), so that a user of a glob can tell which file is meant."""
        who = f"agent {agent} on node {self.node(agent)}"
        shard = self._shards[agent] if agent < len(self._shards) else None
        if isinstance(shard, ShardFile) and os.path.basename(shard.path) not in error:
            who += f" (shard file {shard.path})"
        return who

    def _count(self, direction: str, agent: int, data: bytes, decoded: Any) -> None:
        self.traffic.add(data, decoded)
        if self.recorder is not None:
            self.recorder.append((direction, agent, data))

    def count_spec(self, agent: int, shard: Shard) -> None:
        """Count what a file shard's spec costs to send to its agent."""
        if isinstance(shard, ShardFile):
            spec = [shard.path, shard.target, [list(r) for r in shard.resources]]
            self._count("down", agent, wire.encode(spec), spec)

    def node(self, agent: int) -> str:
        """Where agent ``agent`` runs."""
        return self.nodes()[agent]

    def nodes(self) -> list[str]:
        """Where each agent runs (a node id per agent)."""
        return ["local"] * self.agents

    def shutdown(self) -> None:  # noqa: B027 (optional hook)
        """Release the agents (and a Ray instance this backend started)."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()

    def broadcast(self, method: str, *args, timeout: float | None = None) -> dict[int, Any]:
        """Call the same method with the same arguments on every agent."""
        return self.call(method, {j: args for j in range(self.agents)}, timeout)


class InlineBackend(Backend):
    """All agents in this process (no faults, no parallelism)."""

    name = "inline"

    def start(self, shards):
        self._shards = list(shards)
        self._agents = [Agent(j, shard) for j, shard in enumerate(self._shards)]
        for j, shard in enumerate(self._shards):
            self.count_spec(j, shard)

    def _send(self, messages, timeout=None):
        return {j: self._agents[j].handle(m) for j, m in messages.items()}

    def recover(self, agent):
        self._agents[agent] = Agent(agent, self._shards[agent])
        self.count_spec(agent, self._shards[agent])

    def agent(self, j: int) -> Agent:
        """Direct access to an agent (tests and debugging)."""
        return self._agents[j]


class RayBackend(Backend):
    """One Ray actor per agent.

    Args:
        address: ``None`` starts a local Ray instance; otherwise a cluster address (``auto``,
            ``HOST:PORT`` or ``ray://HOST:PORT``).
        cpus_per_agent: CPUs reserved per actor; ``None`` shares the available CPUs so that all
            agents fit at once.
        share_fraction: fraction of that fair share each actor reserves when ``cpus_per_agent``
            is ``None`` (0.5 leaves room for another set of actors that alternate with these, as
            BKB's evaluating and learning agents do).
        num_cpus: CPUs of a local instance (default: all of this machine's).
        round_timeout: default seconds to wait for an answer (``None``: no limit).
        spread: place agents on distinct nodes where possible (Ray's SPREAD strategy).
        agent_class: the agent run in each actor (fault injection: a subclass of :class:`Agent`
            whose module the Ray workers can import).
        gpus_per_agent: GPUs each actor reserves (fractional shares a GPU); ``None``: none.
        threads: threads of each agent (default: its CPU share, at least one).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        cpus_per_agent: float | None = None,
        num_cpus: int | None = None,
        round_timeout: float | None = None,
        spread: bool = True,
        agent_class: type[Agent] = Agent,
        share_fraction: float = 1.0,
        gpus_per_agent: float | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        self.gpus_per_agent = _ray_amount("gpus_per_agent", gpus_per_agent)
        self.threads = check_threads(threads)
        cpus_per_agent = _ray_amount("cpus_per_agent", cpus_per_agent)
        if not (isinstance(agent_class, type) and issubclass(agent_class, Agent)):
            raise ConfigError(f"agent_class must be a subclass of Agent, got {agent_class!r}")
        self.agent_class = agent_class
        self.address = address
        self.cpus_per_agent = cpus_per_agent
        self.num_cpus = num_cpus
        self.round_timeout = round_timeout
        self.spread = spread
        self.share_fraction = check_share_fraction(share_fraction)
        self._owns_ray = False
        self._actors: list[Any] = []
        self._refs: list[tuple[Any, Any]] = []
        self._nodes: list[str] = []

    def start(self, shards):
        """Start one actor per shard; the actors of the last start hold the new shards instead
        when they can (:meth:`_reload`): a new actor costs a worker process (about 1.5 s here),
        and a backend that serves several fits (the default path's held-out fits) would pay it
        for each."""
        import ray
        from ray.exceptions import GetTimeoutError

        self._owns_ray = connect(self.address, self.num_cpus) or self._owns_ray
        shards = list(shards)
        if self._reload(shards):
            return
        self._release_agents()
        self._shards = shards
        check_placements(self._shards)
        total = cluster_cpus()
        share = self._cpu_share(shards)
        self._share = share
        gpus = cluster_gpus() if self.gpus_per_agent else 0.0
        if self.gpus_per_agent and not gpus:
            raise BackendError(
                f"backend.gpus_per_agent {self.gpus_per_agent:g} asks for GPUs, but the Ray "
                "cluster has none; start GPU nodes first (cluster/README.md section 5) or drop it"
            )
        if (
            self._own_instance
            and self.gpus_per_agent
            and (len(shards) * self.gpus_per_agent > gpus * (1 + 1e-9))
        ):
            raise BackendError(
                f"the {len(shards)} agents need {self.gpus_per_agent:g} GPU each, the local Ray "
                f"instance has {gpus:g}; lower backend.gpus_per_agent or the number of agents"
            )
        if self._own_instance and len(shards) * share > total * (1 + 1e-9):
            # a local instance of distgp's own: no node will join it (no actor started yet)
            raise BackendError(
                f"the {len(shards)} agents need {share:g} CPU each, the local Ray instance has "
                f"{total:g}; lower backend.cpus_per_agent or the number of agents"
            )
        threads = self.threads or max(1, int(share))
        bases = (_RayAgent,) if self.agent_class is Agent else (_RayAgent, self.agent_class)
        actor = type(f"_Ray{self.agent_class.__name__}", bases, {"threads": threads})
        self._remote = ray.remote(actor)
        self._refs = [
            (ray.put(s.X), ray.put(s.y)) if isinstance(s, ShardArrays) else None
            for s in self._shards
        ]
        self._actors = [self._spawn(j) for j in range(len(shards))]
        try:
            nodes = ray.get([a.node_id.remote() for a in self._actors], timeout=START_TIMEOUT)
        except GetTimeoutError:
            self._release_agents()  # pending actors would hold on to the cluster's CPUs
            if self.gpus_per_agent:
                raise BackendError(
                    f"the {len(shards)} agents did not start within {START_TIMEOUT:g} s (each "
                    f"needs {self.gpus_per_agent:g} GPU and {share:g} CPU, the cluster has "
                    f"{gpus:g} GPU and {total:g} CPU); lower backend.gpus_per_agent or add GPU "
                    "nodes"
                ) from None
            raise BackendError(
                f"the {len(shards)} agents did not start within {START_TIMEOUT:g} s (each needs "
                f"{share:g} CPU on one node, the cluster has {node_cpus_text(alive_nodes())}); "
                "lower backend.cpus_per_agent or add nodes"
            ) from None
        self._nodes = [str(n) for n in nodes]

    def _reload(self, shards: list[Shard]) -> bool:
        """Hand ``shards`` to the first live actors of the last start, each as a new agent (its
        process, threads, GPU share and node kept; the actors left over stop). Only as many
        shards as actors or fewer, each actor's CPU share unchanged, and none pinned to nodes (a
        placement is an actor's, fixed at its start); ``False`` when these do not hold or an
        actor does not answer (the caller then starts new ones)."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        pinned = any(isinstance(s, ShardFile) and s.resources for s in [*shards, *self._shards])
        if not shards or len(shards) > len(self._actors) or pinned:
            return False
        if self._cpu_share(shards) != self._share:
            return False
        refs = [
            (ray.put(s.X), ray.put(s.y)) if isinstance(s, ShardArrays) else None for s in shards
        ]
        calls = []
        for j, (actor, shard, ref) in enumerate(zip(self._actors, shards, refs, strict=False)):
            if ref is None:
                self.count_spec(j, shard)
                calls.append(actor.reload.remote(j, None, None, shard))
            else:
                calls.append(actor.reload.remote(j, *ref))
        try:
            ray.get(calls, timeout=START_TIMEOUT)
        except (GetTimeoutError, RayActorError):  # a killed or hung actor: start afresh
            return False
        for actor in self._actors[len(shards) :]:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        del self._actors[len(shards) :], self._nodes[len(shards) :]
        self._shards, self._refs = shards, refs
        return True

    @property
    def _own_instance(self) -> bool:
        """Whether Ray runs as a local instance this backend started (no node will join it),
        not a cluster it joined (an autoscaler may add nodes)."""
        return self._owns_ray and self.address is None

    def _cpu_share(self, shards: list[Shard]) -> float:
        """Each agent's CPU share: ``cpus_per_agent``, or the fair share at which the agents
        pack into the live nodes (pinned ones, and GPU agents, on the nodes that can take them)."""
        placements = []
        for shard in shards:
            need = dict(shard.resources) if isinstance(shard, ShardFile) else {}
            if self.gpus_per_agent:
                need["GPU"] = self.gpus_per_agent
            placements.append(need)
        return cpu_share(len(shards), self.cpus_per_agent, self.share_fraction, placements)

    def _spawn(self, j: int, avoid: str | None = None):
        """Start agent ``j``'s actor; ``avoid``: a node it must not go to (a dying one)."""
        shard = self._shards[j]
        options: dict[str, Any] = {
            "num_cpus": self._share,
            "max_restarts": 0,
            "max_task_retries": 0,
        }
        if self.gpus_per_agent:
            options["num_gpus"] = self.gpus_per_agent
        if isinstance(shard, ShardFile) and shard.resources:
            options["resources"] = dict(shard.resources)
        elif self.spread and avoid is None:
            options["scheduling_strategy"] = "SPREAD"
        if avoid is not None:
            options["label_selector"] = {"ray.io/node-id": f"!{avoid}"}
        if self._refs[j] is not None:
            X_ref, y_ref = self._refs[j]
            return self._remote.options(**options).remote(j, X_ref, y_ref)
        self.count_spec(j, shard)
        return self._remote.options(**options).remote(j, None, None, shard)

    def _send(self, messages, timeout=None):
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        timeout = self.round_timeout if timeout is None else timeout
        pending = {self._actors[j].handle.remote(m): j for j, m in messages.items()}
        ready, late = ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
        out: dict[int, Any] = {}
        for ref in late:
            j = pending[ref]
            out[j] = AgentFailure(j, "timeout", f"no answer within {timeout} s")
        for ref in ready:
            j = pending[ref]
            try:
                out[j] = ray.get(ref)
            except RayActorError as exc:
                out[j] = AgentFailure(j, "died", str(exc).splitlines()[0] if str(exc) else "")
            except RayTaskError as exc:
                raise exc.as_instanceof_cause() from None
            except GetTimeoutError:
                out[j] = AgentFailure(j, "timeout", "")
        return out

    def kill(self, agent: int) -> None:
        """Kill an agent's process (fault injection)."""
        import ray

        ray.kill(self._actors[agent], no_restart=True)

    def recover(self, agent):
        """Kill the agent's actor (a hung one too, so no call queues behind it) and start a
        fresh one from the same shard; BackendError when it does not start in time or no live
        node has its placement (a shard file that lived on a lost node).

        The wait is bounded by the round timeout (at least ``MIN_RESTART_WAIT``). A replacement
        that dies at once (sent to the agent's node while that node dies) is started once more,
        away from that node when another live node can take it."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        with contextlib.suppress(Exception):  # already gone
            ray.kill(self._actors[agent], no_restart=True)
        shard = self._shards[agent]
        if isinstance(shard, ShardFile) and shard.resources and not _placeable(shard):
            raise BackendError(
                f"no live node has the placement {dict(shard.resources)} of its shard "
                f"{shard.path}; its data is missing from the rest of the run"
            )
        placed = isinstance(shard, ShardFile) and bool(shard.resources)
        deadline = time.monotonic() + self._restart_wait(placed)
        old_node = self._nodes[agent] if agent < len(self._nodes) else None
        avoid = None
        for attempt in range(2):
            self._actors[agent] = self._spawn(agent, avoid)
            try:
                wait = max(0.0, deadline - time.monotonic())
                node = ray.get(self._actors[agent].node_id.remote(), timeout=wait)
                break
            except (GetTimeoutError, RayActorError) as exc:
                with contextlib.suppress(Exception):
                    ray.kill(self._actors[agent], no_restart=True)
                if attempt == 0 and isinstance(exc, RayActorError) and time.monotonic() < deadline:
                    avoid = old_node if _placeable(shard, exclude=old_node) else None
                    continue
                where = f" on a node with {dict(shard.resources)}" if placed else ""
                raise BackendError(
                    f"replacement of agent {agent} did not start{where} ({type(exc).__name__})"
                ) from None
        self._nodes[agent] = str(node)

    def _restart_wait(self, placed: bool) -> float:
        """Seconds a replacement may take to start: the round timeout where one is set (at
        least ``MIN_RESTART_WAIT``), at most the start timeout."""
        wait = PLACED_RESTART_TIMEOUT if placed else START_TIMEOUT
        if self.round_timeout is not None:
            wait = min(wait, max(self.round_timeout, MIN_RESTART_WAIT))
        return wait

    def nodes(self):
        return list(self._nodes)

    def _release_agents(self) -> None:
        import ray

        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self._actors = []

    def shutdown(self):

        self._release_agents()
        disconnect(self._owns_ray)
        self._owns_ray = False


class _RayAgent(Agent):
    """The agent inside a Ray actor: it owns ``threads`` threads (its CPU share) and can say
    which node it is on.

    The actor class is a subclass setting ``threads`` (and, with another ``agent_class``, also
    deriving from it, so the methods of ``agent_class`` run with these set-up steps)."""

    threads = 1

    def __init__(
        self, agent_id: int, X: np.ndarray | None, y: np.ndarray | None, shard=None
    ) -> None:
        from threadpoolctl import threadpool_limits

        from distgp.threads import set_process_threads

        set_process_threads(self.threads)  # the budget of every solve in this process
        threadpool_limits(self.threads)  # and of anything outside the solves
        super().__init__(agent_id, shard if shard is not None else ShardArrays(X, y))

    def reload(self, agent_id: int, X: np.ndarray | None, y: np.ndarray | None, shard=None) -> None:
        """Become agent ``agent_id`` of a new shard, as a freshly started actor would be (the
        process's thread budget is kept)."""
        super().__init__(agent_id, shard if shard is not None else ShardArrays(X, y))

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


def _placeable(shard: Shard, exclude: str | None = None) -> bool:
    """Whether some live node of the connected cluster (other than node ``exclude``) has every
    resource of ``shard``'s placement (a shard without one: any live node)."""
    import ray

    need = dict(shard.resources) if isinstance(shard, ShardFile) else {}
    for node in ray.nodes():
        if node.get("Alive") and node.get("NodeID") != exclude:
            have = node.get("Resources", {})
            if all(have.get(name, 0) >= amount for name, amount in need.items()):
                return True
    return False


def _ray_amount(name: str, amount: float | None) -> float | None:
    """A resource amount per agent rounded down to Ray's granularity (1e-4); ConfigError when
    not positive or below that granularity."""
    if amount is None:
        return None
    if not (amount > 0 and math.isfinite(amount)):
        raise ConfigError(f"{name} must be positive, got {amount}")
    if amount < RESOURCE_STEP:
        raise ConfigError(f"{name} must be at least {RESOURCE_STEP:g} (Ray's step), got {amount:g}")
    return round_share(amount)


def check_placements(shards: list[Shard]) -> None:
    """Refuse shard placements that no node of the connected cluster satisfies (bad input)."""
    for j, shard in enumerate(shards):
        if isinstance(shard, ShardFile) and shard.resources and not _placeable(shard):
            raise ConfigError(
                f"no node of the Ray cluster has the resources {dict(shard.resources)} that "
                f"shard {j} ({shard.path}) asks for; start that node with --resources or fix "
                "the shard's placement"
            )


def make_backend(
    name: str,
    address: str | None = None,
    cpus_per_agent: float | None = None,
    round_timeout: float | None = None,
    share_fraction: float = 1.0,
    gpus_per_agent: float | None = None,
    threads: int | None = None,
) -> Backend:
    """Build a backend by name (``inline`` or ``ray``); see :class:`RayBackend` for the options."""
    if name == "inline":
        if address is not None:
            raise ConfigError(
                "backend.address needs the ray backend; set backend.name to ray",
                setting="backend.address",
            )
        if gpus_per_agent is not None:
            raise ConfigError(
                "backend.gpus_per_agent needs the ray backend; set backend.name to ray",
                setting="backend.gpus_per_agent",
            )
        return InlineBackend()
    if name == "ray":
        return RayBackend(
            address,
            cpus_per_agent,
            round_timeout=round_timeout,
            share_fraction=share_fraction,
            gpus_per_agent=gpus_per_agent,
            threads=threads,
        )
    raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
