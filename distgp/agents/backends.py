"""Backends move messages between the driver and the agents; they do no learning.

* :class:`InlineBackend`: every agent in this process, called in turn. Fast and deterministic; for
  tests, debugging and single-agent fits.
* :class:`RayBackend`: one Ray actor per agent. With no address it starts a local Ray instance
  (the local multiprocess simulation); with an address it joins that cluster and spreads the agents
  over its nodes. Agents take a fraction of a CPU each and one BLAS thread.

Both return, per agent, either the method's result or an :class:`AgentFailure` (the agent died or
did not answer in time); :meth:`Backend.recover` rebuilds a failed agent from its shard.

Fault injection (tests and ``distgp bench faults``): :meth:`RayBackend.kill` kills an agent's
process, and ``RayBackend(agent_class=...)`` runs a subclass of :class:`Agent` (for instance one
that hangs in a given round) inside the actors.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np

from distgp.agents.agent import Agent
from distgp.agents.ray_runtime import (
    check_share_fraction,
    cluster_cpus,
    connect,
    cpu_share,
    disconnect,
)
from distgp.exceptions import BackendError, ConfigError

BACKENDS = ("inline", "ray")
START_TIMEOUT = 120.0  # seconds an agent's actor may take to start (scheduling, process, imports)


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


class Backend(ABC):
    """Transport between the driver and ``N`` agents."""

    name = "abstract"

    def __init__(self) -> None:
        self._shards: list[tuple[np.ndarray, np.ndarray]] = []

    @property
    def agents(self) -> int:
        return len(self._shards)

    @abstractmethod
    def start(self, shards: list[tuple[np.ndarray, np.ndarray]]) -> None:
        """Create one agent per ``(X_j, y_j)`` shard; the shard is handed over once.

        Starting again replaces the previous agents (the transport, e.g. a Ray instance, is
        kept), so one backend can serve several runs."""

    @abstractmethod
    def call(
        self, method: str, args: dict[int, tuple], timeout: float | None = None
    ) -> dict[int, Any]:
        """Call ``method(*args[j])`` on each listed agent; failures come back as AgentFailure."""

    @abstractmethod
    def recover(self, agent: int) -> None:
        """Replace a failed agent by a fresh one built from the same shard (not set up yet)."""

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
        self._agents = [Agent(j, X, y) for j, (X, y) in enumerate(self._shards)]

    def call(self, method, args, timeout=None):
        return {j: getattr(self._agents[j], method)(*a) for j, a in args.items()}

    def recover(self, agent):
        X, y = self._shards[agent]
        self._agents[agent] = Agent(agent, X, y)

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
    ) -> None:
        super().__init__()
        if cpus_per_agent is not None and not cpus_per_agent > 0:
            raise ConfigError(f"cpus_per_agent must be positive, got {cpus_per_agent}")
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
        import ray
        from ray.exceptions import GetTimeoutError

        self._owns_ray = connect(self.address, self.num_cpus) or self._owns_ray
        self._release_agents()
        self._shards = list(shards)
        total = cluster_cpus()
        share = cpu_share(len(shards), self.cpus_per_agent, self.share_fraction)
        self._share = share
        actor = _RayAgent
        if self.agent_class is not Agent:
            actor = type(f"_Ray{self.agent_class.__name__}", (_RayAgent, self.agent_class), {})
        self._remote = ray.remote(actor)
        self._refs = [(ray.put(X), ray.put(y)) for X, y in self._shards]
        self._actors = [self._spawn(j) for j in range(len(shards))]
        try:
            nodes = ray.get([a.node_id.remote() for a in self._actors], timeout=START_TIMEOUT)
        except GetTimeoutError:
            raise BackendError(
                f"the {len(shards)} agents did not start within {START_TIMEOUT:g} s (each needs "
                f"{share:g} CPU, the cluster has {total:g}); lower --cpus-per-agent or add nodes"
            ) from None
        self._nodes = [str(n) for n in nodes]

    def _spawn(self, j: int):
        options: dict[str, Any] = {
            "num_cpus": self._share,
            "max_restarts": 0,
            "max_task_retries": 0,
        }
        if self.spread:
            options["scheduling_strategy"] = "SPREAD"
        X_ref, y_ref = self._refs[j]
        return self._remote.options(**options).remote(j, X_ref, y_ref)

    def call(self, method, args, timeout=None):
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

        timeout = self.round_timeout if timeout is None else timeout
        pending = {getattr(self._actors[j], method).remote(*a): j for j, a in args.items()}
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
        fresh one from the same shard; BackendError when it does not start in time."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        with contextlib.suppress(Exception):  # already gone
            ray.kill(self._actors[agent], no_restart=True)
        self._actors[agent] = self._spawn(agent)
        try:
            node = ray.get(self._actors[agent].node_id.remote(), timeout=START_TIMEOUT)
        except (GetTimeoutError, RayActorError) as exc:
            raise BackendError(
                f"replacement of agent {agent} did not start ({type(exc).__name__})"
            ) from None
        self._nodes[agent] = str(node)

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
    """The agent inside a Ray actor: one BLAS thread, and it can say which node it is on.

    With another ``agent_class``, the actor class is ``(_RayAgent, agent_class)``, so the methods
    of ``agent_class`` run with these set-up steps."""

    def __init__(self, agent_id: int, X: np.ndarray, y: np.ndarray) -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        super().__init__(agent_id, X, y)

    def node_id(self) -> str:
        import ray

        return ray.get_runtime_context().get_node_id()


def make_backend(
    name: str,
    address: str | None = None,
    cpus_per_agent: float | None = None,
    round_timeout: float | None = None,
    share_fraction: float = 1.0,
) -> Backend:
    """Build a backend by name (``inline`` or ``ray``); see :class:`RayBackend` for the options."""
    if name == "inline":
        if address is not None:
            raise ConfigError("--address needs the ray backend; add --backend ray")
        return InlineBackend()
    if name == "ray":
        return RayBackend(
            address, cpus_per_agent, round_timeout=round_timeout, share_fraction=share_fraction
        )
    raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
