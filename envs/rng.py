"""Counter-based random bits: the start states of autoreset, identical eager or compiled.

A row's fresh start state must be a pure function of numbers the step already has, so that the
eager CPU step (which hashes only the finished rows) and the compiled step (which hashes every
row, then keeps the finished rows' with ``torch.where``) agree bit for bit, on any device. The
bits are ``mix32`` of the row, salted per step and lane from a key the env draws from its
``torch.Generator`` at ``reset`` (:meth:`envs.core.TorchVectorEnv.reset`); a generator cannot
be read inside a compiled graph, and drawing N fresh states eagerly every step cost half a
CartPole step on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

# 32-bit unsigned arithmetic, written once for three holders that give identical bits: int32
# tensors (two's complement: multiplication wraps on every backend, and `& 0xFFFF` after `>> 16`
# undoes the sign extension of an arithmetic shift), numpy uint32 arrays (wrap natively) and
# Python ints (masked explicitly). int32 rather than int64 tensors: AVX2 has no 64-bit multiply,
# and inductor's emulated one made the hash 3x slower.
_MASK32 = 0xFFFFFFFF
_MIX32 = 0x045D9F3B  # Thomas Mueller's integer hash: https://stackoverflow.com/a/12996028
_GOLDEN32 = 0x9E3779B9  # 2**32 / golden ratio: spreads consecutive indices over 32 bits


def int32_bits(value: int) -> int:
    """The int32 with the low 32 bits of a Python int (two's complement)."""
    value &= _MASK32
    return value - (1 << 32) if value >= 1 << 31 else value


def _mix32_int(x: int) -> int:
    """:func:`mix32` of a Python int in ``[0, 2**32)``."""
    x = (((x >> 16) ^ x) * _MIX32) & _MASK32
    x = (((x >> 16) ^ x) * _MIX32) & _MASK32
    return (x >> 16) ^ x


def mix32(x: Any) -> Any:
    """A 32-bit integer hash (bijective, full avalanche) of an int32 tensor or uint32 array."""
    x = (((x >> 16) & 0xFFFF) ^ x) * _MIX32
    x = (((x >> 16) & 0xFFFF) ^ x) * _MIX32
    return ((x >> 16) & 0xFFFF) ^ x


def step_salt(key: int, step: int) -> int:
    """The autoreset hash's salt for one step, as an int32 value (host arithmetic, no device op).

    Args:
        key: the env's hash key in ``[0, 2**32)``, drawn from its generator at ``reset``.
        step: steps since that ``reset``.
    """
    return int32_bits(_mix32_int(_mix32_int(step & _MASK32) ^ key))


def step_salt_tensor(key: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
    """:func:`step_salt` of 0-dim int32 tensors (inside a compiled graph: no host sync)."""
    return mix32(mix32(step) ^ key)


def start_bits(salt: int | torch.Tensor, rows: torch.Tensor, lanes: int) -> torch.Tensor:
    """``(lanes, n)`` int32 random bits for ``rows`` (``(n,)`` ints) at one step.

    ``bits[j, i] = mix32((rows[i] ^ lane_salt[j]) * _GOLDEN32)`` in uint32 arithmetic, with
    each lane's own salt (:func:`lane_salts`). With one salt for all lanes (the index ``rows *
    lanes + lane`` xor the salt, as before), two steps whose salts differed by a multiple of
    ``lanes`` below ``N * lanes`` gave whole start states that were other rows' start states
    at the other step: a pair of steps out of every ``2**32 / N`` repeated the start of every
    row that reset at both. Now a repeated start needs every lane's salts to differ by the same
    amount, about ``2**-32`` per extra lane.
    """
    return salted_bits(lane_salts(salt, lane_codes(lanes, rows.device)), rows)


def lane_codes(lanes: int, device: torch.device | str) -> torch.Tensor:
    """``(lanes, 1)`` int32 ``lane * _GOLDEN32``, what :func:`lane_salts` mixes each step's salt
    into: an env makes it once, so that neither its eager CUDA step nor its compiled graph
    multiplies an index by the constant (the product inductor folds and Triton refuses)."""
    lane = torch.arange(lanes, dtype=torch.int32, device=device).unsqueeze(1)
    return lane * int32_bits(_GOLDEN32)


def lane_salts(salt: int | torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """``(lanes, 1)`` int32 salts, one per lane, hashed from one step's salt and the lanes'
    :func:`lane_codes`."""
    return mix32(codes ^ salt)


def salted_bits(lane_salt: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """:func:`start_bits` from the lanes' salts (a compiled step computes them once, not per row).

    The salt comes before the constant multiply on purpose: compiled for CUDA, ``rows`` is an
    index that inductor folds into the constant (``rows * _GOLDEN32``), a product Triton
    refuses as out of int32 range; after the xor it cannot.
    """
    return mix32((rows.to(torch.int32).unsqueeze(0) ^ lane_salt) * int32_bits(_GOLDEN32))


def start_bits_numpy(salt: int, rows: np.ndarray, lanes: int) -> np.ndarray:
    """:func:`start_bits` in numpy (int32 result): ~10x cheaper than torch on a few rows."""
    lane = np.arange(lanes, dtype=np.uint32)[:, None]
    lane_salt = mix32((lane * np.uint32(_GOLDEN32)) ^ np.uint32(salt & _MASK32))
    salted = (rows.astype(np.uint32)[None, :] ^ lane_salt) * np.uint32(_GOLDEN32)
    return mix32(salted).view(np.int32)


def random_bits(
    generator: torch.Generator, lanes: int, n: int, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(lanes, n)`` int32 random bits drawn from ``generator`` (for ``reset``)."""
    return torch.randint(
        -(2**31), 2**31, (lanes, n), generator=generator, device=device, dtype=torch.int32
    )


def uniform_from_bits(bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Uniform floats in [0, 1) from int32 bits: 24 bits for float32, all 32 for float64.

    Both conversions are exact (integer to float, then a power of two), so any backend agrees.
    """
    if dtype == torch.float64:
        return (bits.to(torch.int64) & _MASK32).to(torch.float64) * 2.0**-32
    return ((bits >> 8) & 0xFFFFFF).to(dtype) * 2.0**-24


def integers_from_bits(bits: torch.Tensor, high: int | torch.Tensor) -> torch.Tensor:
    """int64 integers in ``[0, high)`` from int32 bits (Lemire's multiply-shift; ``high < 2**31``)."""
    return ((bits.to(torch.int64) & _MASK32) * high) >> 32
