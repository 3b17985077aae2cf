"""Seeding and RNG state capture, so runs repeat and resumed runs continue exactly."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import numpy as np
import torch

from rl.config import MAX_INT, require_int


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA).

    Args:
        seed: any integer >= 0.
        deterministic: also ask torch for deterministic kernels (slower on CUDA).
    """
    require_int("seed", seed, 0)
    if seed > MAX_INT:
        raise ValueError(f"seed must be below 2**63, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def derive_seed(seed: int, stream: str) -> int:
    """The seed, in ``[0, 2**63)`` as :func:`seed_everything` takes, of the random stream named
    ``stream`` in a run seeded ``seed``.

    ``torch.manual_seed(s)`` and ``torch.Generator().manual_seed(s)`` start the same raw stream
    (the same Mersenne Twister on the CPU, Philox at offset 0 on CUDA), so an env generator and
    the global RNG seeded with one integer draw the same random words: start states would be
    tied to the initial weights or to the first actions' noise. A stream of its own (``"env"``,
    ``"dqn"``, ...) takes ``blake2b("<stream>/<seed>")`` instead: repeatable on every platform,
    and unrelated to ``seed`` and to every other stream's seed.
    """
    return seed_of_bytes(f"{stream}/{seed}".encode())


def seed_of_bytes(data: bytes) -> int:
    """A seed in ``[0, 2**63)`` from ``data`` (blake2b): the same bytes, the same seed."""
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") & MAX_INT


def restore_generator(generator: torch.Generator, state: torch.Tensor) -> None:
    """``generator.set_state(state)``; for another device type's state, a fresh seed instead.

    A run resumed on another device (``--set device=cpu`` of a CUDA run, or the reverse) saved
    a state that does not fit: a CPU generator's Mersenne Twister state is 5,056 bytes, a CUDA
    generator's Philox state 16. Such a resume cannot continue the stream, so the generator is
    seeded from the saved state's bytes: the same checkpoint always continues the same way.
    """
    state = state.cpu()
    if state.numel() == generator.get_state().numel():
        generator.set_state(state)
        return
    generator.manual_seed(seed_of_bytes(state.numpy().tobytes()))


def rng_state() -> dict[str, Any]:
    """All global RNG states as tensors and plain values (safe for ``weights_only`` loading)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": _python_state_to_plain(random.getstate()),
        "numpy": {
            "name": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(int(x) for x in internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["name"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        # GPUs the run did not see (all, for a checkpoint saved without CUDA) are seeded from
        # the CPU state: not left replaying the run's first draws. One state per GPU it saw; a
        # machine with fewer GPUs restores those it has.
        saved = state.get("cuda", [])
        if len(saved) < torch.cuda.device_count():
            torch.cuda.manual_seed_all(seed_of_bytes(state["torch"].numpy().tobytes()))
        torch.cuda.set_rng_state_all(saved[: torch.cuda.device_count()])


def _python_state_to_plain(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]
