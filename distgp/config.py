"""Typed run configurations, loaded from YAML and checked with one-line messages.

A config file has the sections below (every key optional); command-line flags override it.
Unknown keys and values of the wrong type are errors that name the key and what is expected.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distgp.exceptions import ConfigError

MAX_COMPONENTS = 100_000  # sanity bound on M: each DSCA iteration costs O(M n^2)


@dataclass
class DataConfig:
    """Where the data comes from and how it is split over agents."""

    source: str = "builtin:co2"
    target: str | None = None
    test_fraction: float | None = None
    shard: str = "random"  # random | contiguous | column:NAME
    shards: list[str] | None = None  # shard files, one per agent, read by the agents themselves
    placements: list[str] | None = None  # per shard file: "" or RESOURCE[,RESOURCE...] to run on
    test: str | None = None  # the driver's own evaluation data (with shards)
    min_shard_size: int = 10  # fewest points an agent may send anything about


@dataclass
class KernelConfig:
    """The GSMP spectral grid."""

    grid: str = "data"  # data | reference
    components: int | None = None  # M; default 500 in 1-D, 100 per input dimension otherwise
    levels: int | None = None  # bandwidth levels of the data grid (default 1 in 1-D, else 4)
    frequency_scale: float = 1.0
    # auto | none | constant | linear | quadratic (distgp.kernels.trend); auto: chosen by
    # rolling-origin validation for a 1-D series (distgp.tune); else linear in 1-D, none in P-D
    trend: str = "auto"
    transform: str = "none"  # none | log | boxcox | boxcox:LAMBDA (distgp.transforms)


@dataclass
class LearnConfig:
    """The DSCA local solver."""

    solver: str = "closed_form"  # closed_form | cvxpy
    inner_iterations: int = 1
    blocks: int = 4
    max_iterations: int = 500
    tol: float = 1e-9
    kkt_tol: float = 1e-2
    noise_floor: float = 1e-2  # lower bound of the noise variance, as a fraction of var(y)
    prune_tol: float = 1e-4
    threads: int | None = None  # per process (driver or agent); None: distgp chooses
    device: str = "cpu"  # cpu | cuda | cuda:N: where the dense work runs (torch float64 on GPU)


@dataclass
class ConsensusConfig:
    """Agents and the quantised ADMM layer."""

    agents: int = 1
    bits: int | None = 8
    delta: float | None = None
    quantize: bool = True
    rho: float | None = None
    max_rounds: int = 200
    local_iterations: int = 5
    abs_tol: float = 1e-4
    rel_tol: float = 1e-3


@dataclass
class BackendConfig:
    """Where the agents run."""

    name: str | None = None  # inline | ray; default inline for 1 agent, ray otherwise
    address: str | None = None
    cpus_per_agent: float | None = None
    round_timeout: float | None = 600.0  # seconds; a slower agent is left out of the round
    gpus_per_agent: float | None = None  # GPUs each Ray agent reserves (fractional allowed)


@dataclass
class TuneConfig:
    """Outer model choice on held-out training data (distgp.tune)."""

    horizon: int | None = None  # held-out points per rolling origin (default 10% of n, >= 4)
    origins: int = 2  # rolling origins of a 1-D series
    folds: int = 4  # K of K-fold validation for other data
    budget: int = 0  # BKB evaluations over outer settings (0: off; distgp fit --tune)
    tunables: str = "trend,levels,components,noise_floor,transform"  # comma-separated


@dataclass
class FitConfig:
    """Everything ``distgp fit`` and :class:`~distgp.GSMPRegressor` need."""

    data: DataConfig = field(default_factory=DataConfig)
    kernel: KernelConfig = field(default_factory=KernelConfig)
    learn: LearnConfig = field(default_factory=LearnConfig)
    consensus: ConsensusConfig = field(default_factory=ConsensusConfig)
    backend: BackendConfig = field(default_factory=BackendConfig)
    predict: str | None = None  # private | pooled; default private for more than one agent
    tune: TuneConfig = field(default_factory=TuneConfig)
    seed: int = 0
    out: str = "runs/fit"

    def validate(self) -> FitConfig:
        """Check value ranges; raise :class:`ConfigError` naming the first bad key."""
        _check(self.seed >= 0, f"seed must be a non-negative integer, got {self.seed}")
        c = self.consensus
        _check(c.agents >= 1, f"agents must be at least 1, got {c.agents}")
        if c.quantize:
            _check(
                c.bits is not None or c.delta is not None,
                "quantisation needs bits (2..32) or delta (> 0); or set quantize: false",
            )
            if c.delta is not None:
                _check(c.delta > 0, f"delta must be positive, got {c.delta}")
            elif c.bits is not None:
                _check(2 <= c.bits <= 32, f"bits must be in 2..32, got {c.bits}")
        _check(c.max_rounds >= 1, f"max_rounds must be at least 1, got {c.max_rounds}")
        _check(
            c.local_iterations >= 1,
            f"local_iterations must be at least 1, got {c.local_iterations}",
        )
        _check(c.rho is None or c.rho > 0, f"rho must be positive, got {c.rho}")
        k = self.kernel
        _check(
            k.grid in ("data", "reference"),
            f"kernel grid must be data or reference, got {k.grid!r}",
        )
        _check(
            k.components is None or k.components >= 1,
            f"components (M) must be at least 1, got {k.components}",
        )
        _check(
            k.components is None or k.components <= MAX_COMPONENTS,
            f"components (M) must be at most {MAX_COMPONENTS}, got {k.components}: every DSCA "
            "iteration costs O(M n^2); the defaults are 500 in 1-D and 100 per dimension",
        )
        _check(k.levels is None or k.levels >= 1, f"levels must be at least 1, got {k.levels}")
        _check(k.frequency_scale > 0, f"frequency_scale must be positive, got {k.frequency_scale}")
        self._validate_forecasting()
        lr = self.learn
        _check(
            lr.solver in ("closed_form", "cvxpy"),
            f"solver must be closed_form or cvxpy, got {lr.solver!r}",
        )
        _check(lr.blocks >= 1, f"blocks must be at least 1, got {lr.blocks}")
        _check(
            lr.max_iterations >= 1, f"max_iterations must be at least 1, got {lr.max_iterations}"
        )
        _check(
            lr.inner_iterations >= 1,
            f"inner_iterations must be at least 1, got {lr.inner_iterations}",
        )
        _check(lr.tol > 0, f"tol must be positive, got {lr.tol}")
        _check(lr.kkt_tol > 0, f"kkt_tol must be positive, got {lr.kkt_tol}")
        _check(0 < lr.noise_floor < 1, f"noise_floor must be in (0, 1), got {lr.noise_floor}")
        _check(0 <= lr.prune_tol < 1, f"prune_tol must be in [0, 1), got {lr.prune_tol}")
        _check(
            lr.threads is None or lr.threads >= 1,
            f"threads must be at least 1, got {lr.threads}; omit it to let distgp choose",
        )
        d = self.data
        _check(d.min_shard_size >= 1, f"min_shard_size must be at least 1, got {d.min_shard_size}")
        _check(
            self.predict in (None, "private", "pooled"),
            f"predict must be private or pooled, got {self.predict!r}",
        )
        if d.shards is not None:
            _check(len(d.shards) >= 1, "shards must list at least one file")
            _check(
                self.predict != "pooled",
                "pooled prediction needs the training data in the driver, which never reads "
                "shard files; use private prediction (the default)",
            )
            _check(
                d.placements is None or len(d.placements) == len(d.shards),
                f"placements must have one entry per shard file ({len(d.shards)})",
            )
        _check(
            d.shard in ("random", "contiguous") or d.shard.startswith("column:"),
            f"shard must be random, contiguous or column:NAME, got {d.shard!r}",
        )
        _check(
            d.test_fraction is None or 0 <= d.test_fraction < 1,
            f"test_fraction must be in [0, 1), got {d.test_fraction}",
        )
        b = self.backend
        _check(b.name in (None, "inline", "ray"), f"backend must be inline or ray, got {b.name!r}")
        _check(
            b.address is None or b.name != "inline",
            "--address needs the ray backend; add --backend ray",
        )
        _check(b.cpus_per_agent is None or b.cpus_per_agent > 0, "cpus_per_agent must be positive")
        _check(b.round_timeout is None or b.round_timeout > 0, "round_timeout must be positive")
        self._validate_device()
        return self

    def _validate_forecasting(self) -> None:
        """Trend, output transform and the outer choice (distgp.tune)."""
        from distgp.kernels.trend import TREND_KINDS
        from distgp.transforms import parse_transform
        from distgp.tune import check_tunables

        k, t = self.kernel, self.tune
        _check(
            k.trend == "auto" or k.trend in TREND_KINDS,
            f"trend must be auto or one of {', '.join(TREND_KINDS)}, got {k.trend!r}",
        )
        parse_transform(k.transform)
        _check(t.horizon is None or t.horizon >= 1, f"tune horizon must be >= 1, got {t.horizon}")
        _check(t.origins >= 1, f"tune origins must be at least 1, got {t.origins}")
        _check(t.folds >= 2, f"tune folds must be at least 2, got {t.folds}")
        _check(
            t.budget == 0 or t.budget >= 2,
            f"tune budget must be at least 2 evaluations (or 0: off), got {t.budget}",
        )
        check_tunables([s.strip() for s in t.tunables.split(",") if s.strip()])

    def _validate_device(self) -> None:
        """``device`` and ``gpus_per_agent`` (GPUs of Ray agents are checked where they run)."""
        from distgp.kernels.compute import check_device

        gpus = self.backend.gpus_per_agent
        if gpus is None:
            check_device(self.learn.device)  # the agents run on this machine
            return
        _check(gpus > 0, f"gpus_per_agent must be positive, got {gpus}")
        _check(
            self.backend_name == "ray",
            "--gpus-per-agent places Ray agents on GPUs; add --backend ray (or --agents N > 1)",
        )
        _check(
            self.learn.device == "cuda" or self.learn.device.startswith("cuda:"),
            "--gpus-per-agent reserves GPUs the agents would not use; add --device cuda",
        )

    @property
    def backend_name(self) -> str:
        if self.backend.name is not None:
            return self.backend.name
        if self.backend.address is not None or self.consensus.agents > 1:
            return "ray"
        return "inline"


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


# ----------------------------------------------------------------------------------------------
# Generic loading


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a :class:`ConfigError`."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist")
    try:
        content = yaml.safe_load(p.read_text())
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


def build(cls: type, mapping: dict[str, Any], where: str = "") -> Any:
    """Instantiate the dataclass ``cls`` from a nested mapping, checking keys and types."""
    if not isinstance(mapping, dict):
        raise ConfigError(f"config section {where or 'top level'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]}; known keys"
            f"{' of ' + where if where else ''}: {', '.join(sorted(names))}"
        )
    values = {}
    for name, raw in mapping.items():
        key = f"{where}.{name}" if where else name
        values[name] = _coerce(hints[name], raw, key)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return build(hint, value if value is not None else {}, key)
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


def override(config: Any, dotted: str, value: Any) -> None:
    """Set ``config.<dotted>`` (e.g. ``consensus.bits``) to an already-typed value."""
    *parents, last = dotted.split(".")
    target = config
    for part in parents:
        target = getattr(target, part)
    setattr(target, last, value)
