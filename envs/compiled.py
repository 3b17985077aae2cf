"""Compile a pure step function of tensors once, for fixed input shapes, and call it cheaply.

:class:`envs.core.TorchVectorEnv` uses this for ``compile=True``: its whole step (transition,
truncation, episode statistics, autoreset, observation) is a pure function of a flat list of
tensors whose shapes, dtypes, devices and layouts the env fixes for its lifetime.

How it compiles. The function is traced once with ``make_fx`` on fake tensors and handed to
inductor (``compile_fx``, the backend behind ``torch.compile``): fused C++ on the CPU, Triton
on CUDA. Tracing runs the Python once with no values to branch on, so any data-dependent Python
control flow fails loudly, as a graph break does under ``torch.compile(fullgraph=True)``. Each
call then goes straight to inductor's compiled code: no dynamo frame evaluation and no guard
checks, which the env makes unnecessary by fixing every input. That entry cost ~100 µs less per
call than ``torch.compile``'s on the 2-core CPU, where a compiled CartPole step at N=4096 takes
~150 µs in all (docs/PERFORMANCE.md). Should ``make_fx``/``compile_fx`` (internal torch
modules) move in a later torch, :func:`compile_flat` falls back to
``torch.compile(fullgraph=True, dynamic=False)`` with a warning.

Code that must trace differently (an opaque op instead of numpy, say) asks :func:`compiling`.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import types
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch

_tracing = False
_FUNCTION_IDS = itertools.count()


def compiling() -> bool:
    """True while a step is being traced for compilation (here or by ``torch.compile``)."""
    return _tracing or torch.compiler.is_compiling()


@contextlib.contextmanager
def _tracing_for_compile() -> Iterator[None]:
    global _tracing
    previous, _tracing = _tracing, True
    try:
        yield
    finally:
        _tracing = previous


def _apart(tensors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``tensors`` with a copy of each that shares memory with an earlier one."""
    seen: set[int] = set()
    out = []
    for tensor in tensors:
        storage = tensor.untyped_storage().data_ptr()
        out.append(tensor.clone() if storage in seen else tensor)
        seen.add(storage)
    return out


class CompiledFlat:
    """A function of a flat tensor list, compiled on its first call for those inputs' layouts.

    Later calls must pass tensors of the same shapes, dtypes and devices (not checked: the
    owner guarantees it); an input with other strides is copied into the traced layout.

    Attributes:
        compile_seconds: how long the first call took (tracing, code generation or a cache
            hit, and one run); ``None`` before it.
        backend: ``"inductor"`` (make_fx + compile_fx) or ``"torch.compile"`` (the fallback).
    """

    def __init__(self, function: Callable[..., list[torch.Tensor]], name: str) -> None:
        self._function = function
        self._name = name
        self._compiled: Callable[..., list[torch.Tensor]] | None = None
        self._strides: list[tuple[int, ...]] = []
        self.compile_seconds: float | None = None
        self.backend: str | None = None

    def __call__(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self._compiled is None:
            started = time.perf_counter()
            # Traced from one tensor passed twice (a state whose fields share one zeros
            # tensor at reset), the graph would read that input for both ever after.
            inputs = _apart(inputs)
            self._compiled = self._compile(inputs)
            self._strides = [tensor.stride() for tensor in inputs]
            outputs = self._compiled(*inputs)
            self.compile_seconds = time.perf_counter() - started
            return list(outputs)
        # The compiled code assumes the traced strides: restride an input that differs (e.g. a
        # state assigned by hand). A tuple comparison per input, ~0.3 µs.
        if [t.stride() for t in inputs] != self._strides:
            inputs = [
                t
                if t.stride() == s
                else torch.empty_strided(t.shape, s, dtype=t.dtype, device=t.device).copy_(t)
                for t, s in zip(inputs, self._strides, strict=True)
            ]
        return list(self._compiled(*inputs))

    def _compile(self, inputs: list[torch.Tensor]) -> Callable[..., list[torch.Tensor]]:
        try:
            from torch._guards import TracingContext, tracing
            from torch._inductor.compile_fx import compile_fx
            from torch._subclasses.fake_tensor import FakeTensorMode
            from torch.fx.experimental.proxy_tensor import make_fx
            from torch.fx.experimental.symbolic_shapes import ShapeEnv
        except ImportError as exc:  # internal modules: moved in some later torch
            return self._torch_compile(exc)
        # Fake tensors (no values: data-dependent control flow raises) with static shapes, in
        # a tracing context with a shape env as dynamo provides: without one inductor skips
        # its FX graph cache, and a warm start recompiled the graph (13 s instead of 4 s).
        # Tensors the function closes over (tables, constants) become graph constants.
        fake_mode = FakeTensorMode(shape_env=ShapeEnv(), allow_non_fake_inputs=True)
        with _tracing_for_compile(), tracing(TracingContext(fake_mode)):
            fake_inputs = [fake_mode.from_tensor(t, static_shapes=True) for t in inputs]
            with fake_mode:
                graph = make_fx(self._function)(*fake_inputs)
            # No size asserts in the generated code (~0.5 µs per tensor per call): __call__
            # checks the input strides itself, and the output sizes follow from them.
            compiled = compile_fx(graph, fake_inputs, config_patches={"size_asserts": False})
        self.backend = "inductor"
        return compiled

    def _torch_compile(self, reason: Exception) -> Callable[..., list[torch.Tensor]]:
        warnings.warn(
            f"{self._name}: inductor's entry points moved ({reason}); compiling with "
            "torch.compile(fullgraph=True), which costs more per call",
            RuntimeWarning,
            stacklevel=4,
        )
        # torch.compile caches graphs per code object, at most 8 (recompile_limit, an error
        # under fullgraph=True): a code object per function keeps each in its own cache.
        code = self._function.__code__.replace(co_name=f"{self._name}_{next(_FUNCTION_IDS)}")
        function = types.FunctionType(
            code,
            self._function.__globals__,
            code.co_name,
            self._function.__defaults__,
            self._function.__closure__,
        )
        self.backend = "torch.compile"
        return torch.compile(function, fullgraph=True, dynamic=False)
