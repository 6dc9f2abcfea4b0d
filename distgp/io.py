"""Atomic file output: write to a temporary name in the same folder, then rename.

A run that fails or is killed never leaves a half-written result behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from distgp.exceptions import ConfigError

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]


def check_output_dir(path: str | os.PathLike) -> Path:
    """Check that ``path`` is or can become a writable folder, leaving nothing behind.

    Permission bits do not tell (root ignores them; ``/proc`` and read-only mounts refuse anyway),
    so the check tries: a temporary file in an existing folder, or creating the missing folders
    and removing them again.
    """
    if not str(path).strip():  # Path("") is the working folder
        raise ConfigError("the output folder is empty; give a folder path", setting="out")
    out = Path(path)
    if out.exists():
        if not out.is_dir():
            raise ConfigError(
                f"output path {out} exists and is not a folder; choose another", setting="out"
            )
        try:
            with tempfile.TemporaryFile(dir=out):
                pass
        except OSError as exc:
            raise ConfigError(
                f"output folder {out} is not writable ({exc.strerror}); choose another",
                setting="out",
            ) from None
        return out
    missing = [out.absolute()]
    while not missing[-1].parent.exists():
        missing.append(missing[-1].parent)
    try:
        out.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create output folder {out} ({exc.strerror}); choose another",
            setting="out",
        ) from None
    for folder in missing:
        folder.rmdir()
    return out


LOCK_NAME = ".distgp.lock"  # in a run's output folder while the run writes into it


class FolderLock:
    """A held lock on a run's output folder (:func:`lock_output_dir`); :meth:`release` removes
    the lock file, and the folders that locking created if nothing else was written into
    them."""

    def __init__(self, path: Path, fd: int | None, created: list[Path]) -> None:
        self.path = path
        self._fd = fd
        self._created = created

    def release(self) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)  # while held: a run waiting to lock it sees it go
            os.close(self._fd)
            self._fd = None
        for folder in self._created:  # the deepest first
            with contextlib.suppress(OSError):  # not empty: the run wrote into it
                folder.rmdir()
        self._created = []


def lock_output_dir(out: Path, flag: str = "--out") -> FolderLock | None:
    """Lock ``out`` (``flock`` on ``out/.distgp.lock``, created with the folder if missing) for
    one run: a second run into it is refused (``flag`` names how it was given). The operating
    system releases the lock when the process ends, however it ends. ``None`` without
    ``fcntl`` (Windows); a file system without locks leaves the run unlocked."""
    if fcntl is None:
        return None
    created = [out.absolute()]
    while not created[-1].exists():
        created.append(created[-1].parent)
    created.pop()  # it exists
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError:  # no lock file to be had: the run goes unlocked
            return FolderLock(path, None, created)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            wait = "choose another --out, or wait" if flag == "--out" else "wait"
            raise ConfigError(
                f"{flag} {out}: another distgp run is writing into this folder; {wait} for it "
                "to end"
            ) from None
        except OSError:  # a file system without locks
            os.close(fd)
            return FolderLock(path, None, created)
        with contextlib.suppress(FileNotFoundError):
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return FolderLock(path, fd, created)
        os.close(fd)  # its run ended and removed the file after this one opened it: lock anew


def check_output_file(path: str | os.PathLike, flag: str) -> Path:
    """Check, before any work, that ``path`` (given by ``flag``) can be written: not a folder,
    in an existing folder that takes a new file (tried, as in :func:`check_output_dir`), and
    readable if it exists (a file may be updated in place)."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{flag} {target} is a folder; give a file name")
    if target.parent.exists() and not target.parent.is_dir():
        raise ConfigError(
            f"{flag} {target}: {target.parent} is a file, not a folder; choose another path"
        )
    if not target.parent.is_dir():
        raise ConfigError(f"{flag} {target}: folder {target.parent} does not exist; create it")
    try:
        with tempfile.TemporaryFile(dir=target.parent):
            pass
        if target.exists():
            target.open("rb").close()
    except OSError as exc:
        raise ConfigError(f"{flag} {target} cannot be written ({exc.strerror})") from None
    return target


def check_output_names(out: Path, names: Iterable[str], command: str) -> None:
    """Refuse, before any work, an output ``--out``/NAME that exists as a folder (the run could
    write everything but that file)."""
    folders = [name for name in sorted(names) if (out / name).is_dir()]
    if folders:
        raise ConfigError(
            f"--out {out} holds a folder named {folders[0]}, where distgp {command} writes a "
            "file; move or rename that folder, or choose another --out",
            setting="out",
        )


# files that only one command writes: they show whose outputs a folder holds
COMMAND_MARKERS: dict[str, tuple[str, ...]] = {
    "fit": ("model.npz",),
    "optimize": ("result.json", "regret.png"),
    "predict": ("predictions.csv", "forecast.png"),
}


def check_own_folder(out: Path, command: str) -> None:
    """Refuse, before any work, an ``--out`` holding another command's outputs (for ``predict``
    also a fit's or optimisation's checkpoint): the folder would mix two runs' files."""
    for other, names in COMMAND_MARKERS.items():
        found = next((n for n in names if (out / n).exists()), None) if other != command else None
        if found is not None:
            raise ConfigError(
                f"--out {out} holds the outputs of distgp {other} ({found}), which distgp "
                f"{command} would mix with its own; choose another folder",
                setting="out",
            )
    if command == "predict" and (out / "checkpoint.npz").exists():
        raise ConfigError(
            f"--out {out} holds an unfinished distgp fit or optimize run (checkpoint.npz), "
            "which distgp predict would mix with its own outputs; choose another folder",
            setting="out",
        )


STAGE_PREFIX = ".distgp-partial-"
ABANDONED_STAGE_SECONDS = 3600.0  # a staging folder lives while outputs are written: seconds


@contextlib.contextmanager
def staged_outputs(folder: Path) -> Iterator[Path]:
    """A hidden temporary folder in ``folder`` to write a run's outputs into before
    :func:`publish_outputs` moves them into place; removed on leaving, with whatever it still
    holds (everything, after a failure). Staging folders untouched for
    :data:`ABANDONED_STAGE_SECONDS` (left by a run killed outright, SIGKILL, on any host that
    shares ``folder``) are removed first."""
    _remove_abandoned_stages(folder)
    stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=folder))
    try:
        yield stage
    except OSError as exc:  # named as the output it was for: the staging folder goes
        if exc.filename and Path(exc.filename).parent == stage:
            exc.filename = str(folder / Path(exc.filename).name)
        raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _remove_abandoned_stages(folder: Path) -> None:
    """Remove the staging folders in ``folder`` last modified over
    :data:`ABANDONED_STAGE_SECONDS` ago (a live run writes into its own within seconds)."""
    now = time.time()
    for stage in folder.glob(f"{STAGE_PREFIX}*"):
        try:
            abandoned = now - stage.stat().st_mtime > ABANDONED_STAGE_SECONDS
        except OSError:  # removed meanwhile
            continue
        if abandoned:
            shutil.rmtree(stage, ignore_errors=True)


def publish_outputs(stage: Path, folder: Path, names: list[str], stale: Iterable[str] = ()) -> None:
    """Move the files ``names`` from ``stage`` into ``folder``; the last of them (a fit's
    ``metrics.json``, which marks a complete set) goes last, its earlier version removed first,
    and after the rest the earlier outputs ``stale`` that the new ones do not replace."""
    (folder / names[-1]).unlink(missing_ok=True)
    for name in names[:-1]:
        os.replace(stage / name, folder / name)
    for name in stale:
        (folder / name).unlink(missing_ok=True)
    os.replace(stage / names[-1], folder / names[-1])


def ensure_output_dir(path: str | os.PathLike) -> Path:
    """Create ``path`` if needed and check that it is a writable folder."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"output path {out} exists and is not a folder; choose another", setting="out"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create output folder {out} ({exc.strerror}); choose another",
            setting="out",
        ) from None
    return check_output_dir(out)


TEMPORARY_SUFFIX = ".tmp"  # of atomic_write's files while they are written


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(handle)`` on a temporary file next to ``path``, then rename it to ``path``.

    Raises:
        FileNotFoundError: the folder of ``path`` does not exist.
        IsADirectoryError: ``path`` is a folder.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {target}: folder {target.parent} does not exist; create it first"
        )
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a folder; give a file name")
    fd, tmp = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=TEMPORARY_SUFFIX, dir=target.parent
    )
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not exc.filename:  # matplotlib's on a full disk: the file
            exc.filename = str(target)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """``data`` as JSON, atomically; non-finite numbers (an infinite NLPD) become ``null``, as
    JSON has no NaN or infinity."""
    text = json.dumps(_finite(data), indent=2, sort_keys=False, default=json_default) + "\n"
    return atomic_write(path, lambda h: h.write(text.encode()))


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float (in dicts, lists, tuples) replaced by ``None``."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        return _finite(value.tolist())
    return value


def write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda h: h.write(text.encode()))


def temporary_pattern(name: str) -> str:
    """Glob of the temporary files :func:`atomic_write` leaves beside ``name`` (a file name or
    a glob of them) when a write is interrupted."""
    return f".{name}.*{TEMPORARY_SUFFIX}"


def remove_written(path: Path) -> None:
    """Delete a file :func:`atomic_write` wrote and the temporary files interrupted writes of it
    left beside it."""
    for stale in path.parent.glob(temporary_pattern(path.name)):
        stale.unlink(missing_ok=True)
    path.unlink(missing_ok=True)


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    return atomic_write(path, lambda h: np.savez(h, **arrays))


def json_default(value: Any) -> Any:
    """``json.dumps``'s ``default``: numpy scalars and arrays as Python numbers and lists, paths
    as strings."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} to JSON")


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, never unpickling anything.

    Raises:
        ValueError: with a one-line reason when the file is not a readable ``.npz`` archive.
    """
    if not zipfile.is_zipfile(path):
        raise ValueError("not an .npz archive: corrupt, truncated or another format")
    try:
        with np.load(path, allow_pickle=False) as content:
            return {k: content[k] for k in content.files}
    except ValueError as exc:
        if "pickle" in str(exc):
            raise ValueError(
                "it holds Python objects, which distgp never writes or loads"
            ) from None
        raise ValueError(f"unreadable array ({exc})") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise ValueError(f"unreadable archive ({type(exc).__name__}: {exc})") from None
