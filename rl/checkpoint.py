"""Safe checkpoints: tensors and plain values only, written atomically, read with
``torch.load(weights_only=True)``.

A crafted pickle is refused (weights-only unpickling allows no code), and a truncated or foreign
file raises :class:`CheckpointError` with one line that says what is wrong.
"""

from __future__ import annotations

import os
import pickle
import re
import secrets
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "rl-sandbox-checkpoint"
FORMAT_VERSION = 1
# Demonstration files (rl play --record-demos; read by agents.bc, whose docstring has the layout).
DEMOS_FORMAT = "rl-sandbox-demos"
DEMOS_FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


class CheckpointDamaged(CheckpointError):
    """A checkpoint whose bytes are damaged (empty, truncated, failing its CRC check), where
    another checkpoint of the run may be sound. ``description`` is the message without its
    ``advice``."""

    def __init__(self, description: str, advice: str = "") -> None:
        super().__init__(f"{description}; {advice}" if advice else description)
        self.description, self.advice = description, advice


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A reader sees either the old file or the complete new one, never a half-written file,
    even if the process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            try:
                torch.save(obj, handle)
            except RuntimeError as exc:
                text = str(exc)
                if "inline_container" not in text and "PytorchStreamWriter" not in text:
                    raise
                # torch's zip writer says a failed write (a full disk) only in C++ terms.
                first = text.strip().splitlines()[0]
                raise OSError(f"cannot write {path} ({first}): is the disk full?") from exc
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def temp_file_beside(path: Path) -> tuple[int, str]:
    """A new file in ``path``'s folder to write and then ``os.replace`` onto ``path``: its fd and
    name. Created as ``open()`` would (mode 0666 less the umask: colleagues read checkpoints as
    they read TensorBoard's events), not private as ``tempfile.mkstemp``'s (0600)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a checkpoint dict (``"model"`` state dict, optimizer, config, env id, ...)."""
    if "model" not in payload:
        raise ValueError("a checkpoint needs a 'model' entry (the policy's state dict)")
    return atomic_save({"format": FORMAT, "format_version": FORMAT_VERSION, **payload}, path)


_ZIP_MAGIC = b"PK\x03\x04"
# torch.save's legacy (non-zip) format is a pickle, and every pickle of protocol 2+ opens so.
_PICKLE_MAGIC = b"\x80"


def read_torch_file(
    path: str | os.PathLike,
    what: str,
    written_by: str,
    map_location: str | torch.device = "cpu",
) -> Any:
    """``torch.load(path, weights_only=True)``, after telling apart the files that
    are not torch files at all (torch's own errors for those are misleading or empty).

    Args:
        what: how messages name the file, e.g. ``"checkpoint runs/x/latest.pt"``.
        written_by: what the file should be, e.g. ``"a .pt file written by `rl train`"``.

    Raises:
        CheckpointError: one line per case: missing, a folder, empty, a zip (such as NumPy's
            .npz) or a pickle that torch did not write, truncated, or refused for holding
            objects other than tensors and plain values (never loaded: they could run code).
    """
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} is a folder; expected {written_by}")
    if not path.is_file():
        raise CheckpointError(f"{what} does not exist; expected {written_by}")
    if path.stat().st_size == 0:
        raise CheckpointDamaged(f"{what} is empty (0 bytes): it was never written fully")
    with path.open("rb") as handle:
        head = handle.read(4)
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                # Every member against its CRC-32: bytes damaged on disk or in a copy would
                # otherwise load as weights that are silently wrong.
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:  # is_zipfile reads the end only
            raise CheckpointDamaged(f"{what} is truncated or corrupt (BadZipFile: {exc})") from None
        if damaged is not None:
            raise CheckpointDamaged(
                f"{what} is corrupt: its part {damaged} fails its CRC check (damaged on disk or "
                "in a copy)",
                "use another checkpoint, e.g. best.pt or a step_*.pt snapshot",
            )
        if not any(name.endswith("data.pkl") for name in names):  # torch.save's zip layout
            if names and all(name.endswith(".npy") for name in names):
                raise CheckpointError(
                    f"{what} is a NumPy .npz archive, not a torch file; expected {written_by}"
                )
            raise CheckpointError(
                f"{what} is a zip archive but not a torch file; expected {written_by}"
            )
    elif head == _ZIP_MAGIC:
        raise CheckpointDamaged(
            f"{what} is truncated: it starts like a torch file but its end is missing (an "
            "interrupted copy or write)"
        )
    elif not head.startswith(_PICKLE_MAGIC):
        raise CheckpointError(f"{what} is not a torch file; expected {written_by}")
    try:
        with warnings.catch_warnings():
            # Said of a foreign pickle (about to be refused or loaded): noise beside our line.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch names the refused class in its message: say which, so the fix is plain.
        found = re.search(r"GLOBAL (\S+) was not an allowed global", str(exc))
        detail = f" (it holds a {found.group(1)})" if found else ""
        hint = (
            "; convert NumPy arrays with torch.from_numpy before saving"
            if found and found.group(1).startswith("numpy")
            else ""
        )
        raise CheckpointError(
            f"{what} was refused: it holds objects other than tensors and plain values, which "
            f"are never loaded (they could run code){detail}{hint}"
        ) from None
    except Exception as exc:  # torch raises many types for damaged files (struct.error, ...)
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
        raise CheckpointDamaged(
            f"{what} is truncated or corrupt ({type(exc).__name__}{': ' if first else ''}{first})"
        ) from None


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely.

    Raises:
        CheckpointError: missing, truncated, unsafe (arbitrary pickle) or foreign files.
    """
    path = Path(path)
    payload = read_torch_file(
        path, f"checkpoint {path}", "a .pt checkpoint written by `rl train`", map_location
    )
    if isinstance(payload, dict) and payload.get("format") == DEMOS_FORMAT:
        raise CheckpointError(
            f"{path} is a demonstrations file (rl play --record-demos), not a checkpoint; "
            f"clone an agent from it with rl supervised bc --demos {path}"
        )
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not an RL Sandbox checkpoint (no '{FORMAT}' marker); "
            "expected a file written by `rl train`"
        )
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload['format_version']}, newer than this "
            f"RL Sandbox understands ({FORMAT_VERSION}); upgrade rl-sandbox"
        )
    return payload
