"""Checkpoints written atomically every round (``fit``) or batch (``optimize``), for ``--resume``.

A fit's whole driver state fits in one file: the coordinator's consensus, duals, penalty and each
agent's last upload (agents warm-start from their last upload, so nothing agent-private is
needed), or the single agent's parameters; quantisation noise is seeded by (seed, agent, round).
An optimisation saves the bandit's state (its random stream included) and the loop's records.
Either way a resumed run ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from distgp.exceptions import ConfigError, DistGPError, ModelFileError
from distgp.io import json_default, read_npz, save_npz, temporary_pattern

CHECKPOINT_FORMAT = "distgp-checkpoint"
CHECKPOINT_NAME = "checkpoint.npz"
AGENT_STATE_DIR = "agents"  # beside the checkpoint: each agent's round state, for --resume


class Checkpoint:
    """The checkpoint file of one run folder.

    Args:
        folder: the run's ``--out`` folder.
        kind: ``fit`` or ``optimize``; a checkpoint of the other kind is refused.
    """

    def __init__(self, folder: str | Path, kind: str = "fit") -> None:
        self.path = Path(folder) / CHECKPOINT_NAME
        self.kind = kind
        self.outer_choice: list[dict[str, Any]] | None = None  # saved with every state
        # the command's own settings (before an outer choice's), for a resumed run's record
        self.command_config: Any = None
        # the outer choice running, not saved until it has chosen ("the --tune search"); None
        self.searching: str | None = None
        self.written = False  # saved by this process: the file is this run's, not an older one's

    def resumed_outer_choice(self) -> list[dict[str, Any]]:
        """The outer choice the interrupted fit was made after (its scored settings, as
        :attr:`outer_choice` held them; empty when none ran)."""
        return list(self.load().get("outer_choice_json") or [])

    def resumed_command_config(self) -> dict[str, Any] | None:
        """The settings the interrupted command gave, as :attr:`command_config` held them (the
        output folder excluded); None in checkpoints written before they were saved."""
        return self.load().get("command_config_json")

    @property
    def agent_state_dir(self) -> str:
        """Where the agents keep their round state (on their own nodes' disks): an absolute
        path, resolved here, so that a relative ``--out`` does not name a folder in each node's
        working directory."""
        return os.path.abspath(self.path.parent / AGENT_STATE_DIR)

    def save(self, config: Any, state: dict[str, Any]) -> None:
        """Write ``state`` (arrays, or JSON-able values under keys ending in ``_json``)."""
        arrays = {
            "format": np.asarray(CHECKPOINT_FORMAT),
            "kind": np.asarray(self.kind),
            "config_json": np.asarray(config_json(config)),
        }
        if self.command_config is not None:
            arrays["command_config_json"] = np.asarray(config_json(self.command_config))
        if self.outer_choice is not None:  # a fit's held-out choice, made before it started
            state = {**state, "outer_choice_json": self.outer_choice}
        for key, value in state.items():
            arrays[key] = (
                np.asarray(json.dumps(value, default=json_default))
                if key.endswith("_json")
                else np.asarray(value)
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_npz(self.path, arrays)
        self.written = True

    def load(self) -> dict[str, Any]:
        """The saved state; JSON fields decoded. Raises if there is no usable checkpoint, and
        (:class:`ModelFileError`) where a reader takes a key it lacks."""
        folder = self.path.parent
        if not self.path.is_file():
            search = (
                ": a --tune search, like the default path's held-out choice, is checkpointed only "
                "once it has chosen"
            ) * (self.kind == "fit")
            if folder.exists() and not folder.is_dir():
                raise ModelFileError(
                    f"nothing to resume: {folder} is a file, not a folder; give the --out folder "
                    "of the interrupted run"
                )
            where = (
                f"{folder} has no {CHECKPOINT_NAME} (the run finished, or"
                if folder.is_dir()
                else f"there is no folder {folder} (a wrong path, or a run"
            )
            raise ModelFileError(
                f"nothing to resume: {where} stopped before its first checkpoint{search}); "
                "run its command again without --resume"
            )
        try:
            raw = read_npz(self.path)
        except ValueError as exc:
            raise ModelFileError(
                f"cannot read checkpoint {self.path} ({exc}); {self.anew}"
            ) from None
        if str(raw.get("format", "")) != CHECKPOINT_FORMAT or str(raw.get("kind")) != self.kind:
            raise ModelFileError(f"{self.path} is not a distgp {self.kind} checkpoint; {self.anew}")
        try:
            decoded = {k: json.loads(str(v)) if k.endswith("_json") else v for k, v in raw.items()}
        except ValueError as exc:
            raise ModelFileError(
                f"checkpoint {self.path} holds invalid JSON ({exc}); {self.anew}"
            ) from None
        return _Saved(decoded, self)

    @property
    def remedy(self) -> str:
        """What makes way for a new run over a checkpoint that cannot be resumed."""
        agents = f" (and {self.path.parent / AGENT_STATE_DIR}/)" * (self.kind == "fit")
        return f"remove it{agents} or choose another --out"

    @property
    def anew(self) -> str:
        return f"to start a new run, {self.remedy}"

    def check_replaceable(self) -> None:
        """Before a new run over the folder: refuse a ``checkpoint.npz`` that is not a distgp
        checkpoint of this kind (a file of the user's, which :meth:`remove` would delete)."""
        if not self.path.exists():
            return
        try:
            self.load()
        except ModelFileError:
            raise ConfigError(
                f"--out {self.path.parent} holds a {CHECKPOINT_NAME} that is not a distgp "
                f"{self.kind} checkpoint; {self.remedy}"
            ) from None

    def remove(self) -> None:
        """Remove the checkpoint and the agents' round-state files kept beside it
        (``agents/agent-J.npz``, :meth:`distgp.agents.agent.Agent._state_file`), and that folder
        if nothing else is in it: never a file distgp did not write."""
        self.path.unlink(missing_ok=True)
        folder = self.path.parent / AGENT_STATE_DIR
        if not folder.is_dir():
            return
        for written in (
            *folder.glob("agent-*.npz"),
            *folder.glob(temporary_pattern("agent-*.npz")),
        ):
            written.unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # it holds files of the user's
            folder.rmdir()


def config_json(config: Any) -> str:
    """The run's settings as canonical JSON (the output folder excluded); an optimisation's
    ``space`` mapping keeps its order, which is the order of the encoded columns."""
    data = dataclasses.asdict(config)
    data.pop("out", None)
    space = data.pop("space", None)
    text = json.dumps(data, sort_keys=True, default=json_default)
    if space is None:
        return text
    return json.dumps({**json.loads(text), "space": space}, default=json_default)


class _Saved(dict):
    """A loaded checkpoint's state: a key it lacks (a checkpoint of another distgp version, or
    edited) is a one-line :class:`ModelFileError`, not a ``KeyError``."""

    def __init__(self, state: dict[str, Any], checkpoint: Checkpoint) -> None:
        super().__init__(state)
        self.checkpoint = checkpoint

    def __missing__(self, key: str) -> Any:
        c = self.checkpoint
        raise ModelFileError(
            f"checkpoint {c.path} lacks {key!r} (another distgp version's, or edited); {c.anew}"
        )


@contextlib.contextmanager
def restoring(saved: Mapping[str, Any]) -> Iterator[None]:
    """Around code that takes up a loaded checkpoint's state (:meth:`Checkpoint.load`): a value
    of the wrong type or shape (another distgp version's, or edited) is a one-line
    :class:`ModelFileError`, not a traceback."""
    try:
        yield
    except DistGPError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        checkpoint = getattr(saved, "checkpoint", None)
        where = "the checkpoint" if checkpoint is None else f"checkpoint {checkpoint.path}"
        remedy = "" if checkpoint is None else f"; {checkpoint.anew}"
        raise ModelFileError(
            f"{where} holds a state this distgp cannot take up ({type(exc).__name__}: {exc}; "
            f"another distgp version's, or edited){remedy}"
        ) from None
