"""Device selection and CPU thread settings."""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")
F = TypeVar("F", bound=Callable[..., Any])


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn a user's device string into a ``torch.device``.

    Args:
        device: ``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:K"``,
            or a ``torch.device``.

    Raises:
        ValueError: for an unknown device string, or CUDA asked for on a machine without it.
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}: expected one of 'auto', 'cpu', 'cuda' or 'cuda:K'"
        ) from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {str(device)!r} was asked for but CUDA is not available on this machine; "
                "use device 'cpu' or 'auto' (--device cpu on the command line)"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {str(device)!r} does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
        if resolved.index is None:
            # "cuda" means the current device: name it, as the tensors made there say "cuda:0",
            # and torch.device("cuda") != torch.device("cuda:0").
            resolved = torch.device("cuda", torch.cuda.current_device())
    elif resolved.type != "cpu":
        raise ValueError(
            f"unsupported device {str(device)!r}: expected one of 'auto', 'cpu', 'cuda' or 'cuda:K'"
        )
    return resolved


THREADS_PER_CORE = 4
"""The most CPU threads :func:`resolve_threads` accepts per core of the machine."""


def configure_threads(device: torch.device, num_threads: int | None = None) -> int:
    """Set the CPU thread count for training (:func:`resolve_threads`) and return it."""
    num_threads = resolve_threads(device, num_threads)
    torch.set_num_threads(num_threads)
    return num_threads


def restores_thread_count(function: F) -> F:
    """Decorate a training entry point that calls :func:`configure_threads`: the process's
    torch thread count is put back when it returns, so a script that trains and then works
    with torch keeps its own count (one thread suits the policies, not everything after)."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        before = torch.get_num_threads()
        try:
            return function(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper  # type: ignore[return-value]


def resolve_threads(device: torch.device, num_threads: int | None = None) -> int:
    """The CPU thread count training uses: ``num_threads``, else ``RL_NUM_THREADS``, else 1 on
    the CPU (up to 4 beside a GPU).

    Small policy networks (64-unit MLPs on batches of a few thousand rows) run fastest on one
    thread: intra-op parallelism costs more in synchronisation than it saves at these sizes
    (measured in benchmarks/solve.py on a 2-core CPU). The count changes the order of CPU
    sums, so a run repeats bit for bit only with the same count.
    """
    source = "num_threads"
    if num_threads is None:
        env_value = os.environ.get("RL_NUM_THREADS")
        if env_value:
            source = "RL_NUM_THREADS"
            try:
                num_threads = int(env_value)
            except ValueError as exc:
                raise ValueError(f"RL_NUM_THREADS must be an integer, got {env_value!r}") from exc
    cpus = os.cpu_count() or 1
    if num_threads is None:
        num_threads = 1 if device.type == "cpu" else max(1, min(4, cpus))
    # Far more threads than cores only slows torch down, and tens of thousands crash it
    # (libgomp "Thread creation failed", or a segfault) instead of raising.
    limit = THREADS_PER_CORE * cpus
    if not 1 <= num_threads <= limit:
        raise ValueError(
            f"{source} must be between 1 and {limit} ({THREADS_PER_CORE} per CPU core; this "
            f"machine has {cpus}), got {num_threads}"
        )
    return num_threads


@contextmanager
def host_syncs_recorded() -> Iterator[list[str]]:
    """The CUDA host syncs inside the block (``item()``, ``bool(tensor)``, ``nonzero``, a copy to
    the host...), as torch's sync debug mode reports them; the list fills when the block ends.

    Code that is about to be captured in a CUDA graph runs once inside this first: a sync cannot
    be captured, and a failed capture leaves torch's CUDA random generator unusable for the
    rest of the process.
    """
    mode = torch.cuda.get_sync_debug_mode()
    syncs: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield syncs
        finally:
            torch.cuda.set_sync_debug_mode(mode)
    # Only the syncs: setting the mode also warns, once per process, that it is a prototype.
    syncs.extend(str(w.message) for w in caught if "called a synchronizing" in str(w.message))
