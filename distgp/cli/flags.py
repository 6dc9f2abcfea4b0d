"""Command-line flags generated from the settings (:mod:`distgp.settings`).

Each setting with a flag becomes one ``--flag`` in the argument group of its section, typed
from the field's type hint, with the setting's help text and its default from the dataclass. A
true/false setting becomes a pair: the flag that flips its default (``--batch``,
``--no-plots``) and its inverse (``--no-batch``, ``--plots``), which undoes a ``--config`` file's
value; the last one given wins. A flag of a mutually exclusive group (``--bits``, ``--delta``,
``--no-quantize``) replaces a config file's choice among them: the group's other settings go
back to their defaults.
Values are checked by the settings' rules once the config is built, so a flag and a config
file key fail with the same message; the command line adds the flag's name to it.
"""

from __future__ import annotations

import argparse
import typing
from dataclasses import dataclass
from typing import Any

from distgp.settings import Entry, entries, put


@dataclass(frozen=True)
class Flag:
    """One generated flag: ``--name`` sets the setting ``entry.path``; a true/false setting's
    ``--inverse`` sets it back to its default."""

    name: str
    dest: str
    entry: Entry
    inverse: str | None = None

    def given(self, value: Any) -> str:
        """``--name`` of the form that gave ``value``."""
        inverse = self.inverse is not None and value == self.entry.default
        return f"--{self.inverse if inverse else self.name}"

    def forms(self) -> list[str]:
        """``--name`` and, for a true/false setting, ``--inverse``."""
        return [f"--{self.name}"] + ([f"--{self.inverse}"] if self.inverse else [])


class FlagTable:
    """The flags of one command and the settings they set."""

    def __init__(self, flags: list[Flag], custom: dict[str, str]) -> None:
        self.flags = flags
        self.custom = custom  # setting path -> flag whose text the command converts itself

    def flag_of(self, path: str) -> str | None:
        """``--name`` of the flag that sets ``path`` (flips its default), or ``None``."""
        forms = self.forms_of(path)
        return forms[0] if forms else None

    def forms_of(self, path: str) -> list[str]:
        """Every ``--name`` that sets ``path`` (a true/false setting has two)."""
        for f in self.flags:
            if f.entry.path == path:
                return f.forms()
        return [f"--{self.custom[path]}"] if path in self.custom else []

    def apply(self, config: Any, args: argparse.Namespace) -> None:
        """Copy each flag that was given into ``config``; one of an exclusive group first sets
        the group's settings back to their defaults (``--bits 4`` over a file's ``delta``)."""
        for f in self.flags:
            value = getattr(args, f.dest)
            if value is None:
                continue
            group = f.entry.spec.exclusive
            if group is not None and f.given(value) == f"--{f.name}":  # not an inverse
                for other in self.flags:
                    if other.entry.spec.exclusive == group:
                        put(config, other.entry.path, other.entry.default)
            put(config, f.entry.path, value)

    def given(self, args: argparse.Namespace) -> list[str]:
        """``--name`` of every setting flag given on the command line."""
        named = [
            f.given(getattr(args, f.dest)) for f in self.flags if getattr(args, f.dest) is not None
        ]
        return named + [f"--{name}" for name in self.custom.values() if getattr(args, name, None)]


def add_setting_flags(
    parser: argparse.ArgumentParser, cls: type, custom: dict[str, str] | None = None
) -> FlagTable:
    """Add a flag for every setting of ``cls`` that has one, grouped by section.

    Args:
        parser: the command's parser.
        cls: the command's top-level settings class (``FitConfig``).
        custom: setting path -> flag name (without dashes) of settings whose flag text the
            command converts itself (``--shards`` expands globs); such a flag keeps its text
            in ``args.<name>`` and :meth:`FlagTable.apply` leaves it alone.

    Returns:
        The :class:`FlagTable`; the parser's ``flag_table`` default is set to it, so errors
        naming a setting can name its flag.
    """
    custom = dict(custom or {})
    flags: list[Flag] = []
    groups: dict[str, argparse._ArgumentGroup] = {}
    exclusive: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for e in entries(cls):
        if e.flag is None:
            continue
        section = e.path.rpartition(".")[0]
        if section not in groups:
            title = e.section.split(":")[0].rstrip(".").lower() if section else "run"
            groups[section] = parser.add_argument_group(title)
        target = groups[section]
        if e.spec.exclusive is not None:
            if e.spec.exclusive not in exclusive:
                exclusive[e.spec.exclusive] = target.add_mutually_exclusive_group()
            target = exclusive[e.spec.exclusive]
        if e.path in custom:
            target.add_argument(f"--{custom[e.path]}", metavar=e.spec.metavar, help=e.spec.help)
        else:
            flags.append(_add(target, e, groups[section]))
    table = FlagTable(flags, custom)
    parser.set_defaults(flag_table=table)
    return table


def _add(group: Any, e: Entry, section: Any) -> Flag:
    """Add ``e``'s flag to ``group``; a true/false setting's inverse goes to ``section`` (the
    inverse excludes nothing: ``--quantize`` goes with ``--bits``)."""
    name = str(e.flag)
    dest = e.path.replace(".", "__")
    help_text = e.spec.help
    if e.describe_default() is not None:
        help_text += f" (default {e.describe_default()})"
    help_text = help_text.replace("%", "%%")
    kind = _base_type(e.hint)
    if kind is bool:
        flip, inverse = (f"no-{name}", name) if e.default else (name, f"no-{name}")
        group.add_argument(
            f"--{flip}", dest=dest, action="store_const", const=not e.default, help=help_text
        )
        section.add_argument(
            f"--{inverse}",
            dest=dest,
            action="store_const",
            const=e.default,
            help=f"set {e.path} back to {str(e.default).lower()}, over a --config file (the "
            f"opposite of --{flip})",
        )
        return Flag(flip, dest, e, inverse)
    group.add_argument(
        f"--{name}", dest=dest, type=_PARSERS[kind], metavar=e.spec.metavar, help=help_text
    )
    return Flag(name, dest, e)


def _base_type(hint: Any) -> Any:
    """The flag's value type: ``int | None`` -> int; ``str | float`` -> (str, float)."""
    options = tuple(a for a in typing.get_args(hint) if a is not type(None)) or (hint,)
    if len(options) == 1:
        return options[0]
    return frozenset(options)


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None


def number_or_word(text: str) -> float | str:
    """A number if ``text`` reads as one, else the word (``practical``, ``3``)."""
    try:
        return float(text)
    except ValueError:
        return text


_PARSERS: dict[Any, Any] = {
    int: integer,
    float: number,
    str: str,
    frozenset((str, float)): number_or_word,
}
