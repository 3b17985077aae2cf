"""The shared machinery behind every sandbox environment.

Each environment is written once, as pure batched torch functions over a state whose every
tensor has the batch dimension first (``(N, ...)``). Two thin classes expose that core:

* :class:`TorchVectorEnv` — a ``gymnasium.vector.VectorEnv`` with tensors on ``device`` in and
  out, SAME_STEP autoreset, episode statistics kept as tensors, and no host sync inside
  ``step`` (unless action *value* checks are on for a CUDA env: see ``validate_actions``).
* :class:`TorchSingleEnv` — a numpy ``gymnasium.Env`` over the same core with N=1 on the CPU in
  float64, for ``gymnasium.make``, Stable-Baselines3, ``rl play`` and ``rl watch``.

A subclass of :class:`TorchVectorEnv` sets ``env_name`` and ``start_lanes`` and provides four
pure hooks (pure: no side effects, so that the whole step can be compiled as one graph):

* ``_start_states(bits)`` — start states from ``(start_lanes, n)`` random 32-bit integers
  (:func:`uniform_from_bits`, :func:`integers_from_bits` turn them into draws);
* ``_transition(state, actions)`` — ``(next_state, reward, terminated, info)`` for validated
  actions; ``info`` is a dict of ``(N,)`` tensors describing the transition (events);
* ``_observe(state)`` — the ``(N, *obs_shape)`` observation;
* ``_render_state(state_row)`` — an ``(H, W, 3)`` uint8 frame of one row (optional);

and optionally ``_episode_extras(next_state)``: per-episode statistics beyond return and length
(the dog's successes and attempts), read where rows finish.

State is a tensor or a ``NamedTuple`` of tensors (see :func:`select_rows`).

CUDA graphs. Pure hooks also let PPO and ``evaluate`` replay the steps from a CUDA graph on
CUDA (:meth:`TorchVectorEnv.carried`): keep everything that changes from step to step in
``state``, and read no values on the host (``.item()``, ``bool(tensor)``, ``.tolist()``). An
env that does either still works: the first eager steps detect it, and training and
evaluation then stay eager with a warning.

Random start states. ``reset()`` draws the bits from the env's ``torch.Generator``. Autoreset
inside ``step`` draws them from a counter-based hash of (key, step count, row, lane), the key
drawn from the generator at ``reset()``: a row's fresh start state is then a pure function of
those numbers, the same whether only the finished rows are hashed (eager CPU) or every row is
and ``torch.where`` keeps the finished ones (CUDA, and the compiled step on any device). So the
eager and compiled steps give identical trajectories, and the autoreset stream is the same on
every device. A ``torch.Generator`` cannot be read inside a compiled graph without breaking it,
and drawing N fresh states eagerly every step cost half a step on the CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from envs.compiled import CompiledFlat, compiling
from envs.rendering import Window
from envs.rng import (
    int32_bits,
    lane_codes,
    lane_salts,
    random_bits,
    salted_bits,
    start_bits_numpy,
    step_salt,
    step_salt_tensor,
)
from rl.config import is_int
from rl.device import resolve_device
from rl.seeding import derive_seed, restore_generator

State = Any  # torch.Tensor | NamedTuple of torch.Tensor, batch dimension first.

_TORCH_TO_NUMPY = {torch.float32: np.float32, torch.float64: np.float64}

# compile="auto" compiles the step on CUDA, and on the CPU from this many rows unless an env
# says otherwise (its auto_compile_min_envs_cpu): measured in docs/PERFORMANCE.md (compiled
# CartPole and DogTraining steps beat eager from N = 64 on the 2-core CPU; the floor keeps
# small envs from paying a 4-15 s compile).
AUTO_COMPILE_MIN_ENVS_CPU = 1024

# Opaque ops for eager kernels inside compiled CPU graphs (see sin_cos). Defined with the
# low-level Library API: a custom_op adds an autograd wrapper that cost ~15 µs more per call.
_LIBRARY = torch.library.Library("sandbox", "DEF")
_LIBRARY.define("sin_cos(Tensor x) -> (Tensor, Tensor)")


def _sin_cos_kernel(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return _eager_sin_cos(x)


_LIBRARY.impl("sin_cos", _sin_cos_kernel, "CPU")


@torch.library.register_fake("sandbox::sin_cos")
def _sin_cos_fake(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.empty_like(x), torch.empty_like(x)


def _mask_u8(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A bool mask as uint8 0/1 through ``dtype`` (see ``TorchVectorEnv._whole_step``)."""
    return mask.to(dtype).to(torch.uint8)


def select_rows(mask: torch.Tensor, if_true: State, if_false: State) -> State:
    """Row-wise ``torch.where`` over a state (a tensor or a NamedTuple of tensors).

    Args:
        mask: ``(N,)`` bool.
        if_true, if_false: states of the same structure, each tensor ``(N, ...)``.
    """
    if isinstance(if_true, torch.Tensor):
        shaped = mask.reshape(mask.shape + (1,) * (if_true.dim() - 1))
        return torch.where(shaped, if_true, if_false)
    if isinstance(if_true, tuple) and hasattr(if_true, "_fields"):
        return type(if_true)(
            *(select_rows(mask, a, b) for a, b in zip(if_true, if_false, strict=True))
        )
    raise TypeError(f"state must be a tensor or a NamedTuple of tensors, got {type(if_true)}")


def put_rows(state: State, rows: torch.Tensor, values: State) -> State:
    """A copy of ``state`` with rows ``rows`` replaced by ``values`` (out of place).

    Args:
        state: a tensor or NamedTuple of tensors, each ``(N, ...)``.
        rows: ``(K,)`` int64 row indices.
        values: the same structure, each tensor ``(K, ...)``.
    """
    if isinstance(state, torch.Tensor):
        # Not state.index_put(...): out of place it is ~3x slower on transposed layouts.
        return state.clone().index_put_((rows,), values)
    return type(state)(*(put_rows(a, rows, b) for a, b in zip(state, values, strict=True)))


def index_rows(state: State, index: int | slice | torch.Tensor) -> State:
    """``state[index]`` for a tensor or every field of a NamedTuple state."""
    if isinstance(state, torch.Tensor):
        return state[index]
    return type(state)(*(field[index] for field in state))


def sin_cos(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sin(x), cos(x))``, bit-identical to numpy's in float64 on the CPU.

    torch's vectorised CPU kernels (SLEEF, 1-ulp) differ from the libm results numpy gives in
    about 0.2% of float64 calls (measured on x86-64 AVX2, torch 2.13). Unstable dynamics such as
    the cart-pole grow one ulp into a different trajectory within a few hundred steps, so float64
    on the CPU, the configuration checked against Gymnasium's numpy envs, borrows numpy's
    functions (zero-copy views, no device sync). Other dtypes and devices keep torch's kernels.

    Inside a compiled CPU graph the same functions run as one opaque op: inductor's own
    ``sin``/``cos`` (SLEEF) differ from torch's eager kernels in ~1 % of float32 calls, and the
    compiled step must give the eager step's trajectories exactly. Compiled CUDA graphs keep
    the fused ``sin``/``cos`` (see docs/PERFORMANCE.md).
    """
    if x.device.type == "cpu" and compiling():
        return torch.ops.sandbox.sin_cos(x)
    return _eager_sin_cos(x)


def _eager_sin_cos(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if x.dtype == torch.float64 and x.device.type == "cpu" and not x.requires_grad:
        array = x.numpy()
        return torch.from_numpy(np.sin(array)), torch.from_numpy(np.cos(array))
    return torch.sin(x), torch.cos(x)


def check_num_envs(num_envs: Any, env_name: str) -> int:
    """``num_envs`` as an int >= 1, or a ValueError that says so."""
    if not is_int(num_envs, 1, numpy=True):
        raise ValueError(f"{env_name}: num_envs must be an integer >= 1, got {num_envs!r}")
    return int(num_envs)


def check_dtype(dtype: Any, env_name: str) -> torch.dtype:
    if dtype not in _TORCH_TO_NUMPY:
        raise ValueError(f"{env_name}: dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def check_flag(value: Any, name: str, env_name: str) -> bool:
    """``value`` as a bool, or a ValueError: ``"False"`` or 2 is not a yes/no."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{env_name}: {name} must be True or False, got {value!r}")
    return bool(value)


def check_seed(seed: Any, env_name: str) -> int:
    """A reset seed: one integer in ``[0, 2**64)``, or a ValueError saying what is expected."""
    if isinstance(seed, (Sequence, np.ndarray)) and not isinstance(seed, str):
        raise ValueError(
            f"{env_name}: seed must be one integer, got {type(seed).__name__} {seed!r}: the rows "
            "share one generator, so a list of per-row seeds is not supported (each row still "
            "draws its own stream from the one seed)"
        )
    if not is_int(seed, 0, numpy=True) or seed >= 2**64:
        raise ValueError(f"{env_name}: seed must be an integer in [0, 2**64), got {seed!r}")
    return int(seed)


def check_no_options(options: dict[str, Any] | None, env_name: str) -> None:
    """Reset options are not supported: a ValueError rather than silently ignoring them."""
    if options:
        raise ValueError(
            f"{env_name}: reset options are not supported, got {options!r}: every episode "
            "starts from the env's own start distribution (see its Version History)"
        )


def describe_space(space: spaces.Space) -> str:
    if isinstance(space, spaces.Discrete):
        return f"Discrete({space.n}): an integer in [{space.start}, {space.start + space.n - 1}]"
    if isinstance(space, spaces.Box):
        low, high = np.unique(space.low), np.unique(space.high)
        bounds = f"[{low[0]}, {high[0]}]" if low.size == 1 and high.size == 1 else "the Box bounds"
        return f"Box(shape={space.shape}, dtype={space.dtype}): finite floats in {bounds}"
    return repr(space)


class _LazyText:
    """A string computed when formatted, for error-message parts that are costly to build."""

    def __init__(self, build: Callable[[], str]) -> None:
        self._build = build

    def __str__(self) -> str:
        return self._build()

    def __format__(self, spec: str) -> str:
        return format(self._build(), spec)


class TorchVectorEnv(VectorEnv):
    """Base class for the sandbox's batched torch environments (see the module docstring).

    Subclasses set ``env_name`` and ``start_lanes`` (class variables), set
    ``single_observation_space`` and ``single_action_space`` in ``__init__`` *before* calling
    :meth:`_setup`, and implement the hooks.

    Autoreset is SAME_STEP: rows that finish are reset inside ``step``; the observation they ended
    on is in ``info["final_obs"]`` (a full ``(N, *obs_shape)`` tensor: the observation each row
    ended on where ``info["_final_obs"]``, its next observation elsewhere, so it is every row's
    next state), and the finished episodes' return and length in
    ``info["episode"]["r"]``/``["l"]`` (valid where ``info["_episode"]``). ``terminated`` and
    ``truncated`` are returned separately, never merged.

    ``compile`` (``False``, ``True`` or ``"auto"``) runs the whole step (transition, truncation,
    episode statistics, autoreset, observation) as one ``torch.compile(fullgraph=True)`` graph,
    compiled on the first ``step``; it gives the eager step's trajectories exactly on the CPU.
    ``"auto"`` compiles where it measured faster: on CUDA, and on the CPU from
    ``auto_compile_min_envs_cpu`` rows (never where that is ``None``); if compiling fails there
    it warns and stays eager.
    """

    auto_compile_min_envs_cpu: ClassVar[int | None] = AUTO_COMPILE_MIN_ENVS_CPU
    """The fewest rows from which ``compile="auto"`` compiles on the CPU (``None``: never)."""

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        # Read by rl.vector: tensors in and out, no numpy adapter needed.
        "backend": "torch",
        "render_modes": ["rgb_array"],
        "render_fps": 50,
    }
    env_name: ClassVar[str] = "sandbox env"
    start_lanes: ClassVar[int] = 1
    """How many random 32-bit values one start state takes (the first dim of ``bits``)."""

    # Set by subclasses before _setup().
    single_observation_space: spaces.Space
    single_action_space: spaces.Space

    def _setup(
        self,
        num_envs: int,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        validate_actions: bool = True,
        compile: bool | str = False,
    ) -> None:
        self.num_envs = check_num_envs(num_envs, self.env_name)
        if self.num_envs >= 2**31:  # the autoreset hash indexes rows in int32
            raise ValueError(
                f"{self.env_name}: num_envs must be at most {2**31 - 1:,} (the autoreset hash "
                f"numbers rows in 32-bit integers), got {self.num_envs:,}"
            )
        try:
            self.device = resolve_device(device)
        except ValueError as exc:
            raise ValueError(f"{self.env_name}: {exc}") from None
        self.dtype = check_dtype(dtype, self.env_name)
        self._lane_codes = lane_codes(self.start_lanes, self.device)  # the autoreset hash's
        if max_episode_steps is not None and not is_int(max_episode_steps, 1, numpy=True):
            raise ValueError(
                f"{self.env_name}: max_episode_steps must be an integer >= 1 or None, "
                f"got {max_episode_steps!r}"
            )
        self.max_episode_steps = None if max_episode_steps is None else int(max_episode_steps)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"{self.env_name}: render_mode must be one of {self.metadata['render_modes']} "
                f"or None, got {render_mode!r}"
            )
        # `is` for the bools (1 is not True); == for "auto", which may come from JSON or a CLI.
        if not (
            compile is True or compile is False or (isinstance(compile, str) and compile == "auto")
        ):
            raise ValueError(
                f'{self.env_name}: compile must be False, True or "auto", got {compile!r}'
            )
        self.render_mode = render_mode
        self.validate_actions = check_flag(validate_actions, "validate_actions", self.env_name)
        self.compile_mode: bool | str = compile
        self.compiled = compile is True or (
            compile == "auto"
            and (
                self.device.type == "cuda"
                or (
                    self.auto_compile_min_envs_cpu is not None
                    and self.num_envs >= self.auto_compile_min_envs_cpu
                )
            )
        )
        self.compile_seconds: float | None = None
        """Seconds the first compiled step took (tracing, code generation or a cache hit)."""
        self.capturable = False
        """Step with nothing from the host baked in, as CUDA graph capture needs: the eager CUDA
        step then hashes its autoreset salt from the step count on the device (a dozen more
        small kernels) rather than from a host copy that a replayed graph would not advance.
        See :meth:`carried`."""
        self._compiled_step: CompiledFlat | None = None
        self._state_type: type | None = None  # None: a tensor state; else its NamedTuple
        self._extras_keys: list[str] = []
        self._info_keys: list[str] = []
        self._mask_outputs: list[int] = []
        self._observation_space: spaces.Space | None = None  # built on first use
        self._action_space: spaces.Space | None = None
        self.generator = torch.Generator(device=self.device)
        self.generator.seed()
        self._needs_reset = True  # until reset() or load_state_dict(): a seeded start
        self._last_actions: torch.Tensor | None = None
        self._elapsed = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
        self._returns = torch.zeros(self.num_envs, dtype=self.dtype, device=self.device)
        self.state: State = self._initial_state(self.num_envs)
        self._draw_rng_key()
        if isinstance(self.single_action_space, spaces.Box):
            self._action_low = torch.as_tensor(
                self.single_action_space.low, dtype=self.dtype, device=self.device
            )
            self._action_high = torch.as_tensor(
                self.single_action_space.high, dtype=self.dtype, device=self.device
            )

    # -- hooks ---------------------------------------------------------------------------------
    def _start_states(self, bits: torch.Tensor) -> State:
        """``n`` start states from ``(start_lanes, n)`` int32 random bits (see ``random_bits``)."""
        raise NotImplementedError

    def _transition(
        self, state: State, actions: torch.Tensor
    ) -> tuple[State, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def _observe(self, state: State) -> torch.Tensor:
        raise NotImplementedError

    def _render_state(self, state_row: State) -> np.ndarray:
        raise NotImplementedError(f"{self.env_name} has no renderer")

    def _episode_extras(self, next_state: State) -> dict[str, torch.Tensor]:
        """Per-episode statistics beyond return and length, read when rows finish (optional).

        Args:
            next_state: the state the step reached, before finished rows are reset.

        Returns:
            ``(N,)`` tensors that appear in ``info["episode"]`` under their keys.
        """
        return {}

    @property
    def observation_space(self) -> spaces.Space:
        """The batched observation space, built on first use: its bounds are ``num_envs`` host
        copies of the single space's (888 MiB and 6 s for 2**20 dogs), which training never
        reads."""
        if self._observation_space is None:
            self._observation_space = gymnasium.vector.utils.batch_space(
                self.single_observation_space, self.num_envs
            )
        return self._observation_space

    @observation_space.setter
    def observation_space(self, space: spaces.Space) -> None:
        self._observation_space = space

    @property
    def action_space(self) -> spaces.Space:
        """The batched action space, built on first use (see :attr:`observation_space`)."""
        if self._action_space is None:
            self._action_space = gymnasium.vector.utils.batch_space(
                self.single_action_space, self.num_envs
            )
        return self._action_space

    @action_space.setter
    def action_space(self, space: spaces.Space) -> None:
        self._action_space = space

    def _initial_state(self, n: int) -> State:
        """``n`` start states drawn from ``self.generator`` (``reset`` and the single env)."""
        return self._start_states(random_bits(self.generator, self.start_lanes, n, self.device))

    # -- gymnasium API ------------------------------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Reset every row. ``seed`` (one int) reseeds this env's ``torch.Generator``, which
        every row draws its own stream from, with ``rl.seeding.derive_seed(seed, "env")``: a
        stream apart from the one ``torch.manual_seed(seed)`` starts."""
        check_no_options(options, self.env_name)  # before reseeding: a refused call changes nothing
        if seed is not None:
            self.generator.manual_seed(derive_seed(check_seed(seed, self.env_name), "env"))
        self._needs_reset = False
        self.state = self._initial_state(self.num_envs)
        self._draw_rng_key()
        # New tensors, not zero_(): the old ones may be in a returned info["episode"].
        self._elapsed = torch.zeros_like(self._elapsed)
        self._returns = torch.zeros_like(self._returns)
        self._last_actions = None
        return self._observe(self.state), {}

    def step(
        self, actions: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if self._needs_reset:
            raise gymnasium.error.ResetNeeded(
                f"{self.env_name}: call reset() before step() (or load_state_dict())"
            )
        actions = self.check_actions(actions)
        self._last_actions = actions  # no copy: for render() (the pendulum draws its torque)
        if self.compiled:
            return self._step_compiled(actions)
        next_state, reward, terminated, info = self._transition(self.state, actions)
        # The counters are replaced, never updated in place, so info["episode"] can hand them
        # out without a copy.
        elapsed = self._elapsed + 1
        returns = self._returns + reward
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = elapsed >= self.max_episode_steps
        done = terminated | truncated
        final_obs = self._observe(next_state)
        episode = {"r": returns, "l": elapsed, **self._episode_extras(next_state)}
        episode["_r"] = done
        episode["_l"] = done
        if self.capturable and self.device.type == "cuda":
            salt = step_salt_tensor(self._rng_key_t, self._rng_step_t)
            self._rng_step_t = self._rng_step_t + 1
        else:
            salt = step_salt(self._rng_key, self._rng_step)  # Python int arithmetic: no device op
        self._rng_step += 1
        if self.device.type == "cpu":
            # On the CPU a count costs no device sync, so only the finished rows hash start
            # states and are observed again, as Gymnasium's numpy vector envs do. Drawing and
            # merging all N rows every step was ~half of a CartPole step at N=65536.
            rows = done.nonzero().squeeze(1)
            self._elapsed, self._returns = elapsed, returns
            if rows.numel() == 0:
                self.state = next_state
                obs = final_obs.clone()
            else:
                bits = start_bits_numpy(salt, rows.numpy(), self.start_lanes)
                fresh = self._start_states(torch.from_numpy(bits))
                self.state = put_rows(next_state, rows, fresh)
                obs = put_rows(final_obs, rows, self._observe(fresh))
                self._elapsed = elapsed.index_fill(0, rows, 0)
                self._returns = returns.index_fill(0, rows, 0.0)
        else:
            # Fresh start states for every row, kept only where the episode ended: no host sync.
            rows = torch.arange(self.num_envs, device=self.device)
            fresh = self._start_states(salted_bits(lane_salts(salt, self._lane_codes), rows))
            self.state = select_rows(done, fresh, next_state)
            self._elapsed = elapsed.masked_fill(done, 0)
            self._returns = returns.masked_fill(done, 0.0)
            obs = self._observe(self.state)
        info.update(final_obs=final_obs, _final_obs=done, episode=episode, _episode=done)
        return obs, reward, terminated, truncated, info

    # -- the compiled step --------------------------------------------------------------------
    def _whole_step(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        """The eager step as one pure function of a flat tensor list, for compiling.

        Autoreset is dense: every row hashes a start state and ``torch.where`` keeps the
        finished rows' (the CUDA eager path, on any device); the rows the eager CPU step resets
        get the same values. Inputs: the state's tensors, elapsed, returns, actions and the
        0-dim int32 hash key and step count. Outputs: the new state's tensors, obs, reward,
        terminated, truncated, done, final_obs, elapsed, returns, the next elapsed and returns,
        the episode extras and info tensors (keys in ``_extras_keys``/``_info_keys``, recorded
        while tracing), the lanes' salts, done as a float and the next step count. Masks leave as
        uint8 (0/1), viewed as bool after the call.
        """
        *leaves, elapsed, returns, actions, rng_key, rng_step = inputs
        state = leaves[0] if self._state_type is None else self._state_type(*leaves)
        next_state, reward, terminated, info = self._transition(state, actions)
        elapsed = elapsed + 1
        returns = returns + reward
        if self.max_episode_steps is None:
            truncated = torch.zeros_like(terminated)
        else:
            truncated = elapsed >= self.max_episode_steps
        # Masks leave as uint8 made through float, and the loops over (N, k) state read the
        # done mask as a float output: inductor's CPU code (torch 2.13, AVX2) stores a
        # comparison mask into a bool buffer at ~20 ns an element (float then uint8: ~0.6 ns)
        # and unpacks a uint8 mask byte by byte. Measured at N=4096: 3x, then 1.4x faster.
        done_float = (terminated | truncated).to(self.dtype)
        done = done_float.to(torch.uint8)
        finished = done_float != 0
        final_obs = self._observe(next_state)
        extras = self._episode_extras(next_state)
        # The salts are an output so that they are computed once, not inside every row's hash.
        salt = lane_salts(step_salt_tensor(rng_key, rng_step), self._lane_codes)
        rows = torch.arange(self.num_envs, device=self.device)
        fresh = self._start_states(salted_bits(salt, rows))
        new_state = select_rows(finished, fresh, next_state)
        obs = select_rows(finished, self._observe(fresh), final_obs)
        self._extras_keys, self._info_keys = list(extras), list(info)
        new_leaves = [new_state] if self._state_type is None else list(new_state)
        info_values = list(info.values())
        outputs = [
            *new_leaves,
            obs,
            reward,
            _mask_u8(terminated, self.dtype),
            _mask_u8(truncated, self.dtype),
            done,
            final_obs,
            elapsed,
            returns,
            elapsed.masked_fill(finished, 0),
            returns.masked_fill(finished, 0.0),
            *extras.values(),
            *(_mask_u8(t, self.dtype) if t.dtype == torch.bool else t for t in info_values),
            salt,
            done_float,  # an output so that it is stored once, then read (not recomputed)
            rng_step + 1,
        ]
        # The outputs that are masks, to view back as bool: terminated, truncated, done, info's.
        first, info_start = len(new_leaves) + 2, len(outputs) - 3 - len(info_values)
        self._mask_outputs = [first, first + 1, first + 2] + [
            info_start + i for i, value in enumerate(info_values) if value.dtype == torch.bool
        ]
        return outputs

    def _step_compiled(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        # Plain Python on purpose: at N=4096 on the CPU this wrapper is ~10 % of the step.
        state = self.state
        self._state_type = None if isinstance(state, torch.Tensor) else type(state)
        inputs = [state] if self._state_type is None else list(state)
        size = len(inputs)
        inputs += (self._elapsed, self._returns, actions, self._rng_key_t, self._rng_step_t)
        if self._compiled_step is None:
            self._compiled_step = CompiledFlat(self._whole_step, "sandbox_whole_step")
        try:
            outputs = self._compiled_step(inputs)
        except Exception as exc:
            if self._compiled_step.compile_seconds is not None or self.compile_mode != "auto":
                raise
            warnings.warn(
                f'{self.env_name}: compile="auto" could not compile the step ({exc!r:.300}); '
                "stepping eagerly",
                RuntimeWarning,
                stacklevel=3,
            )
            self.compiled = False
            self._compiled_step = None
            return self.step(actions)
        self.compile_seconds = self._compiled_step.compile_seconds
        for i in self._mask_outputs:
            outputs[i] = outputs[i].view(torch.bool)  # same bytes, no copy
        self.state = outputs[0] if self._state_type is None else self._state_type(*outputs[:size])
        obs, reward, terminated, truncated, done, final_obs, elapsed, returns = outputs[
            size : size + 8
        ]
        self._elapsed, self._returns = outputs[size + 8], outputs[size + 9]
        extras_end = size + 10 + len(self._extras_keys)
        episode = dict(zip(self._extras_keys, outputs[size + 10 : extras_end], strict=True))
        episode = {"r": returns, "l": elapsed, **episode, "_r": done, "_l": done}
        info = dict(zip(self._info_keys, outputs[extras_end:-3], strict=True))
        self._rng_step_t = outputs[-1]
        self._rng_step += 1  # the host's copy, for state_dict(): no device sync
        info.update(final_obs=final_obs, _final_obs=done, episode=episode, _episode=done)
        return obs, reward, terminated, truncated, info

    # -- CUDA graphs --------------------------------------------------------------------------
    def carried(self) -> list[torch.Tensor]:
        """The tensors a step reads and replaces: the state's, the episode counters and the
        autoreset step count (what the next step continues from).

        For capturing steps in a CUDA graph: set :attr:`capturable`, point the env at static
        copies (:meth:`load_carried`), capture the steps, then copy the last step's
        :meth:`carried` into those copies inside the graph; each replay then continues where
        the previous one ended (``benchmarks/env_throughput.py``'s ``graphed`` mode, PPO's
        ``cuda_graphs``).
        """
        state = self.state
        leaves = [state] if isinstance(state, torch.Tensor) else list(state)
        return [*leaves, self._elapsed, self._returns, self._rng_step_t]

    @contextmanager
    def uncarried_changes(self) -> Iterator[list[str]]:
        """The tensor attributes, other than :meth:`carried`'s, that steps inside the block
        replaced with new tensors; the list fills when the block ends.

        A subclass that keeps per-row state outside ``state`` (and rebinds it each step) would
        replay stale values from a CUDA graph: the agents and ``evaluate`` step such an env
        eagerly. Attributes updated in place are carried by the graph as they are.
        """
        carried = {"state", "_elapsed", "_returns", "_rng_step_t", "_last_actions"}

        def tensors() -> dict[str, torch.Tensor]:
            return {
                name: value
                for name, value in vars(self).items()
                if name not in carried and isinstance(value, torch.Tensor)
            }

        # The tensors themselves, not their ids: held here, a replaced tensor cannot be freed
        # and its id handed on to a later one (with a rebinding env, often the next step's).
        before = tensors()
        changed: list[str] = []
        yield changed
        after = tensors()
        changed.extend(sorted(name for name, t in after.items() if before.get(name) is not t))

    def load_carried(self, tensors: list[torch.Tensor]) -> None:
        """Continue from ``tensors`` (in :meth:`carried`'s order), used as they are."""
        *leaves, self._elapsed, self._returns, self._rng_step_t = tensors
        self.state = (
            leaves[0] if isinstance(self.state, torch.Tensor) else type(self.state)(*leaves)
        )

    def static_carried(self) -> list[torch.Tensor]:
        """Copies of :meth:`carried`, which the env then continues from: the buffers a CUDA
        graph of its steps reads (make them before the capture, not inside it)."""
        static = [t.clone() for t in self.carried()]
        self.load_carried(static)
        return static

    def copy_carried_into(self, static: list[torch.Tensor]) -> None:
        """Copy the steps' :meth:`carried` into :meth:`static_carried`'s buffers and continue
        from them: the last op of a captured graph, so each replay continues the last one."""
        for target, source in zip(static, self.carried(), strict=True):
            if target is not source:
                target.copy_(source)
        self.load_carried(static)

    def _draw_rng_key(self) -> None:
        """A new autoreset hash key from the generator (after the start states: they keep
        their draws), and the step count back to 0."""
        key = torch.randint(2**32, (), generator=self.generator, device=self.device)
        self._set_rng(int(key), 0)  # int(): a host sync on CUDA, once per reset()

    def _set_rng(self, key: int, step: int) -> None:
        self._rng_key, self._rng_step = key, step
        # The compiled step reads them as 0-dim int32 device tensors (the same bits) and counts
        # the steps itself: no host-to-device copy per step. The key is written in place: a
        # CUDA graph of steps (carrying the step count, not the key) reads it after a reset.
        # (One made under inference_mode, by an evaluator, cannot be written outside it.)
        old = getattr(self, "_rng_key_t", None)
        if old is None or (old.is_inference() and not torch.is_inference_mode_enabled()):
            self._rng_key_t = torch.tensor(int32_bits(key), dtype=torch.int32, device=self.device)
        else:
            self._rng_key_t.fill_(int32_bits(key))
        self._rng_step_t = torch.tensor(int32_bits(step), dtype=torch.int32, device=self.device)

    def render(self) -> tuple[np.ndarray, ...] | None:
        """Frames of the first ``min(N, 16)`` rows (``render_mode="rgb_array"``)."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                f"{self.env_name}: render() called without a render_mode; "
                'make the env with render_mode="rgb_array"'
            )
            return None
        count = min(self.num_envs, 16)
        return tuple(self.render_row(i) for i in range(count))

    def render_row(self, i: int) -> np.ndarray:
        """An ``(H, W, 3)`` uint8 frame of row ``i``."""
        return self._render_state(index_rows(self.state, slice(i, i + 1)))

    # -- validation ---------------------------------------------------------------------------
    def check_actions(self, actions: Any) -> torch.Tensor:
        """Validate and convert a batch of actions; raise ``ValueError`` naming the space.

        Shape and dtype are always checked (no sync). Values (range, NaN) are checked when
        ``validate_actions`` is true, which on CUDA costs one host sync per step: agents whose
        actions are valid by construction pass ``validate_actions=False``. Finite out-of-range
        continuous actions are clipped, as Gymnasium's envs do; NaN and ±inf are errors.
        """
        space = self.single_action_space
        # Built only for an error message: describe_space costs more than the checks (np.unique).
        expected = _LazyText(
            lambda: f"expected a batch of {self.num_envs} actions from {describe_space(space)}"
        )
        if not isinstance(actions, torch.Tensor):
            try:
                actions = torch.as_tensor(np.asarray(actions), device=self.device)
            except (TypeError, ValueError, RuntimeError) as exc:
                raise ValueError(
                    f"{self.env_name}: actions could not be read as a tensor ({exc}); {expected}"
                ) from None
        elif actions.device != self.device:
            actions = actions.to(self.device)
        if isinstance(space, spaces.Discrete):
            if actions.shape != (self.num_envs,):
                raise ValueError(
                    f"{self.env_name}: actions have shape {tuple(actions.shape)}, "
                    f"{expected} with shape ({self.num_envs},)"
                )
            if actions.dtype == torch.bool or actions.is_floating_point() or actions.is_complex():
                raise ValueError(
                    f"{self.env_name}: actions have dtype {actions.dtype}, {expected} as integers"
                )
            # int64 first: aminmax (and comparisons) are not implemented for uint16/32/64, and
            # a uint64 beyond int64's range wraps negative, so is still reported out of range.
            if actions.dtype != torch.int64:
                actions = actions.long()
            if self.validate_actions:
                low, high = int(space.start), int(space.start + space.n - 1)
                # One reduction rather than two comparisons, an OR and an any (10x faster on
                # the CPU); int(): a host sync on CUDA.
                smallest, largest = torch.aminmax(actions)
                if int(smallest) < low or int(largest) > high:
                    bad = actions[(actions < low) | (actions > high)][:5].tolist()
                    raise ValueError(f"{self.env_name}: actions out of range {bad}; {expected}")
            return actions
        if isinstance(space, spaces.Box):
            shape = (self.num_envs, *space.shape)
            if actions.shape != shape and actions.shape == (self.num_envs,) and space.shape == (1,):
                actions = actions.unsqueeze(-1)
            if actions.shape != shape:
                raise ValueError(
                    f"{self.env_name}: actions have shape {tuple(actions.shape)}, "
                    f"{expected} with shape {shape}"
                )
            if actions.dtype == torch.bool or actions.is_complex():
                raise ValueError(f"{self.env_name}: actions have dtype {actions.dtype}, {expected}")
            actions = actions.to(self.dtype)
            if self.validate_actions and not bool(torch.isfinite(actions).all()):
                raise ValueError(f"{self.env_name}: actions contain NaN or ±inf; {expected}")
            return torch.clamp(actions, self._action_low, self._action_high)
        raise TypeError(f"{self.env_name}: unsupported action space {space}")

    # -- exact resume -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue stepping exactly: state, counters, generator, hash key.

        Subclasses with more per-row tensors (episode counters, layouts) extend it.
        """
        state = self.state
        fields = (
            {"tensor": state.clone()}
            if isinstance(state, torch.Tensor)
            else {name: value.clone() for name, value in zip(state._fields, state, strict=True)}
        )
        return {
            "state": fields,
            "elapsed": self._elapsed.clone(),
            "returns": self._returns.clone(),
            "generator": self.generator.get_state(),
            "rng_key": self._rng_key,
            # A capturable step's count lives on the device (graph replays advance it there).
            "rng_step": (
                int(self._rng_step_t) & 0xFFFFFFFF
                if self.capturable and self.device.type == "cuda"
                else self._rng_step
            ),
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (same ``num_envs``; any device)."""
        fields = saved["state"]
        if isinstance(self.state, torch.Tensor):
            restored = fields["tensor"].to(self.device)
        else:
            restored = type(self.state)(
                *(fields[name].to(self.device) for name in self.state._fields)
            )
        first = restored if isinstance(restored, torch.Tensor) else restored[0]
        if first.shape[0] != self.num_envs:
            raise ValueError(
                f"{self.env_name}: saved env state has {first.shape[0]} rows, this env has "
                f"{self.num_envs}; resume with the same num_envs"
            )
        self.state = restored
        self._needs_reset = False
        self._elapsed = saved["elapsed"].to(self.device)
        self._returns = saved["returns"].to(self.device)
        restore_generator(self.generator, saved["generator"])  # (any device's state)
        if "rng_key" in saved:
            self._set_rng(int(saved["rng_key"]), int(saved["rng_step"]))
        else:  # saved before autoreset hashed its start states: resumes, not bit for bit
            self._draw_rng_key()

    def close_extras(self, **kwargs: Any) -> None:
        pass


class TorchSingleEnv(gymnasium.Env):
    """A numpy ``gymnasium.Env`` over a :class:`TorchVectorEnv`'s core, with N=1 on the CPU.

    The dynamics run in float64 through the very same hook functions as the batched env, so the
    single env and every row of the vector env agree. Subclasses set ``vector_cls`` and pass the
    env's constructor arguments to ``super().__init__``. ``render`` draws :meth:`_frame` (the
    vector env's ``_render_state`` of this env's state): ``rgb_array`` returns it, ``human``
    shows it in a pygame window titled ``window_title`` after every reset and step.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": 50}
    vector_cls: ClassVar[type[TorchVectorEnv]]
    window_title: ClassVar[str | None] = None
    """The ``human`` window's title; ``None``: the env's id."""

    def __init__(self, render_mode: str | None = None, **core_kwargs: Any) -> None:
        name = self.vector_cls.env_name
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"{name}: render_mode must be one of {self.metadata['render_modes']} or None, "
                f"got {render_mode!r}"
            )
        self.render_mode = render_mode
        # No time limit here: gymnasium.make adds TimeLimit from the registration.
        self.core = self.vector_cls(
            1, device="cpu", dtype=torch.float64, max_episode_steps=None, **core_kwargs
        )
        self.observation_space = self.core.single_observation_space
        self.action_space = self.core.single_action_space
        self._state: State = self.core.state
        self.last_info: dict[str, Any] = {}
        self._needs_reset = True  # until reset() or a state set by hand
        self.steps_beyond_terminated: int | None = None
        """Steps taken since the episode terminated (None: it has not), as Gymnasium counts."""
        self._window: Window | None = None

    @property
    def env_name(self) -> str:
        return self.vector_cls.env_name

    def _set_state_row(self, values: np.ndarray) -> None:
        """A state set by hand (``env.unwrapped.state = ...``, already checked): stepping may
        start from it without a reset."""
        self._state = torch.from_numpy(values.copy()).unsqueeze(0)
        self._needs_reset = False

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        check_no_options(options, self.env_name)
        if seed is not None:
            seed = check_seed(seed, self.env_name)
        super().reset(seed=seed)
        if seed is not None:
            self.core.generator.manual_seed(derive_seed(seed, "env"))
        self._state = self.core._initial_state(1)
        self.core._last_actions = None
        self.last_info = {}
        self._needs_reset = False
        self.steps_beyond_terminated = None
        if self.render_mode == "human":
            self.render()
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._needs_reset:
            raise gymnasium.error.ResetNeeded(
                f"{self.env_name}: call reset() before step() (or set env.unwrapped.state)"
            )
        batch = self._check_action(action)
        if self.steps_beyond_terminated is not None:
            if self.steps_beyond_terminated == 0:
                gymnasium.logger.warn(
                    f"{self.env_name}: step() called after the episode terminated; call "
                    "reset() once terminated is True: further steps are undefined behaviour"
                )
            self.steps_beyond_terminated += 1
        self.core._last_actions = batch
        self._state, reward, terminated, info = self.core._transition(self._state, batch)
        self.last_info = {key: value[0].item() for key, value in info.items()}
        if bool(terminated[0]) and self.steps_beyond_terminated is None:
            self.steps_beyond_terminated = 0
        if self.render_mode == "human":
            self.render()
        return self._obs(), float(reward[0]), bool(terminated[0]), False, dict(self.last_info)

    def render(self) -> np.ndarray | None:
        """The current frame (``rgb_array``), or draw it in a pygame window (``human``)."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                f"{self.env_name}: render() called without a render_mode; make the env with "
                'gymnasium.make(..., render_mode="rgb_array") (or "human" for a window)'
            )
            return None
        frame = self._frame()
        if self.render_mode == "rgb_array":
            return frame
        if self._window is None:
            height, width = frame.shape[:2]
            title = self.window_title or self.env_name
            self._window = Window(title, (width, height), self.metadata["render_fps"])
        self._window.show(frame)
        return None

    def _frame(self) -> np.ndarray:
        """An ``(H, W, 3)`` uint8 frame of the current state."""
        return self.core._render_state(self._state)

    def close(self) -> None:
        if self._window is not None:
            self._window.close()
            self._window = None
        super().close()

    def _obs(self) -> np.ndarray:
        obs = self.core._observe(self._state)[0].numpy()
        return obs.astype(self.observation_space.dtype, copy=False)

    def _check_action(self, action: Any) -> torch.Tensor:
        space = self.action_space
        name = self.env_name
        # Built only for an error message: describe_space costs more than the checks (np.unique).
        expected = _LazyText(lambda: f"expected an action from {describe_space(space)}")
        if isinstance(space, spaces.Discrete):
            if isinstance(action, (bool, np.bool_)) or (
                isinstance(action, (np.ndarray, torch.Tensor))
                and action.dtype in (bool, np.bool_, torch.bool)
            ):
                raise ValueError(f"{name}: got a boolean action {action!r}; {expected}")
            if isinstance(action, (np.ndarray, torch.Tensor)):
                if action.size == 0 if isinstance(action, np.ndarray) else action.numel() == 0:
                    raise ValueError(f"{name}: got an empty action; {expected}")
                if tuple(action.shape) not in ((), (1,)):
                    raise ValueError(
                        f"{name}: action has shape {tuple(action.shape)}; {expected} (a scalar)"
                    )
                action = action.reshape(()).item()
            if not isinstance(action, (int, np.integer)):
                # 1.0 too, as the vector env and Gymnasium's Discrete.contains refuse floats.
                raise ValueError(f"{name}: action {action!r} is not an integer; {expected}")
            value = int(action)
            if not space.start <= value < space.start + space.n:
                raise ValueError(f"{name}: action {value} is out of range; {expected}")
            return torch.full((1,), value, dtype=torch.long)
        if isinstance(space, spaces.Box):
            # Only real numbers: np.asarray(..., float64) alone would turn True, "1.5" or None
            # into actions, where the vector env rejects such dtypes.
            if isinstance(action, torch.Tensor):
                if action.dtype == torch.bool or action.is_complex():
                    raise ValueError(f"{name}: action has dtype {action.dtype}; {expected}")
                action = action.detach().cpu().numpy()
            raw = action if isinstance(action, np.ndarray) else np.asarray(action)
            if raw.dtype.kind not in "fiu":
                raise ValueError(
                    f"{name}: action {action!r} has dtype {raw.dtype}, not a real number; "
                    f"{expected}"
                )
            array = raw.astype(np.float64)
            if array.shape == () and space.shape == (1,):
                array = array.reshape(1)  # a number for a one-number action
            if array.shape != space.shape:
                raise ValueError(
                    f"{name}: action has shape {array.shape}; {expected} with shape {space.shape}"
                )
            if not np.isfinite(array).all():
                raise ValueError(f"{name}: action contains NaN or ±inf; {expected}")
            array = np.clip(array, space.low, space.high)
            return torch.from_numpy(array).unsqueeze(0)
        raise TypeError(f"{name}: unsupported action space {space}")
