"""Settings defined once: the default, the check and the help text of every configuration key.

A configuration class is a dataclass whose fields are made with :func:`setting` (values) or
:func:`section` (nested classes). Everything else reads them from there:

* the YAML schema and its type checks (:func:`distgp.config.build`);
* the value checks (:func:`check_settings`, and :func:`require` for the algorithm classes that
  take the same values directly, such as :class:`~distgp.learn.dsca.DSCAOptions`);
* the command-line flags, their help text and the defaults the help shows
  (:mod:`distgp.cli.flags`);
* the defaults of :class:`~distgp.GSMPRegressor`, the driver and the agents.

Errors name the setting by its dotted key (``learn.max_iterations``); the command line adds the
flag that sets it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from distgp.exceptions import ConfigError

SETTING_KEY = "distgp.setting"


@dataclass(frozen=True)
class Rule:
    """A check of one value: a predicate, and what it requires in words (``"at least 1"``)."""

    holds: Callable[[Any], bool]
    requirement: str


def at_least(low: float, unit: str = "") -> Rule:
    return Rule(lambda v: v >= low, f"at least {low}{unit}")


def positive() -> Rule:
    return Rule(lambda v: v > 0 and math.isfinite(v), "positive and finite")


def non_negative() -> Rule:
    return Rule(lambda v: v >= 0 and math.isfinite(v), "non-negative")


def a_seed() -> Rule:
    """A random seed: a non-negative integer that fits the signed 64 bits it travels in."""
    return Rule(lambda v: 0 <= v <= 2**63 - 1, "a non-negative integer below 2^63")


def a_folder() -> Rule:
    """An output folder: a path, not an empty string (which would mean the working folder)."""
    return Rule(lambda v: bool(str(v).strip()), "a folder path, not empty")


def between(low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> Rule:
    """``low <= v <= high`` (strict at an open end); integers read ``in 2..32``."""

    def holds(v: float) -> bool:
        above = v > low if open_low else v >= low
        below = v < high if open_high else v <= high
        return above and below

    if isinstance(low, int) and isinstance(high, int) and not (open_low or open_high):
        return Rule(holds, f"in {low}..{high}")
    left, right = "(" if open_low else "[", ")" if open_high else "]"
    return Rule(holds, f"in {left}{low:g}, {high:g}{right}")


def one_of(*choices: Any) -> Rule:
    return Rule(lambda v: v in choices, "one of " + ", ".join(str(c) for c in choices))


def checked_by(check: Callable[[Any], Any], requirement: str) -> Rule:
    """A rule whose ``check`` raises :class:`ConfigError` with its own message (a parser)."""

    def holds(value: Any) -> bool:
        check(value)
        return True

    return Rule(holds, requirement)


@dataclass(frozen=True)
class Setting:
    """What a configuration key means.

    Attributes:
        help: one line for ``--help`` and the docs, without the default (added from the field).
        rule: the check of a value (``None`` is always allowed where the type admits it).
        flag: the command-line flag without dashes; ``None``: the field name with dashes;
            ``""``: set in config files only.
        metavar: the placeholder in ``--help``.
        default_text: how ``--help`` describes a default that is ``None`` or computed.
        exclusive: flags with the same group name cannot be given together; one given replaces a
            config file's choice among them (the others go back to their defaults).
    """

    help: str
    rule: Rule | None = None
    flag: str | None = None
    metavar: str | None = None
    default_text: str | None = None
    exclusive: str | None = None


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    rule: Rule | None = None,
    flag: str | None = None,
    metavar: str | None = None,
    default_text: str | None = None,
    exclusive: str | None = None,
) -> Any:
    """A dataclass field that is a setting (see :class:`Setting`)."""
    spec = Setting(help, rule, flag, metavar, default_text, exclusive)
    return dataclasses.field(default=default, metadata={SETTING_KEY: spec})


def section(cls: type) -> Any:
    """A dataclass field holding a nested settings class."""
    return dataclasses.field(default_factory=cls)


@dataclass(frozen=True)
class Entry:
    """One setting of a configuration class, found by :func:`entries`.

    Attributes:
        path: dotted key from the top-level class (``learn.max_iterations``).
        hint: the field's type hint (``int | None``).
        default: the default value.
        spec: the field's :class:`Setting`.
        section: the docstring's first line of the class that holds the field.
    """

    path: str
    hint: Any
    default: Any
    spec: Setting
    section: str

    @property
    def flag(self) -> str | None:
        """The name of the setting's command-line flag, without dashes (``None``: config files
        only)."""
        if self.spec.flag == "":
            return None
        return self.spec.flag or self.path.rpartition(".")[2].replace("_", "-")

    def describe_default(self) -> str | None:
        """The default as ``--help`` shows it, or ``None`` when there is nothing to show."""
        if self.spec.default_text is not None:
            return self.spec.default_text
        if self.default is None or isinstance(self.default, bool):
            return None
        return f"{self.default:g}" if isinstance(self.default, float) else str(self.default)


@functools.cache
def entries(cls: type, prefix: str = "") -> tuple[Entry, ...]:
    """Every setting of the dataclass ``cls`` and of its sections, in declaration order."""
    hints = typing.get_type_hints(cls)
    found: list[Entry] = []
    title = (cls.__doc__ or cls.__name__).strip().splitlines()[0]
    for f in dataclasses.fields(cls):
        path = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hints[f.name]):
            found += entries(hints[f.name], f"{path}.")
        elif SETTING_KEY in f.metadata:
            found.append(Entry(path, hints[f.name], f.default, f.metadata[SETTING_KEY], title))
    return tuple(found)


def entry(cls: type, path: str) -> Entry:
    """The setting ``path`` of ``cls`` (a ``KeyError`` names an unknown one)."""
    for e in entries(cls):
        if e.path == path:
            return e
    raise KeyError(path)


def get(config: Any, path: str) -> Any:
    for part in path.split("."):
        config = getattr(config, part)
    return config


def put(config: Any, path: str, value: Any) -> None:
    """Set ``config.<path>`` (e.g. ``consensus.bits``) to an already-typed value."""
    *parents, last = path.split(".")
    for part in parents:
        config = getattr(config, part)
    setattr(config, last, value)


def check_settings(config: Any, prefix: str = "") -> None:
    """Check every value of ``config`` against its rule; raise :class:`ConfigError` naming the
    first bad setting (``prefix`` is prepended to the names, as a caller knows them)."""
    for e in entries(type(config)):
        _check(e, get(config, e.path), prefix + e.path)


def require(cls: type, path: str, value: Any, name: str | None = None) -> Any:
    """Check one ``value`` against the rule of setting ``path`` of ``cls``; return it.

    For algorithm classes that take a setting's value directly: the check is the setting's own
    (``require(FitConfig, "learn.blocks", blocks)``). ``name`` (default ``path``) is what the
    message calls the value, e.g. the argument that carries it.
    """
    _check(entry(cls, path), value, path if name is None else name)
    return value


def _check(e: Entry, value: Any, name: str) -> None:
    rule = e.spec.rule
    if value is None or rule is None:
        return
    if _integer_only(e.hint) and (
        isinstance(value, bool) or not isinstance(value, numbers.Integral)
    ):  # a value set from Python (a config file's types are checked when it is read)
        raise ConfigError(f"{name} must be a whole number, got {value!r}", setting=e.path)
    try:
        holds = rule.holds(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}", setting=e.path) from None
    except (TypeError, ValueError):  # a value of the wrong type, set from Python
        holds = False
    if not holds:
        raise ConfigError(f"{name} must be {rule.requirement}, got {value!r}", setting=e.path)


def _integer_only(hint: Any) -> bool:
    """Whether a type hint admits integers and nothing else numeric (``int``, ``int | None``)."""
    options = set(typing.get_args(hint)) if typing.get_args(hint) else {hint}
    return int in options and not options & {float, str, bool}
