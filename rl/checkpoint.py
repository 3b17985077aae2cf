"""Safe checkpoints: tensors and plain values only, written atomically, read with
``torch.load(weights_only=True)``.

A crafted pickle is refused (weights-only unpickling allows no code), and a truncated or foreign
file raises :class:`CheckpointError` with one line that says what is wrong.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "rl-sandbox-checkpoint"
FORMAT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line meant for the user."""


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then ``os.replace``.

    A reader sees either the old file or the complete new one, never a half-written file,
    even if the process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


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


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, safely.

    Raises:
        CheckpointError: missing, truncated, unsafe (arbitrary pickle) or foreign files.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, expected a checkpoint file (.pt)")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes): it was never written fully")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds objects other than tensors and plain "
            f"values, which are never loaded (they could run code) ({first})"
        ) from None
    except Exception as exc:  # torch raises many types for foreign bytes (even KeyError).
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        first = f"{type(exc).__name__}: {first}"[:200]
        raise CheckpointError(
            f"checkpoint {path} is truncated or not a torch checkpoint ({first})"
        ) from None
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
