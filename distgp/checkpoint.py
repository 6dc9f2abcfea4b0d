"""Checkpoints of a learning run, written atomically every round, for ``distgp fit --resume``.

The driver's whole state fits in one file: the coordinator's consensus, duals, penalty and each
agent's last upload (agents warm-start from their last upload, so nothing agent-private is
needed), or the single agent's parameters. Quantisation noise is seeded by (seed, agent, round),
so a resumed run ends exactly where an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from distgp.exceptions import ModelFileError
from distgp.io import save_npz

CHECKPOINT_FORMAT = "distgp-fit-checkpoint"
CHECKPOINT_NAME = "checkpoint.npz"


class Checkpoint:
    """The checkpoint file of one run folder.

    Args:
        folder: the run's ``--out`` folder.
    """

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / CHECKPOINT_NAME

    def save(self, config: Any, state: dict[str, Any]) -> None:
        """Write ``state`` (arrays, or JSON-able values under keys ending in ``_json``)."""
        arrays = {
            "format": np.asarray(CHECKPOINT_FORMAT),
            "config_json": np.asarray(config_json(config)),
        }
        for key, value in state.items():
            arrays[key] = (
                np.asarray(json.dumps(value)) if key.endswith("_json") else np.asarray(value)
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        save_npz(self.path, arrays)

    def load(self) -> dict[str, Any]:
        """The saved state; JSON fields decoded. Raises if there is no usable checkpoint."""
        if not self.path.is_file():
            raise ModelFileError(
                f"nothing to resume: {self.path.parent} has no {CHECKPOINT_NAME} (the run finished "
                "or never started); start a new run instead"
            )
        try:
            with np.load(self.path, allow_pickle=False) as content:
                raw = {k: content[k] for k in content.files}
        except Exception as exc:
            raise ModelFileError(
                f"cannot read checkpoint {self.path} ({exc}); start a new run"
            ) from None
        if str(raw.get("format", "")) != CHECKPOINT_FORMAT:
            raise ModelFileError(f"{self.path} is not a distgp fit checkpoint; start a new run")
        return {k: json.loads(str(v)) if k.endswith("_json") else v for k, v in raw.items()}

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def config_json(config: Any) -> str:
    """The run's settings as canonical JSON (the output folder excluded)."""
    data = dataclasses.asdict(config)
    data.pop("out", None)
    return json.dumps(data, sort_keys=True)
