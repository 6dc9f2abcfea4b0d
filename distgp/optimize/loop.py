"""The optimisation loop behind ``distgp optimize``: ask a batch, let the agents evaluate, tell.

One iteration: the bandit proposes arms (one arm, or with ``batch`` an adaptive batch), the
evaluator's agents evaluate them in parallel and return ``(params, value)`` pairs, the bandit is
told the rewards (``value`` or ``-value`` when minimising). Then, optionally:

* ``arms.local`` new arms are added near the best point so far (:meth:`Space.around`);
* with ``kernel.name: gsmp``, every ``kernel.refit_every`` evaluations the agents re-learn the
  GSMP weights with SLIM-KL on the observations so far (:func:`distgp.driver.fit`, warm-started
  from the previous weights; with several agents each learns from the evaluations it made when
  every agent has at least 2, else from a random shard). Until ``kernel.warmup``
  (:attr:`OptimizeConfig.warmup`) successful evaluations exist the kernel is the RBF one.

The evaluator is any object with ``evaluate(jobs) -> evaluations`` and an ``agents`` count
(:mod:`distgp.agents.evaluators`); this module never imports Ray itself. It sits above
:mod:`distgp.bandit` (pure algorithms: no backend, no driver) and below the command line.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from distgp.bandit.base import ArmBandit, default_lengthscale
from distgp.bandit.bkb import BKB
from distgp.bandit.config import OptimizeConfig
from distgp.bandit.evidence import MIN_NOISE, fit_rbf
from distgp.bandit.gpucb import GPUCB
from distgp.bandit.kernels import RBFKernel
from distgp.bandit.problems import Problem
from distgp.bandit.spaces import Space, add_local_arms, describe_param
from distgp.checkpoint import restoring
from distgp.exceptions import ConfigError, DistGPError, ObjectiveError
from distgp.optimize.refit import GSMPRefitter

Reporter = Callable[[str, dict[str, Any]], None]

EARLY_FAILURES = 5  # a run whose first this many evaluations raise one of CODE_ERRORS stops
CODE_ERRORS = ("TypeError", "IndexError", "KeyError", "AttributeError", "NameError")
"""Exceptions that point at the objective's code (how it reads its argument), not at a point."""


@dataclass
class EvaluationRecord:
    """One evaluation of the run (a row of ``history.csv``).

    ``value`` is in the objective's units (NaN when failed); ``regret`` uses the noise-free value
    when the problem has one.
    """

    index: int
    batch: int
    agent: int
    params: dict[str, Any]
    value: float
    regret: float | None
    error: str | None
    seconds: float
    dictionary_size: int
    arms: int


@dataclass
class OptimizeResult:
    """Outcome of :func:`optimize` (``result.json`` is built from it)."""

    records: list[EvaluationRecord]
    best_params: dict[str, Any] | None
    best_value: float | None
    simple_regret: float | None  # the smallest true regret of any evaluated point
    cumulative_regret: float | None
    seconds: float
    dictionary_size_max: int
    batch_sizes: list[int]
    refits: int = 0
    events: list[str] = field(default_factory=list)
    best_regret: float | None = None  # the true regret of best_params (noise can make it larger)
    arms: int = 0  # arms at the end: the initial ones plus those added near the best point
    code_error: str | None = None  # the exception type that stopped the run early (CODE_ERRORS)

    @property
    def evaluations(self) -> int:
        return len(self.records)

    @property
    def failures(self) -> int:
        return sum(1 for r in self.records if r.error is not None)


def make_bandit(config: OptimizeConfig, space: Space) -> ArmBandit:
    """The bandit described by ``config.bandit`` over ``space``'s arms, with the RBF kernel."""
    b = config.bandit
    options = {
        "noise_variance": b.noise_variance,
        "lam": b.lam,
        "fnorm": b.fnorm,
        "delta": b.delta,
        "beta": b.beta,
        "epsilon": b.epsilon,
        "batch": b.batch,
        "ratio_threshold": b.ratio_threshold,
        "max_batch": b.max_batch,
        "initial": b.initial,
        "repeat": repeats(config),
        "seed": config.seed,
    }
    kernel = rbf_kernel(config, space.dims)
    if b.algorithm == "gpucb":
        return GPUCB(space.arms, kernel, **options)
    return BKB(space.arms, kernel, qbar=b.qbar, resparsify=b.resparsify, device=b.device, **options)


def repeats(config: OptimizeConfig) -> bool:
    """Whether an arm may be evaluated twice: ``bandit.repeat``, by default only when the
    objective is noisy (a built-in function with ``noise_std > 0``)."""
    if config.bandit.repeat is not None:
        return config.bandit.repeat
    return ":" not in config.function and config.noise_std > 0


def rbf_kernel(config: OptimizeConfig, dims: int) -> RBFKernel:
    k = config.kernel
    return RBFKernel(k.lengthscale or default_lengthscale(dims), k.variance)


def optimize(
    problem: Problem,
    config: OptimizeConfig,
    evaluator: Any,
    report: Reporter | None = None,
    save: Callable[[dict[str, Any]], None] | None = None,
    resume: dict[str, Any] | None = None,
) -> OptimizeResult:
    """Run ``config.budget`` evaluations of ``problem`` with the configured bandit.

    Args:
        save: called after every batch with the run's state (arrays, and JSON-able values under
            keys ending in ``_json``), for checkpoints.
        resume: a state passed to ``save`` earlier; the run continues from it exactly.
    """
    report = report or (lambda event, fields: None)
    space = problem.space
    bandit = make_bandit(config, space)
    refitter = GSMPRefitter(config, space.dims) if config.kernel.name == "gsmp" else None
    rng = np.random.default_rng((config.seed, 1))  # local arms
    records: list[EvaluationRecord] = []
    batch_sizes: list[int] = []
    events: list[str] = []
    best: tuple[float, int] | None = None  # (reward, arm)
    code_error: str | None = None
    next_fit = config.warmup
    before = 0.0
    if resume is not None:
        with restoring(resume):
            check_space(resume, space)
            loop = resume["loop_json"]
            bandit = ArmBandit.from_state(
                {k[len("bandit_") :]: v for k, v in resume.items() if k.startswith("bandit_")}
            )
            records = [EvaluationRecord(**r) for r in loop["records"]]
            batch_sizes, events, next_fit = loop["batch_sizes"], loop["events"], loop["next_fit"]
            best = None if loop["best"] is None else (float(loop["best"][0]), int(loop["best"][1]))
            rng.bit_generator.state = loop["rng"]
            before = float(loop["seconds"])
            if refitter is not None:
                refitter.fits = loop["refits"]
                refitter.theta = None if loop["theta"] is None else np.asarray(loop["theta"])
        if isinstance(bandit, BKB):  # the device is the run's setting, not saved with the state
            bandit.to(config.bandit.device)
    start = time.perf_counter()
    try:
        while len(records) < config.budget:
            if bandit.exhausted:  # a small discrete space, every point evaluated (or failed)
                events.append(
                    f"stopped after {len(records)} of {config.budget} evaluations: every point of "
                    "the search space has been evaluated (or failed); 'bandit: {repeat: true}' in "
                    "the config evaluates points again"
                )
                break
            remaining = config.budget - len(records)
            arms = bandit.ask(remaining if config.bandit.batch else 1)
            jobs = [
                (len(records) + k, space.decode_row(bandit.arms[a])) for k, a in enumerate(arms)
            ]
            evaluations = evaluator.evaluate(jobs)
            news = getattr(evaluator, "events", [])  # an agent restarted, say
            for line in news:
                events.append(line)
                report("event", {"message": line})
            news.clear()
            wrong = next((ev for ev in evaluations if ev.stop), None)
            if wrong is not None:  # an error in the objective's code, not in one point
                raise ObjectiveError(f"evaluation {wrong.index}: {wrong.error}")
            rewards = [problem.sign * ev.value for ev in evaluations]
            bandit.tell(arms, rewards)
            for arm, ev, reward in zip(arms.tolist(), evaluations, rewards, strict=True):
                truth = (
                    problem.true_value(ev.params)
                    if problem.true_value and not ev.failed
                    else ev.value
                )
                records.append(
                    EvaluationRecord(
                        ev.index,
                        len(batch_sizes),
                        ev.agent,
                        ev.params,
                        ev.value,
                        problem.regret(truth),
                        ev.error,
                        ev.seconds,
                        bandit.dictionary_size,
                        len(bandit.arms),
                    )
                )
                if math.isfinite(reward) and (best is None or reward > best[0]):
                    best = (reward, arm)
                if problem.beyond_optimum(truth) and not any("optimal_value" in e for e in events):
                    events.append(
                        f"evaluation {ev.index} gave {truth:.6g}, better than the stated "
                        f"optimal_value {problem.optimal_value:.6g}: regrets are clipped at 0; "
                        "check the optimum (or the direction, --maximize)"
                    )
            batch_sizes.append(len(arms))
            if config.arms.local and best is not None:
                a = config.arms
                add_local_arms(bandit, space, bandit.arms[best[1]], a.local, a.local_scale, rng)
            successes = bandit.observations
            k = config.kernel
            fit_due = successes >= next_fit
            evidence_due = successes < config.warmup or (refitter is None and fit_due)
            if (
                k.evidence
                and k.lengthscale is None
                and successes >= k.evidence_from
                and evidence_due
            ):
                _evidence(bandit, records, problem, space, config.seed)
            if fit_due:
                waiting = refitter is not None and not _refit(
                    bandit, refitter, records, problem, space, events
                )
                # too few evaluations per agent yet: try again after the next one
                next_fit = successes + (1 if waiting else k.refit_every)
            if save is not None and len(records) < config.budget:
                save(
                    {
                        **{f"bandit_{k}": v for k, v in bandit.state_dict().items()},
                        "loop_json": {
                            "space": space.describe(),
                            "records": [_jsonable(asdict(r)) for r in records],
                            "batch_sizes": batch_sizes,
                            "events": events,
                            "next_fit": next_fit,
                            "best": None if best is None else [float(best[0]), int(best[1])],
                            "rng": rng.bit_generator.state,
                            "seconds": before + time.perf_counter() - start,
                            "refits": 0 if refitter is None else refitter.fits,
                            "theta": None
                            if refitter is None or refitter.theta is None
                            else refitter.theta.tolist(),
                        },
                    }
                )
            report(
                "batch",
                {
                    "evaluations": len(records),
                    "batch_size": len(arms),
                    "best": None if best is None else problem.sign * best[0],
                    "regret": _simple_regret(records),
                    "dictionary": bandit.dictionary_size,
                    "failed": sum(ev.failed for ev in evaluations),
                },
            )
            # only while nothing has worked, and once: in the batch that ran the fifth
            reached = len(records) - len(arms) < EARLY_FAILURES <= len(records)
            kind = early_code_error(records) if best is None and reached else None
            if kind is not None and len(records) < config.budget:
                code_error = kind
                events.append(
                    f"stopped after {len(records)} of {config.budget} evaluations: the first "
                    f"{EARLY_FAILURES} all raised {kind}, an error in the objective's code"
                )
                break
    finally:
        if refitter is not None:
            refitter.close()
    seconds = before + time.perf_counter() - start
    good = [r for r in records if r.error is None]
    best_record = max(good, key=lambda r: problem.sign * r.value) if good else None
    regrets = [r.regret for r in good if r.regret is not None]
    return OptimizeResult(
        records=records,
        best_params=None if best_record is None else best_record.params,
        best_value=None if best_record is None else best_record.value,
        simple_regret=_simple_regret(records),
        best_regret=None if best_record is None else best_record.regret,
        cumulative_regret=float(sum(regrets)) if regrets else None,
        seconds=seconds,
        dictionary_size_max=int(getattr(bandit, "dictionary_size_max", bandit.dictionary_size)),
        batch_sizes=batch_sizes,
        refits=0 if refitter is None else refitter.fits,
        events=events,
        arms=len(bandit.arms),
        code_error=code_error,
    )


def early_code_error(records: list[EvaluationRecord]) -> str | None:
    """The exception type of :data:`CODE_ERRORS` that each of the first :data:`EARLY_FAILURES`
    evaluations raised (``None`` when one succeeded, failed otherwise, or fewer ran)."""
    first = records[:EARLY_FAILURES]
    if len(first) < EARLY_FAILURES or any(r.error is None for r in first):
        return None
    kinds = {r.error.partition(":")[0] for r in first}
    return kinds.pop() if len(kinds) == 1 and kinds <= set(CODE_ERRORS) else None


def check_space(state: dict[str, Any], space: Space) -> None:
    """Refuse to resume ``state`` over a search space other than the one it was saved with
    (the callable's bounds or the space changed). A state saved before spaces were recorded
    kept its config's ``space`` with sorted keys, so it is taken only when its records show
    the parameters in the order the space has now (its arms were encoded in the first)."""
    saved = state["loop_json"].get("space")
    if saved is None:
        records = state["loop_json"].get("records", [])
        then = list(records[0]["params"]) if records else None
        if then != space.names and (then is not None or len(space.names) > 1):
            order = f"parameters {then} then, {space.names} now" if then else "no evaluation"
            raise ConfigError(
                "this checkpoint predates recorded search spaces and its order of parameters "
                f"cannot be taken ({order}); start a new run without --resume"
            )
        return
    now = space.describe()
    if saved == json.loads(json.dumps(now)):
        return
    names = [p["name"] for p in saved]
    if names != space.names:
        detail = f"parameters {names} then, {space.names} now"
    else:
        then, new = next((a, b) for a, b in zip(saved, now, strict=True) if a != b)
        detail = f"{then['name']} was {describe_param(then)}, is {describe_param(new)} now"
    raise ConfigError(
        f"the search space changed since the checkpoint ({detail}); restore it to resume, or "
        "start a new run without --resume"
    )


def _jsonable(value: Any) -> Any:
    """Plain Python values (numpy scalars become floats and ints) for a JSON checkpoint."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _simple_regret(records: list[EvaluationRecord]) -> float | None:
    regrets = [r.regret for r in records if r.error is None and r.regret is not None]
    return min(regrets) if regrets else None


def _observations(records: list[EvaluationRecord], problem: Problem, space: Space):
    """Encoded points, rewards and agents of the successful evaluations."""
    good = [r for r in records if r.error is None]
    X = np.array([space.encode(r.params) for r in good])
    y = np.array([problem.sign * r.value for r in good])
    return X, y, np.array([r.agent for r in good], dtype=int)


def _evidence(
    bandit: ArmBandit, records: list[EvaluationRecord], problem: Problem, space: Space, seed: int
) -> None:
    """RBF lengthscales, variance and noise by the evidence (:mod:`distgp.bandit.evidence`)."""
    X, y, _ = _observations(records, problem, space)
    kernel, noise = fit_rbf(X, y, seed=seed)
    bandit.set_kernel(kernel, noise_variance=noise)


def _refit(
    bandit: ArmBandit,
    refitter: GSMPRefitter,
    records: list[EvaluationRecord],
    problem: Problem,
    space: Space,
    events: list[str],
) -> bool:
    """Re-learn the GSMP kernel; ``False`` while the agents hold too few evaluations."""
    X, y, agent = _observations(records, problem, space)
    try:
        kernel = refitter(X, y, agent)  # the agents learn the weights and the noise together
        if kernel is None:
            return False
        bandit.set_kernel(kernel, noise_variance=max(refitter.noise_variance, MIN_NOISE))
    except DistGPError as exc:
        events.append(f"GSMP re-fit after {len(records)} evaluations skipped: {exc}")
    return True
