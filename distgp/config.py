"""Typed run configurations, loaded from YAML and checked with one-line messages.

Every setting is defined once here, with its default, its check and its help text
(:mod:`distgp.settings`); the command-line flags are generated from it (:mod:`distgp.cli.flags`),
and :class:`~distgp.GSMPRegressor`, the driver and the agents take their defaults from it.
A config file has the sections below (every key optional); command-line flags override it.
Unknown keys and values of the wrong type are errors that name the key and what is expected.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distgp.exceptions import ConfigError
from distgp.settings import (
    Rule,
    a_folder,
    a_seed,
    at_least,
    between,
    check_settings,
    checked_by,
    entries,
    entry,
    non_negative,
    one_of,
    positive,
    section,
    setting,
)

MAX_COMPONENTS = 100_000  # sanity bound on M: each DSCA iteration costs O(M n^2)
MIN_DELTA = 1e-12  # finest consensus.delta: see ConsensusConfig.delta


def _valid_trend(name: str) -> bool:
    from distgp.kernels.trend import TREND_KINDS

    return name == "auto" or name in TREND_KINDS


def _valid_transform(text: str) -> None:
    from distgp.transforms import parse_transform

    parse_transform(text)


def _valid_tunables(text: str) -> None:
    from distgp.tune import check_tunables

    check_tunables([s.strip() for s in text.split(",") if s.strip()])


def valid_device_name(name: str) -> bool:
    return name in ("cpu", "torch:cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit())


DEVICE_RULE = Rule(valid_device_name, "cpu, cuda, cuda:N or torch:cpu")  # of every device setting


def check_device_setting(device: str, setting: str) -> None:
    """:func:`~distgp.kernels.compute.check_device` (a GPU this machine lacks is refused), the
    error naming the dotted ``setting``."""
    from distgp.kernels.compute import check_device

    try:
        check_device(device)
    except ConfigError as exc:
        raise ConfigError(f"{setting}: {exc}", setting) from None


def _valid_shard(how: str) -> bool:
    return how in ("random", "contiguous") or (how.startswith("column:") and len(how) > 7)


DEFAULT_SOURCE = "builtin:co2"


@dataclass
class DataConfig:
    """Data: where it comes from and how it is split over agents."""

    source: str = setting(
        DEFAULT_SOURCE, help="a .mat/.csv/.npz file or builtin:co2", flag="data", metavar="SOURCE"
    )
    target: str | None = setting(
        None, help="output column of a CSV", metavar="COLUMN", default_text="the last column"
    )
    test_fraction: float | None = setting(
        None,
        help="held-out fraction of a file without a test split (a .csv, an .npz of X and y, "
        "builtin:co2); a .mat or an .npz with xtest and ytest refuses it",
        rule=between(0, 1, open_high=True),
        metavar="F",
        default_text="0.2; 0.1 for builtin:co2",
    )
    shard: str = setting(
        "random",
        help="how the data is split over agents: random, contiguous, or column:NAME (a CSV "
        "column of site ids: one agent per site unless --agents is given; with fewer agents than "
        "sites, sites are dealt round-robin)",
        rule=Rule(_valid_shard, "random, contiguous or column:NAME"),
        metavar="HOW",
    )
    shards: list[str] | None = setting(
        None,
        help="shard files that the agents read where they run, one agent per file (an "
        "agent count given with them must equal the number of files; a glob, or a "
        "comma-separated list; in a config file, a list of files or globs; NAME@RESOURCE pins "
        "a shard to nodes with that Ray resource); the driver never opens them",
        metavar="FILES",
    )
    placements: list[str] | None = setting(
        None,
        help="per shard file of data.shards: the Ray resource(s) of the nodes it runs on "
        "(NAME@RESOURCE in data.shards sets them)",
        flag="",
    )
    test: str | None = setting(
        None,
        help="evaluation data (.csv with the target column, .npz, .mat): with --data, the test "
        "split (the --data file then trains whole); with shard files, the driver's own",
        metavar="FILE",
    )
    min_shard_size: int = setting(
        10, help="fewest points an agent may send anything about", rule=at_least(1), metavar="K"
    )


@dataclass
class KernelConfig:
    """Kernel: the GSMP spectral grid, the trend and the output transform."""

    grid: str = setting(
        "data",
        help="data (data-driven grid) or reference (the SLIM-KL code's grid)",
        rule=one_of("data", "reference"),
        metavar="data|reference",
    )
    components: int | None = setting(
        None,
        help="number of sub-kernels M, rounded to the grid's levels and frequencies, plus "
        "kernel.slow_components; each DSCA iteration costs O(M n^2)",
        rule=between(1, MAX_COMPONENTS),
        metavar="M",
        default_text="500 in 1-D, 100 per input dimension",
    )
    levels: int | None = setting(
        None,
        help="bandwidth levels of the data grid (at most as many as M has room for)",
        rule=at_least(1),
        metavar="L",
        default_text="1 in 1-D, else 4",
    )
    frequency_scale: float = setting(
        1.0,
        help="scale of the grid's frequencies (1: up to the Nyquist frequency of as many evenly "
        "spaced points as distinct training inputs; at most 100)",
        rule=between(0.0, 100.0, open_low=True),
        metavar="F",
    )
    slow_components: int = setting(
        3,
        help="zero-frequency components of the data grid with bandwidths 4, 16, 64, ... times "
        "below its spacing: variation slower than the grid resolves (0: none)",
        rule=non_negative(),
        metavar="K",
    )
    trend: str = setting(
        "auto",
        help="trend part learned with the weights: auto (with one input chosen on held-out "
        "training data, by rolling origin for a series and by K folds otherwise; linear for "
        "shard files, which --tune scores on the agents' shards; none for several inputs), "
        "none, constant, linear, quadratic, or local (one input: random-walk level and slope)",
        rule=Rule(_valid_trend, "auto, none, constant, linear, quadratic or local"),
        metavar="T",
    )
    season: float = setting(
        0.0,
        help="period of a season learned with the weights, in input units (one evenly spaced "
        "input: a seasonal pattern and a seasonal random walk, each phase of the season "
        "forecast from its last seasons as seasonal naive does; 0: none)",
        rule=non_negative(),
        metavar="P",
    )
    transform: str = setting(
        "none",
        help="output transform for positive data: none, log, boxcox, boxcox:LAMBDA",
        rule=checked_by(_valid_transform, "none, log, boxcox or boxcox:LAMBDA"),
        metavar="T",
    )


@dataclass
class LearnConfig:
    """Local solver: DSCA."""

    solver: str = setting(
        "closed_form",
        help="block subproblem solver",
        rule=one_of("closed_form", "cvxpy"),
        metavar="closed_form|cvxpy",
    )
    inner_iterations: int = setting(
        1, help="closed-form alternations per block", rule=at_least(1), metavar="K"
    )
    blocks: int = setting(
        4, help="DSCA blocks S solved in parallel (Jacobi)", rule=at_least(1), metavar="S"
    )
    max_iterations: int = setting(
        500, help="DSCA iterations of a single-agent fit", rule=at_least(1), metavar="K"
    )
    tol: float = setting(
        1e-9,
        help="stop when the relative decrease of the objective falls below this",
        rule=positive(),
        metavar="T",
    )
    kkt_tol: float = setting(
        1e-2,
        help="stop when the scaled KKT conditions hold to this accuracy",
        rule=positive(),
        metavar="T",
    )
    min_gain: float = setting(
        0.05,
        help=(
            "DSCA counts as settled (pruned weights may re-enter, else it stops) when its last "
            "10 iterations raised the log marginal likelihood by less than this many nats "
            "(0: off)"
        ),
        rule=non_negative(),
        metavar="NATS",
    )
    noise_floor: float = setting(
        1e-2,
        help="lower bound of the noise variance, as a fraction of var(y)",
        rule=between(0, 1, open_low=True, open_high=True),
        metavar="F",
    )
    prune_tol: float = setting(
        1e-4,
        help="weights below this times the largest become exactly zero",
        rule=between(0, 1, open_high=True),
        metavar="T",
    )
    threads: int | None = setting(
        None,
        help=(
            "threads of each process (driver or agent), whatever OMP_NUM_THREADS says; at most "
            "the cores it may run on"
        ),
        rule=at_least(1),
        metavar="N",
        default_text="distgp chooses from the cores (or the agent's CPU share)",
    )
    device: str = setting(
        "cpu",
        help=(
            "where the dense work runs: cpu (numpy) or cuda, cuda:N (torch float64 on a GPU); "
            "torch:cpu runs the GPU path's torch code on the CPU (to check it without a GPU)"
        ),
        rule=DEVICE_RULE,
        metavar="cpu|cuda",
    )


@dataclass
class ConsensusConfig:
    """Agents and consensus: quantised ADMM."""

    agents: int = setting(1, help="number of agents N", rule=at_least(1), metavar="N")
    bits: int | None = setting(
        8,
        help="bits per changed weight per message",
        rule=between(2, 32),
        metavar="B",
        exclusive="quantisation",
    )
    delta: float | None = setting(
        None,
        help=(
            "uniform quantisation step of the weights, instead of bits (takes precedence); the "
            "weights are variances of the standardised output, which sum to about 1"
        ),
        # The quantiser sends each change of a weight as the integer ``change / delta`` (zig-zag
        # coded in at most 63 bits, so |change / delta| must stay below 2^61 ~ 2.3e18). The
        # weights are variances of the standardised output (about 1 in all), so changes are O(1);
        # 1e-12 keeps a margin of about 1e6 for changes far above that scale (agents' local
        # iterates drifting while the penalty is lowered), and no finer step buys accuracy that
        # float64 messages (--no-quantize) or --bits 32 do not give.
        rule=Rule(
            lambda v: MIN_DELTA <= v < 1,
            f"in [{MIN_DELTA:g}, 1), e.g. 0.01 (the weights sum to about 1 on the standardised "
            "output, so a coarser step rounds them all to 0; a finer one overflows the "
            "quantiser's 64-bit codes: for finer messages use --bits 32 or --no-quantize)",
        ),
        metavar="D",
        exclusive="quantisation",
    )
    quantize: bool = setting(
        True,
        help="false (--no-quantize) sends float64 messages; true (the default) quantises them",
        exclusive="quantisation",
    )
    rho: float | None = setting(
        None,
        help=(
            "ADMM penalty of the first rounds; from round 2 on the agents' curvature sets it "
            "(one value per weight, again at rounds 10 and 20)"
        ),
        rule=between(0, 1e12, open_low=True),
        metavar="RHO",
        default_text="from the agents' curvature",
    )
    max_rounds: int = setting(
        200,
        help="ADMM round cap",
        rule=Rule(lambda v: v >= 2, "at least 2 (round 1 only sends the starting point)"),
        flag="rounds",
        metavar="R",
    )
    local_iterations: int = setting(
        5, help="DSCA iterations per agent per round", rule=at_least(1), metavar="K"
    )
    abs_tol: float = setting(
        1e-4, help="absolute tolerance of ADMM's stopping rule", rule=positive(), metavar="T"
    )
    rel_tol: float = setting(
        1e-3, help="relative tolerance of ADMM's stopping rule", rule=positive(), metavar="T"
    )
    balance_rounds: int = setting(
        30,
        help=(
            "last round in which residual balancing may raise the penalty; after it the penalty "
            "only halves, while the agents agree and the consensus still creeps (0: neither; "
            "the curvature still sets it at rounds 2, 10 and 20)"
        ),
        rule=at_least(0),
        metavar="R",
    )


# Ray reserves resources in steps of 1e-4 and refuses a smaller amount (it rounds down above)
RAY_AMOUNT_RULE = Rule(
    lambda v: math.isfinite(v) and v >= 1e-4, "at least 0.0001 (Ray's smallest step) and finite"
)


@dataclass
class BackendConfig:
    """Where agents run."""

    name: str | None = setting(
        None,
        help="inline or ray",
        rule=one_of("inline", "ray"),
        flag="backend",
        metavar="inline|ray",
        default_text="ray for several agents or shard files, inline otherwise",
    )
    address: str | None = setting(
        None,
        help="join this Ray cluster (auto, HOST:PORT)",
        metavar="ADDR",
        default_text="start a local Ray instance",
    )
    cpus_per_agent: float | None = setting(
        None,
        help="CPUs reserved per agent",
        rule=RAY_AMOUNT_RULE,
        metavar="C",
        default_text=(
            "the largest share, at most 1, at which the agents pack into the live nodes, "
            "each on one node"
        ),
    )
    round_timeout: float | None = setting(
        600.0,
        help="seconds after which a slower agent is left out of the round",
        rule=positive(),
        metavar="SEC",
    )
    gpus_per_agent: float | None = setting(
        None,
        help="GPUs each Ray agent reserves, fractional allowed (needs device cuda)",
        rule=RAY_AMOUNT_RULE,
        metavar="G",
    )


def _valid_budget(budget: int) -> bool:
    return budget == 0 or budget >= 2


@dataclass
class TuneConfig:
    """Outer model choice: held-out training data and BKB (distgp.tune)."""

    horizon: int | None = setting(
        None,
        help="held-out points per rolling origin",
        rule=at_least(1),
        metavar="H",
        default_text=(
            "the steps from a series' end to its last test input, else 10% of n; at least 4"
        ),
    )
    origins: int = setting(2, help="rolling origins of a 1-D series", rule=at_least(1), metavar="K")
    folds: int = setting(
        4, help="K of K-fold validation for other data", rule=at_least(2), metavar="K"
    )
    budget: int = setting(
        0,
        help="BKB evaluations over outer settings, each a fit scored on held-out training data "
        "(writes tune.csv and tune.png; 0: off)",
        rule=Rule(_valid_budget, "at least 2 evaluations (or 0: off)"),
        flag="tune",
        metavar="BUDGET",
    )
    batch: int = setting(
        4,
        help="evaluations BKB proposes at a time; the agents score them side by side",
        rule=at_least(1),
        flag="tune-batch",
        metavar="B",
    )
    search_origins: int = setting(
        4,
        help="rolling origins of a tune search on a series, where they fit (else origins): "
        "the best of many candidates over-fits a small held-out set more than the best of a few",
        rule=at_least(1),
        metavar="K",
    )
    calibrate: bool = setting(
        True,
        help="false (--no-calibrate) keeps the evidence's own predictive variance; true (the "
        "default) widens it, wherever held-out data chose the setting, by its held-out mean "
        "squared z-score where that exceeds 1",
    )
    tunables: str = setting(
        "trend,levels,components,noise_floor,transform",
        help="settings the tune searches, comma-separated (in a config file, a list too), among "
        "trend, levels, components, noise_floor, transform (positive outputs only) and season "
        "(a series on the data grid with a period, kernel.season or the one found; not searched "
        "unless named here)",
        rule=checked_by(_valid_tunables, "known tunables"),
        metavar="A,B",
    )


@dataclass
class FitConfig:
    """Everything ``distgp fit`` and :class:`~distgp.GSMPRegressor` need."""

    data: DataConfig = section(DataConfig)
    kernel: KernelConfig = section(KernelConfig)
    learn: LearnConfig = section(LearnConfig)
    consensus: ConsensusConfig = section(ConsensusConfig)
    backend: BackendConfig = section(BackendConfig)
    predict: str | None = setting(
        None,
        help="private (each agent predicts from its own shard, the driver combines them by "
        "rBCM) or pooled (exact: moves every training point to the driver)",
        rule=one_of("private", "pooled"),
        metavar="private|pooled",
        default_text="private for more than one agent or for shard files",
    )
    tune: TuneConfig = section(TuneConfig)
    seed: int = setting(0, help="random seed", rule=a_seed())
    out: str = setting("runs/fit", help="output folder", rule=a_folder(), metavar="DIR")
    plots: bool = setting(
        True,
        help="false (--no-plots) writes no figures; true (the default) writes them; --resume "
        "keeps the setting",
    )

    def validate(self, devices: bool = True) -> FitConfig:
        """Check every value (:func:`~distgp.settings.check_settings`) and the rules between
        settings; raise :class:`ConfigError` naming the first bad setting. The quantisation
        settings that do not apply are cleared (``bits`` beside ``delta``, both with ``quantize``
        false), so that the settings a run records are those it used. ``devices=False``: the
        device's name is checked, not that this machine has it (for commands that never use
        it, as ``distgp predict``)."""
        check_settings(self)
        c, d, b = self.consensus, self.data, self.backend
        _check(
            not c.quantize or c.bits is not None or c.delta is not None,
            "consensus.quantize needs consensus.bits (2..32) or consensus.delta (> 0); or set "
            "it to false",
            "consensus.quantize",
        )
        if not c.quantize:  # float64 messages
            c.bits = c.delta = None
        elif c.delta is not None:  # the step takes precedence over bits
            c.bits = None
        _check(
            d.placements is None or d.shards is not None,
            "data.placements pins shard files, but data.shards lists none; list them in "
            "data.shards (NAME@RESOURCE pins one) or drop data.placements",
            "data.placements",
        )
        if d.shards is not None:
            _check(len(d.shards) >= 1, "data.shards must list at least one file", "data.shards")
            _check(
                self.predict != "pooled",
                "predict: pooled prediction needs the training data in the driver, which never "
                "reads shard files; use private prediction (the default)",
                "predict",
            )
            for key, unset, what in (
                ("source", d.source == DEFAULT_SOURCE, "names training data in the driver"),
                ("test_fraction", d.test_fraction is None, "splits a data.source file"),
                ("shard", d.shard == "random", "splits a data.source file over agents"),
            ):
                _check(
                    unset,
                    f"data.{key} {what}, but with data.shards each agent trains on its whole "
                    f"file; drop data.{key} (data.test names the driver's evaluation file)",
                    f"data.{key}",
                )
            _check(
                d.placements is None or len(d.placements) == len(d.shards),
                f"data.placements must have one entry per shard file ({len(d.shards)})",
                "data.placements",
            )
        _check(
            not self.kernel.season or self.kernel.grid == "data",
            "kernel.season needs the data grid's standardised inputs; set kernel.grid to data, "
            "or kernel.season to 0",
            "kernel.season",
        )
        _check(
            self.kernel.trend != "local" or self.kernel.grid == "data",
            "kernel.trend local needs the data grid's standardised inputs; set kernel.grid to "
            "data, or use another trend",
            "kernel.trend",
        )
        _check(
            b.address is None or b.name != "inline",
            "backend.address needs the ray backend; set backend.name to ray",
            "backend.address",
        )
        self._validate_device(devices)
        return self

    def _validate_device(self, available: bool = True) -> None:
        """``device`` and ``gpus_per_agent`` (GPUs of Ray agents are checked where they run)."""
        if self.backend.gpus_per_agent is None:
            if available:  # agents run on this machine
                check_device_setting(self.learn.device, "learn.device")
            return
        _check(
            self.backend_name == "ray",
            "backend.gpus_per_agent places Ray agents on GPUs; set backend.name to ray "
            "(or more than one agent)",
            "backend.gpus_per_agent",
        )
        _check(
            self.learn.device == "cuda" or self.learn.device.startswith("cuda:"),
            "backend.gpus_per_agent reserves GPUs the agents would not use; set learn.device "
            "to cuda",
            "backend.gpus_per_agent",
        )
        _check(  # Ray shows each actor only the GPU(s) it assigned it, the first as cuda:0
            self.learn.device in ("cuda", "cuda:0"),
            f"learn.device {self.learn.device} with backend.gpus_per_agent: Ray picks each "
            "agent's GPU, which the agent sees as cuda:0; set learn.device to cuda",
            "learn.device",
        )

    @property
    def backend_name(self) -> str:
        if self.backend.name is not None:
            return self.backend.name
        private = self.consensus.agents > 1 or self.data.shards is not None
        if self.backend.address is not None or private:
            return "ray"  # shard files are read by their agents, each in its own process
        return "inline"


def _check(condition: bool, message: str, setting_path: str | None = None) -> None:
    if not condition:
        raise ConfigError(message, setting=setting_path)


# ----------------------------------------------------------------------------------------------
# Generic loading


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a :class:`ConfigError`."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        content = yaml.load(p.read_text(encoding="utf-8"), Loader=_config_loader())
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {p} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None
    except _DuplicateKeyError as exc:
        raise ConfigError(f"config file {p} sets {exc} twice; keep one") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ConfigError(f"config file {p} is not valid YAML{where}; fix its syntax") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(
            f"config file {p} must hold a mapping of sections, not a {type(content).__name__}"
        )
    return content


class _DuplicateKeyError(Exception):
    """A YAML mapping that names a key twice (``yaml.safe_load`` keeps the last silently)."""


@functools.cache
def _config_loader():
    """PyYAML's safe loader with YAML 1.2 numbers (``1e-5`` is a float, not the string YAML
    1.1 makes of it) and duplicate keys refused."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                if not isinstance(key, str | int | float | bool):
                    continue  # a complex key: the mapping's own construction judges it
                if key in seen:
                    raise _DuplicateKeyError(f"{key!r} (line {key_node.start_mark.line + 1})")
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
        list("-+0123456789."),
    )
    return Loader


def build(cls: type, mapping: dict[str, Any], where: str = "", root: type | None = None) -> Any:
    """Instantiate the dataclass ``cls`` from a nested mapping, checking keys and types;
    ``root``: the top-level class (``cls`` itself at the top), whose flags tell the key to use
    where a flag's name was written as a key (``rounds: 5``)."""
    root = root or cls
    if not isinstance(mapping, dict):
        raise ConfigError(
            _flag_written(root, where, mapping, "is a section")
            or f"config section {where or 'top level'} must be a mapping"
        )
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names, key=str)
    if unknown:
        prefix = f"{where}." if where else ""
        key = f"{prefix}{unknown[0]}"
        raise ConfigError(
            _flag_written(root, key, mapping[unknown[0]], "is unknown")
            or f"unknown config key {key}; known keys"
            f"{' of ' + where if where else ''}: {', '.join(sorted(names))}"
        )
    values = {}
    for name, raw in mapping.items():
        key = f"{where}.{name}" if where else name
        values[name] = _coerce(hints[name], raw, key, root)
    return cls(**values)


def _flag_written(root: type, key: str, value: Any, what: str) -> str | None:
    """The message for the config ``key`` (a dotted path) that names a flag of ``root``'s
    settings (``tune: 4``, ``rounds: 5``): the setting that flag sets, written as YAML; ``None``
    for another key."""
    import yaml

    name = key.rpartition(".")[2].replace("_", "-")
    e = next((e for e in entries(root) if e.flag == name), None)
    if e is None:
        return None
    nested: Any = value
    for part in reversed(e.path.split(".")):
        nested = {part: nested}
    written = yaml.safe_dump(nested, default_flow_style=True, width=math.inf).strip()[1:-1]
    return f"config key {key} {what}; the flag --{e.flag} is {e.path}: write {written}"


COMMA_LISTS = {"tune.tunables": "trend,levels"}  # string settings a list of names also sets


def typed_setting(path: str, value: Any) -> Any:
    """``value`` for the :class:`FitConfig` setting ``path``, with the config file's type checks
    (``2.5`` is not an integer); numpy scalars (``np.int64(30)``, a grid search over
    ``np.arange``) become Python numbers. A :class:`ConfigError` names ``path``."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a numpy scalar
        value = value.item()
    try:
        return _coerce(entry(FitConfig, path).hint, value, path)
    except ConfigError as exc:
        raise ConfigError(str(exc).removeprefix("config key "), setting=path) from None


def _coerce(hint: Any, value: Any, key: str, root: type | None = None) -> Any:
    if key in COMMA_LISTS and isinstance(value, list | tuple):
        if all(isinstance(item, str) for item in value):  # a YAML list of names
            return ",".join(value)
        raise ConfigError(
            f"config key {key} must be a comma-separated string or a list of names, e.g. "
            f"{COMMA_LISTS[key]!r}, got {value!r}"
        )
    if dataclasses.is_dataclass(hint):
        return build(hint, value if value is not None else {}, key, root)
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"config key {key} must not be empty")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if option is str and isinstance(value, str):
            return value
        if (
            typing.get_origin(option) is list
            and isinstance(value, list)
            and all(isinstance(item, str) for item in value)
        ):
            return list(value)
    wanted = " or ".join(_type_name(o) for o in options if o is not type(None))
    raise ConfigError(f"config key {key} must be {wanted}, got {value!r}")


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType)


def _type_name(t: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if typing.get_origin(t) is list:
        return "a list of strings"
    return names.get(t, str(t))


def load_fit_config(path: str | Path | None) -> FitConfig:
    """Load a :class:`FitConfig` from YAML (defaults when ``path`` is None)."""
    if path is None:
        return FitConfig()
    return build(FitConfig, read_yaml(path), "")
