"""Evaluators: agents that evaluate a batch of points of an objective, in parallel under Ray.

The optimisation driver hands an evaluator a batch of jobs ``(index, params)``; the agents
evaluate them (job ``index`` goes to agent ``index mod N``) and the driver receives, for every
job and in the same order, an :class:`Evaluation`: the ``(params, value)`` pair plus who computed
it and whether it failed. Each agent also **keeps the observations it made**
(:meth:`Evaluator.observations`), so a later computation can run where the data are.

* :class:`InlineEvaluator`: the agents are plain objects in this process (tests, debugging,
  cheap objectives).
* :class:`RayEvaluator`: one Ray actor per agent; the objective is sent once through the object
  store and each actor evaluates its share of a batch while the others do theirs.

An objective that raises, or returns NaN or infinity, gives a *failed* evaluation (``value`` NaN,
``error`` set); the run goes on. One that returns anything but a real number (a bool, a string,
``None``, a sequence, an array with dimensions) has an error in its code: that evaluation is
marked ``stop`` and the optimisation loop stops the run (:func:`reward`). A Ray actor that dies
is restarted and its jobs run again (:class:`RayEvaluator`): a lost process is not a failed
evaluation. Only :class:`RayEvaluator` imports Ray, and only when started.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from distgp.agents.ray_runtime import check_share_fraction, connect, cpu_share, disconnect
from distgp.bandit.base import real_number
from distgp.exceptions import BackendError, ConfigError, ObjectiveError

Objective = Callable[[dict[str, Any], int], Any]  # (params, evaluation index) -> a number


@dataclass(frozen=True)
class Evaluation:
    """One evaluated job.

    Attributes:
        index: the job's evaluation index (0, 1, ... over the run).
        params: the parameters evaluated.
        value: the objective's value, or NaN when the evaluation failed.
        error: ``None``, or one line saying why it failed.
        agent: the agent that evaluated it.
        seconds: wall time of the evaluation.
        stop: the objective returned something other than a real number (``error`` says
            what): an error in the objective, which stops the run.
    """

    index: int
    params: dict[str, Any]
    value: float
    error: str | None
    agent: int
    seconds: float
    stop: bool = False

    @property
    def failed(self) -> bool:
        return self.error is not None


def reward(returned: Any) -> float:
    """An objective's return value as a float: any real number (see
    :func:`~distgp.bandit.base.real_number`; an int too large for a float is ``±inf``, a failed
    evaluation); :class:`ObjectiveError` for a bool, a string, ``None``, a complex number, a
    sequence or an array with dimensions."""
    if isinstance(returned, np.ndarray) and returned.ndim == 0:
        returned = returned[()]  # the numpy scalar, named as such
    value = real_number(returned)
    if value is None:
        shown = repr(returned)
        shown = shown if len(shown) <= 40 else shown[:37] + "..."
        raise ObjectiveError(
            f"the objective returned {type(returned).__name__} {shown}, not a real number; "
            "return a float (NaN, or an exception, fails an evaluation)"
        )
    return value


class EvaluationAgent:
    """One agent: evaluates jobs and keeps its ``(params, value)`` observations."""

    def __init__(self, agent_id: int, objective: Objective) -> None:
        self.agent_id = int(agent_id)
        self._objective = objective
        self._observations: list[tuple[dict[str, Any], float]] = []

    def run(self, jobs: list[tuple[int, dict[str, Any]]]) -> list[Evaluation]:
        """Evaluate ``jobs`` in turn; failures are caught and reported."""
        out = []
        for index, params in jobs:
            start = time.perf_counter()
            error, stop, value = None, False, math.nan
            try:
                returned = self._objective(params, index)
            except (Exception, SystemExit) as exc:  # a sys.exit() in the objective fails
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""  # that
                error = f"{type(exc).__name__}: {first}".rstrip(": ")  # evaluation, not the run
            else:
                try:
                    value = reward(returned)
                except ObjectiveError as exc:
                    error, stop = str(exc), True
                else:
                    if not math.isfinite(value):
                        error = f"the objective returned {value}"
                        if isinstance(returned, int):
                            error = "the objective returned an int too large for a float"
            if error is not None:
                value = math.nan
            else:
                self._observations.append((dict(params), value))
            out.append(
                Evaluation(
                    index,
                    dict(params),
                    value,
                    error,
                    self.agent_id,
                    time.perf_counter() - start,
                    stop,
                )
            )
        return out

    def observations(self) -> list[tuple[dict[str, Any], float]]:
        """The successful ``(params, value)`` pairs this agent evaluated, in order."""
        return list(self._observations)


class Evaluator(ABC):
    """Evaluates batches of jobs on ``agents`` agents."""

    name = "abstract"

    def __init__(self, objective: Objective, agents: int = 1) -> None:
        if agents < 1:
            raise ConfigError(f"agents must be at least 1, got {agents}")
        self.objective = objective
        self.agents = int(agents)
        self.events: list[str] = []  # what happened to the agents (a restart), for the run

    @abstractmethod
    def evaluate(self, jobs: list[tuple[int, dict[str, Any]]]) -> list[Evaluation]:
        """Evaluate ``jobs`` (``(index, params)``); results in the order of ``jobs``."""

    @abstractmethod
    def observations(self, agent: int) -> list[tuple[dict[str, Any], float]]:
        """The observations agent ``agent`` has made so far."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the agents."""

    def _split(self, jobs: list[tuple[int, dict[str, Any]]]) -> dict[int, list]:
        shares: dict[int, list] = {}
        for job in jobs:
            shares.setdefault(job[0] % self.agents, []).append(job)
        return shares

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InlineEvaluator(Evaluator):
    """All agents in this process, one after the other."""

    name = "inline"

    def __init__(self, objective: Objective, agents: int = 1) -> None:
        super().__init__(objective, agents)
        self._agents = [EvaluationAgent(j, objective) for j in range(self.agents)]

    def evaluate(self, jobs):
        done = {}
        for j, share in self._split(jobs).items():
            for ev in self._agents[j].run(share):
                done[ev.index] = ev
        return [done[index] for index, _ in jobs]

    def observations(self, agent):
        return self._agents[agent].observations()


class RayEvaluator(Evaluator):
    """One Ray actor per agent.

    An agent whose actor dies (its process or node lost) is restarted, as ``distgp fit``
    restarts an agent (:meth:`distgp.agents.backends.RayBackend.recover`), and its jobs run again
    on the replacement, which starts with no observations; an actor death is not a failed
    evaluation. A replacement that does not start, or that dies on the same jobs, stops the run
    with :class:`BackendError` (the checkpoint is kept for ``--resume``).

    Args:
        objective: must be picklable (a module-level function or a built-in test function).
        agents: number of actors.
        address: ``None`` starts a local Ray instance (unless one is running); else a cluster
            address (``auto``, ``HOST:PORT``).
        cpus_per_agent: CPUs reserved per actor (default: share the cluster's CPUs).
        timeout: seconds to wait for a batch; agents that do not answer fail their jobs and are
            restarted (so that no later job queues behind a hung one).
        share_fraction: fraction of the fair CPU share each actor reserves when
            ``cpus_per_agent`` is ``None`` (0.5 leaves room for the learning agents of a GSMP
            kernel, which run between batches).
    """

    name = "ray"

    def __init__(
        self,
        objective: Objective,
        agents: int = 1,
        address: str | None = None,
        cpus_per_agent: float | None = None,
        timeout: float | None = None,
        share_fraction: float = 1.0,
    ) -> None:
        super().__init__(objective, agents)
        check_share_fraction(share_fraction)
        import ray

        self._owns_ray = connect(address)
        share = cpu_share(self.agents, cpus_per_agent, share_fraction)
        self._remote = ray.remote(_RayEvaluationAgent).options(num_cpus=share, max_restarts=0)
        self._objective_ref = ray.put(objective)
        self._actors = [self._remote.remote(j, self._objective_ref) for j in range(self.agents)]
        self.timeout = timeout

    def evaluate(self, jobs):
        done: dict[int, Evaluation] = {}
        shares = self._split(jobs)
        died = self._run(shares, done)
        for j in died:
            self.restart(j)
            indices = ", ".join(str(index) for index, _ in shares[j])
            self.events.append(
                f"agent {j} died running evaluation(s) {indices}; restarted, and they run again"
            )
        if died and self._run({j: shares[j] for j in died}, done):
            first = shares[died[0]][0][0]
            raise BackendError(
                f"agent {died[0]} died twice running evaluation {first} (and the rest of its "
                "share of the batch): the objective may end its process (os._exit, a crash, "
                "memory); fix it, or raise the memory of the nodes"
            )
        return [done[index] for index, _ in jobs]

    def _run(self, shares: dict[int, list], done: dict[int, Evaluation]) -> list[int]:
        """Send each agent its share; put the evaluations into ``done`` and return the agents
        whose actor died (their jobs are not done)."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        refs = {self._actors[j].run.remote(share): (j, share) for j, share in shares.items()}
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=self.timeout)
        died = []
        for ref in list(ready) + list(late):
            j, share = refs[ref]
            try:
                if ref in late:
                    raise TimeoutError(f"agent {j} gave no answer within {self.timeout} s")
                results = ray.get(ref)
            except RayActorError:
                died.append(j)
                continue
            except (RayTaskError, TimeoutError) as exc:
                if isinstance(getattr(exc, "cause", None), ObjectiveInterruptError):
                    raise KeyboardInterrupt from None  # as inline: the run is interrupted
                if ref in late:
                    self.restart(j)  # later jobs must not queue behind a hung one
                reason = _error_text(exc)
                results = [
                    Evaluation(i, dict(p), math.nan, f"agent {j} failed: {reason}", j, 0.0)
                    for i, p in share
                ]
            for ev in results:
                done[ev.index] = ev
        return sorted(died)

    def restart(self, agent: int) -> None:
        """Replace agent ``agent``'s actor by a fresh one; :class:`BackendError` when the
        replacement does not start within ``START_TIMEOUT`` seconds."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        from distgp.agents.backends import START_TIMEOUT

        with contextlib.suppress(Exception):  # already gone
            ray.kill(self._actors[agent], no_restart=True)
        self._actors[agent] = self._remote.remote(agent, self._objective_ref)
        try:
            ray.get(self._actors[agent].observations.remote(), timeout=START_TIMEOUT)
        except (GetTimeoutError, RayActorError) as exc:
            with contextlib.suppress(Exception):
                ray.kill(self._actors[agent], no_restart=True)
            raise BackendError(
                f"agent {agent} died and its replacement did not start ({type(exc).__name__}); "
                "check the Ray cluster's nodes and CPUs"
            ) from None

    def observations(self, agent):
        import ray

        return ray.get(self._actors[agent].observations.remote())

    def close(self) -> None:
        import ray

        for actor in self._actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor, no_restart=True)
        self._actors = []
        disconnect(self._owns_ray)
        self._owns_ray = False


def _error_text(exc: BaseException) -> str:
    """One line for an agent's failure: the cause's type and first line, without Ray's
    ``ray::...`` header or terminal colour codes."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        text = f"{type(cause).__name__}: {first}".rstrip(": ")
    else:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else "agent lost"
    return _ANSI.sub("", text)


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ObjectiveInterruptError(Exception):
    """A ``KeyboardInterrupt`` raised by the objective inside a Ray agent (which Ray would
    report as a cancelled task): the driver interrupts the run, as the inline backend does."""


class _RayEvaluationAgent(EvaluationAgent):
    """The agent inside a Ray actor, with one BLAS thread."""

    def __init__(self, agent_id: int, objective: Objective) -> None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
        super().__init__(agent_id, objective)

    def run(self, jobs: list[tuple[int, dict[str, Any]]]) -> list[Evaluation]:
        try:
            return super().run(jobs)
        except KeyboardInterrupt:
            raise ObjectiveInterruptError from None


def make_evaluator(
    name: str,
    objective: Objective,
    agents: int = 1,
    address: str | None = None,
    share_fraction: float = 1.0,
) -> Evaluator:
    """An evaluator by backend name (``inline`` or ``ray``); see :class:`RayEvaluator`."""
    if name == "inline":
        if address is not None:
            raise ConfigError(
                "agents.address needs the ray backend; set agents.backend to ray",
                setting="agents.address",
            )
        return InlineEvaluator(objective, agents)
    if name == "ray":
        return RayEvaluator(objective, agents, address, share_fraction=share_fraction)
    raise ConfigError(f"unknown backend {name!r}; choose inline or ray")
