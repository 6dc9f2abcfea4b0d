"""``BKBSearch``: BKB (or batch BKB) as a Ray Tune search algorithm.

The Tune ``param_space`` (``tune.uniform``, ``tune.loguniform``, ``tune.randint``,
``tune.lograndint``, ``tune.choice``; nested dicts allowed, constants kept) is discretised into
``arms`` points; each ``suggest`` hands out one arm's configuration:

* plain BKB: every call asks the bandit for one arm; trials still running are pending
  (hallucinated), so concurrent trials get different arms;
* ``batch=True``: a call with nothing queued asks for a whole adaptive batch and then hands it
  out one configuration per call; while a batch is running, ``suggest`` returns ``None`` (Tune
  asks again later), so batches are synchronous. Use ``max_concurrent`` (or a
  ``ConcurrencyLimiter``) to bound the parallelism.
* no configuration is proposed twice (``repeat=False``: a repeated configuration of a
  deterministic trainable teaches nothing); pass ``repeat=True`` for a noisy one;
* once every arm was evaluated (or, with ``repeat=True``, failed), ``suggest`` returns
  ``None`` while trials still run and then ``Searcher.FINISHED``, so Tune stops asking.

Results, as Tune defines them (and as its ``OptunaSearch`` records them):

* a trial that reports ``metric`` is told its value (negated for ``mode="min"``: BKB
  maximises), even when it then errored; a NaN or infinite value (or an int too large for a
  float) is a failed evaluation, and a value that is not a real number (a string or a bool
  too) is an ``InputDataError``;
* an errored trial without the metric is a failed evaluation (BKB does not propose that arm
  again);
* a trial that ends without the metric and without an error was stopped early (pruned): it is
  told as a failed evaluation too (never proposed again, counted by the model as the worst
  value so far: ``impute_failed`` in :mod:`distgp.bandit.base`). Left pending, a pruned arm kept
  the highest UCB and was proposed again and again.

``points_to_evaluate`` (full configurations) are handed out first, in order, and told like any
other trial. ``add_evaluated_point`` accepts results obtained elsewhere (``pruned=True``
records nothing, ``intermediate_values`` are not used: BKB models final values only).
``save``/``restore`` pickle the whole state (including the random generator and the points
still to evaluate) with ``ray.cloudpickle``, so constants may be lambdas or local functions,
and a restored searcher continues the same run. Algorithm: ``docs/bkb.md``.

Example::

    from ray import tune
    from distgp.integrations.tune import BKBSearch

    tuner = tune.Tuner(
        trainable,
        param_space={"lr": tune.loguniform(1e-4, 1e-1), "layers": tune.randint(1, 5)},
        tune_config=tune.TuneConfig(search_alg=BKBSearch(seed=0), metric="loss", mode="min",
                                    num_samples=40),
    )
"""

from __future__ import annotations

import math
from typing import Any

from ray import cloudpickle
from ray.tune.search import Searcher
from ray.tune.search.sample import Categorical, Domain, Float, Integer, LogUniform, Quantized
from ray.tune.search.variant_generator import parse_spec_vars
from ray.tune.utils.util import flatten_dict, unflatten_dict

from distgp.bandit.base import real_number
from distgp.bandit.spaces import CategoricalParam, FloatParam, IntParam, Param
from distgp.exceptions import ConfigError, InputDataError
from distgp.integrations.common import ParamBandit, check_options
from distgp.io import atomic_write


class BKBSearch(Searcher):
    """Ray Tune searcher driven by BKB.

    Args:
        space: a Tune search space; ``None`` to take the ``Tuner``'s ``param_space``.
        metric, mode: the metric to optimise and ``min`` or ``max``; those unset here are taken
            from ``TuneConfig``, which Tune passes only along with a ``param_space``.
        arms: number of arms the space is discretised into.
        batch: batch BKB (adaptive synchronous batches).
        max_concurrent: cap on trials running at once (``None``: Tune's limit).
        seed: seed of the arms and of the bandit.
        algorithm: ``bkb`` or ``gpucb``.
        points_to_evaluate: configurations to run first (each sets every searched parameter;
            nested dicts as in the space).
        **options: bandit options (:class:`~distgp.bandit.base.ArmBandit`, ``qbar``, ``kernel``);
            ``repeat`` defaults to ``False`` here.
    """

    def __init__(
        self,
        space: dict[str, Any] | None = None,
        metric: str | None = None,
        mode: str | None = None,
        *,
        arms: int = 2000,
        batch: bool = False,
        max_concurrent: int | None = None,
        seed: int | None = None,
        algorithm: str = "bkb",
        points_to_evaluate: list[dict[str, Any]] | None = None,
        **options: Any,
    ) -> None:
        check_options(seed, algorithm, {"batch": batch, **options}, arms)
        super().__init__(metric=metric, mode=mode)
        self._points = [dict(p) for p in points_to_evaluate or ()]
        self._settings = {
            "arms": arms,
            "seed": seed,
            "algorithm": algorithm,
            "batch": batch,
            "repeat": False,
            **options,
        }
        self.max_concurrent = max_concurrent
        self._bandit: ParamBandit | None = None
        self._constants: dict[str, Any] = {}
        self._queue: list[tuple[int, dict[str, Any]]] = []
        self._live: dict[str, int] = {}
        if space:
            self._setup(space)

    def _setup(self, space: dict[str, Any]) -> None:
        params = tune_params(space)
        if not params:
            raise ConfigError("the Tune search space has no tune.uniform/randint/choice domain")
        s = dict(self._settings)
        self._bandit = ParamBandit(params, s.pop("arms"), s.pop("seed"), s.pop("algorithm"), **s)
        flat = flatten_dict(space, prevent_delimiter=True)
        self._constants = {k: v for k, v in flat.items() if not _searched({k: v})}
        self._points = [
            self._point_params(f"points_to_evaluate[{k}]", p) for k, p in enumerate(self._points)
        ]

    def _point_params(self, what: str, point: dict[str, Any]) -> dict[str, Any]:
        """The searched parameters of ``point`` (flat names), checked; ``what`` names it."""
        assert self._bandit is not None
        flat = flatten_dict(point, prevent_delimiter=True)
        names = [p.name for p in self._bandit.space.params]
        missing = [n for n in names if n not in flat]
        if missing:
            raise ConfigError(f"{what} does not set {missing[0]!r}; give every searched parameter")
        params = {n: flat[n] for n in names}
        for p in self._bandit.space.params:
            if not isinstance(p, CategoricalParam) and real_number(params[p.name]) is None:
                raise ConfigError(  # encode converts '0.5', and the trial got the string
                    f"{what} sets {p.name!r} to {params[p.name]!r}; give a number"
                )
        self._bandit.space.encode(params)  # a value outside the space is refused here
        return params

    def set_search_properties(
        self, metric: str | None, mode: str | None, config: dict, **spec: Any
    ) -> bool:
        """Tune's metric and mode (where not set here) and its ``param_space`` as the space.

        Refused (``False``) only for a second search space; Tune calls this only when it has
        a ``param_space`` (constants alone are fine: Tune adds them to every config itself).
        """
        self._metric = self._metric or metric
        self._mode = self._mode or mode
        if self._bandit is None:
            self._setup(config)
        elif _searched(config):
            return False
        return True

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        self.max_concurrent = max_concurrent
        return True

    @property
    def bandit(self) -> ParamBandit | None:
        return self._bandit

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self._bandit is None:
            raise RuntimeError("BKBSearch has no search space; pass space= or a Tuner param_space")
        if self._metric is None or self._mode is None:
            raise RuntimeError(
                "BKBSearch needs metric and mode: pass them to BKBSearch (Tune passes those of "
                "tune.TuneConfig only along with a param_space)"
            )
        if self.max_concurrent is not None and len(self._live) >= self.max_concurrent:
            return None
        if self._points:
            params = self._points.pop(0)
            self._live[trial_id] = self._bandit.arm_of(params)
            return self._config(params)
        if not self._queue:
            if self._settings["batch"] and self._live:
                return None  # a batch is running: wait for it
            if self._bandit.exhausted:  # every arm evaluated, failed or running
                return None if self._live else Searcher.FINISHED
            self._queue = self._bandit.ask()
        arm, params = self._queue.pop(0)
        self._live[trial_id] = arm
        return self._config(params)

    def _config(self, params: dict[str, Any]) -> dict[str, Any]:
        """The trial configuration: the space's constants and the searched ``params``."""
        return unflatten_dict({**self._constants, **params})

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        if trial_id not in self._live or self._bandit is None:
            return
        reward = self._reward(None if result is None else result.get(self._metric))
        self._bandit.tell(self._live.pop(trial_id), reward)

    def _reward(self, value: Any) -> float:
        """The reward of Tune's metric ``value``; see the module docstring for the cases."""
        if value is None:  # errored, or stopped early (pruned) without the metric: a failure
            return math.nan
        reward = real_number(value)
        if reward is None:  # a string or a bool too: optimize and BKB.tell refuse them
            raise InputDataError(
                f"the metric {self._metric!r} is {value!r}, not a number; report a number "
                "(or nothing for a failed trial)"
            )
        if not math.isfinite(reward):  # an int too large for a float too
            return math.nan
        return -reward if self._mode == "min" else reward

    def add_evaluated_point(
        self,
        parameters: dict,
        value: float,
        error: bool = False,
        pruned: bool = False,
        intermediate_values: list[float] | None = None,
    ) -> None:
        if self._bandit is None:
            raise RuntimeError("BKBSearch has no search space yet")
        if pruned and not error:
            return  # no final value: nothing for BKB to learn
        params = self._point_params("the point given to add_evaluated_point", parameters)
        reward = self._reward(None if error else value)
        arm = self._bandit.arm_of(params)
        self._bandit.tell(arm, reward)

    def get_state(self) -> dict[str, Any]:
        return {
            "metric": self._metric,
            "mode": self._mode,
            "settings": self._settings,
            "max_concurrent": self.max_concurrent,
            "bandit": self._bandit,
            "constants": self._constants,
            "queue": self._queue,
            "live": self._live,
            "points": self._points,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._metric, self._mode = state["metric"], state["mode"]
        self._settings = state["settings"]
        self.max_concurrent = state["max_concurrent"]
        self._bandit, self._queue, self._live = state["bandit"], state["queue"], state["live"]
        self._constants = state.get("constants", {})  # absent from older saved states
        self._points = state["points"]

    def save(self, checkpoint_path: str) -> None:
        data = cloudpickle.dumps(self.get_state())  # constants may be lambdas
        atomic_write(checkpoint_path, lambda handle: handle.write(data))

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as handle:
            self.set_state(cloudpickle.load(handle))


def tune_params(space: dict[str, Any]) -> list[Param]:
    """BKB parameters of a Tune search space (names ``a/b`` for nested keys)."""
    _, _, grid = parse_spec_vars(space)
    if grid:
        raise ConfigError("BKBSearch cannot take tune.grid_search parameters")
    _, domains, _ = parse_spec_vars(flatten_dict(space, prevent_delimiter=True))
    in_list = [path for path, _ in domains if len(path) > 1]  # flat keys: only a list index
    if in_list:
        raise ConfigError(
            f"BKBSearch cannot search inside a list ({in_list[0][0]!r}, item {in_list[0][1]}); "
            "put the domain in a dict"
        )
    return [_param(path[0], domain) for path, domain in domains]


def _searched(spec: dict[str, Any]) -> bool:
    """Whether a Tune spec has a domain to search (not only constants)."""
    _, domains, grid = parse_spec_vars(spec)
    return bool(domains or grid)


def _param(name: str, domain: Domain) -> Param:
    sampler = domain.get_sampler()
    if isinstance(sampler, Quantized):
        raise ConfigError(f"BKBSearch does not support the quantised domain of {name!r}")
    log = isinstance(sampler, LogUniform)
    if isinstance(domain, Float):
        return FloatParam(name, float(domain.lower), float(domain.upper), log)
    if isinstance(domain, Integer):  # Tune's upper bound is exclusive
        if domain.upper <= domain.lower:
            kind = "lograndint" if log else "randint"
            raise ConfigError(
                f"parameter {name}: tune.{kind}({domain.lower}, {domain.upper}) is empty (the "
                f"upper bound is exclusive); raise the upper bound above {domain.lower}"
            )
        return IntParam(name, float(domain.lower), float(domain.upper - 1), log)
    if isinstance(domain, Categorical):
        return CategoricalParam(name, tuple(domain.categories))
    raise ConfigError(f"BKBSearch does not support the domain {type(domain).__name__} of {name!r}")
