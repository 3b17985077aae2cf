"""Pendulum-v1 as batched torch code: Gymnasium's swing-up pendulum, exactly, for N at once.

The pure core (:class:`Params`, :func:`reset`, :func:`step`, :func:`observation`) follows
``gymnasium/envs/classic_control/pendulum.py`` operation for operation, so that in float64 on
the CPU every trajectory is bit-identical to Gymnasium's (tests/envs/test_pendulum.py).
"""

from __future__ import annotations

import importlib.resources
import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from gymnasium import spaces

from envs.compiled import compiling
from envs.core import TorchSingleEnv, TorchVectorEnv, sin_cos
from envs.rendering import import_pygame, new_canvas, surface_to_array
from envs.rng import random_bits, uniform_from_bits


@dataclass(frozen=True)
class Params:
    """Physical constants of the pendulum (Gymnasium's values by default)."""

    g: float = 10.0
    """Gravitational acceleration, m/s² (Gymnasium's ``g`` argument)."""
    m: float = 1.0
    """Mass of the bob, kg."""
    l: float = 1.0  # noqa: E741 - Gymnasium's name, kept so the equations read the same.
    """Length of the rod, m."""
    dt: float = 0.05
    """Seconds between state updates."""
    max_speed: float = 8.0
    """Angular speed limit, rad/s (the velocity is clipped to it)."""
    max_torque: float = 2.0
    """Torque limit, N·m (actions are clipped to it)."""

    def __post_init__(self) -> None:
        for name in ("g", "m", "l", "dt", "max_speed", "max_torque"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"Pendulum Params.{name} must be a number, got {value!r}")
            if not math.isfinite(value) or (name != "g" and not value > 0):
                raise ValueError(f"Pendulum Params.{name} must be finite and > 0, got {value!r}")


def observation_space(params: Params) -> spaces.Box:
    high = np.array([1.0, 1.0, params.max_speed], dtype=np.float32)
    return spaces.Box(-high, high, dtype=np.float32)


def action_space(params: Params) -> spaces.Box:
    return spaces.Box(-params.max_torque, params.max_torque, shape=(1,), dtype=np.float32)


def angle_normalize(x: torch.Tensor) -> torch.Tensor:
    """``x`` wrapped into [-pi, pi), as numpy's ``%`` and torch's eager ``remainder`` compute it.

    Spelled out as ``fmod`` (exact) plus a correction because inductor lowers ``remainder`` to
    ``a - b * floor(a / b)``, which differs in ~20 % of float32 cases: compiled and eager steps
    must agree exactly.
    """
    wrapped = torch.fmod(x + math.pi, 2 * math.pi)
    wrapped = torch.where(wrapped < 0, wrapped + 2 * math.pi, wrapped)
    return wrapped - math.pi


def square(x: torch.Tensor) -> torch.Tensor:
    """``x ** 2`` as Gymnasium's Pendulum computes it, bit for bit in float64 on the CPU.

    Gymnasium squares numpy float64 *scalars*, which calls libm's ``pow(x, 2)``; that differs
    by one ulp from the correctly rounded ``x * x`` in about 0.09% of cases (glibc 2.36). No
    array routine reproduces it everywhere: ``np.power`` with an exponent array called libm per
    element until numpy 2.4, which takes a SIMD ``pow`` on AVX-512 machines (2.7% of squares
    off by an ulp), so libm is called here one element at a time, as fast as ``np.power`` was.
    Other dtypes and devices use ``x * x``.
    """
    if x.dtype == torch.float64 and x.device.type == "cpu" and not x.requires_grad:
        if compiling():
            return torch.ops.sandbox.libm_square(x)  # a compiled graph cannot call math.pow
        return _libm_square_eager(x)
    return x * x


def _libm_square_eager(x: torch.Tensor) -> torch.Tensor:
    values = x.reshape(-1).tolist()
    squares = np.fromiter(map(math.pow, values, itertools.repeat(2.0)), np.float64, len(values))
    return torch.from_numpy(squares.reshape(x.shape))


# An opaque op for the float64 CPU square inside compiled graphs (see envs.core.sin_cos).
_LIBRARY = torch.library.Library("sandbox", "FRAGMENT")
_LIBRARY.define("libm_square(Tensor x) -> Tensor")
_LIBRARY.impl("libm_square", _libm_square_eager, "CPU")


@torch.library.register_fake("sandbox::libm_square")
def _libm_square_fake(x: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x)


def start_states(params: Params, bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Start states ``(n, 2)`` from ``(2, n)`` int32 random bits (see :func:`reset`)."""
    del params
    u = uniform_from_bits(bits, dtype)  # (2, n) in [0, 1)
    # Gymnasium's low + (high - low) * u for theta in [-pi, pi), theta_dot in [-1, 1).
    return torch.stack((u[0] * (2 * math.pi) - math.pi, u[1] * 2.0 - 1.0), dim=-1)


def reset(
    params: Params,
    n: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` start states ``(n, 2)``: ``theta`` uniform in [-pi, pi], ``theta_dot`` in [-1, 1]."""
    bits = random_bits(generator, 2, n, device)
    return start_states(params, bits, dtype)


def step(
    params: Params, state: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of every pendulum: ``(next_state, reward, terminated)``.

    Args:
        params: the physics.
        state: ``(N, 2)`` float ``(theta, theta_dot)``.
        actions: ``(N, 1)`` torques, clipped here to ``[-max_torque, max_torque]``.

    Returns:
        ``next_state`` ``(N, 2)``, ``reward`` ``(N,)`` in the state's dtype and ``terminated``
        ``(N,)`` bool, always false: the pendulum only truncates.
    """
    # Gymnasium's operand order throughout: float64 then matches bit for bit (see sin_cos and
    # square for the two functions torch and Gymnasium's numpy compute differently).
    th, thdot = state.unbind(-1)
    u = torch.clamp(actions[:, 0].to(state.dtype), -params.max_torque, params.max_torque)
    angle = angle_normalize(th)
    costs = square(angle) + 0.1 * square(thdot) + 0.001 * square(u)
    sin_th, _ = sin_cos(th)
    gravity_coef = 3 * params.g / (2 * params.l)
    torque_coef = 3.0 / (params.m * params.l**2)
    newthdot = thdot + (gravity_coef * sin_th + torque_coef * u) * params.dt
    newthdot = torch.clamp(newthdot, -params.max_speed, params.max_speed)
    newth = th + newthdot * params.dt
    next_state = torch.stack((newth, newthdot), dim=-1)
    terminated = torch.zeros(state.shape[0], dtype=torch.bool, device=state.device)
    return next_state, -costs, terminated


def observation(params: Params, state: torch.Tensor) -> torch.Tensor:
    """The ``(N, 3)`` observation ``(cos(theta), sin(theta), theta_dot)``."""
    del params
    th, thdot = state.unbind(-1)
    sin_th, cos_th = sin_cos(th)
    return torch.stack((cos_th, sin_th, thdot), dim=-1)


def draw(params: Params, theta: float, last_u: float | None) -> np.ndarray:
    """A 500x500 ``(H, W, 3)`` uint8 frame of one pendulum, drawn as Gymnasium draws it."""
    pygame = import_pygame()
    from pygame import gfxdraw

    dim = 500
    scale = dim / (2.2 * 2)
    offset = dim // 2
    red = (204, 77, 77)
    surf = new_canvas(dim, dim)

    rod_length, rod_width = params.l * scale, 0.2 * scale
    left, right, top, bottom = 0, rod_length, rod_width / 2, -rod_width / 2
    rod = []
    for corner in [(left, bottom), (left, top), (right, top), (right, bottom)]:
        rotated = pygame.math.Vector2(corner).rotate_rad(theta + np.pi / 2)
        rod.append((rotated[0] + offset, rotated[1] + offset))
    gfxdraw.aapolygon(surf, rod, red)
    gfxdraw.filled_polygon(surf, rod, red)
    gfxdraw.aacircle(surf, offset, offset, int(rod_width / 2), red)
    gfxdraw.filled_circle(surf, offset, offset, int(rod_width / 2), red)

    end = pygame.math.Vector2(rod_length, 0).rotate_rad(theta + np.pi / 2)
    end_x, end_y = int(end[0] + offset), int(end[1] + offset)
    gfxdraw.aacircle(surf, end_x, end_y, int(rod_width / 2), red)
    gfxdraw.filled_circle(surf, end_x, end_y, int(rod_width / 2), red)

    if last_u is not None and last_u != 0:
        # Gymnasium's torque arrow, sized by |torque| and mirrored by its sign.
        asset = importlib.resources.files("gymnasium.envs.classic_control") / "assets"
        with importlib.resources.as_file(asset / "clockwise.png") as path:
            arrow = pygame.image.load(str(path))
        side = float(scale * abs(last_u) / 2)
        arrow = pygame.transform.smoothscale(arrow, (side, side))
        arrow = pygame.transform.flip(arrow, bool(last_u > 0), True)
        rect = arrow.get_rect()
        surf.blit(arrow, (offset - rect.centerx, offset - rect.centery))

    gfxdraw.aacircle(surf, offset, offset, int(0.05 * scale), (0, 0, 0))
    gfxdraw.filled_circle(surf, offset, offset, int(0.05 * scale), (0, 0, 0))
    return surface_to_array(pygame.transform.flip(surf, False, True))


_DOCSTRING = """
    ## Description

    Gymnasium's Pendulum-v1 swing-up as batched torch code: a rod hangs from a fixed pivot and
    the goal is to swing its free end upright and hold it there with a limited torque.
    Dynamics, rewards and spaces are Gymnasium's, bit for bit in float64 on the CPU.

    ## Action Space

    `Box(-2.0, 2.0, (1,), float32)`: the torque on the free end (N·m, counter-clockwise
    positive). Finite out-of-range torques are clipped to [-2, 2] as in Gymnasium; NaN raises
    `ValueError`.

    ## Observation Space

    `Box(3,)` float32:

    | Num | Observation      | Min  | Max |
    |-----|------------------|------|-----|
    | 0   | x = cos(theta)   | -1.0 | 1.0 |
    | 1   | y = sin(theta)   | -1.0 | 1.0 |
    | 2   | Angular Velocity | -8.0 | 8.0 |

    ## Rewards

    `r = -(theta² + 0.1 * theta_dot² + 0.001 * torque²)`, with `theta` normalised into
    [-pi, pi] (0 is upright): between -16.2736044 and 0.

    ## Starting State

    `theta` uniform in [-pi, pi], `theta_dot` uniform in [-1, 1].

    ## Episode End

    Never terminates. Truncation: 200 steps (`max_episode_steps`).

    ## Arguments

    | Argument           | Default         | Meaning                                              |
    |--------------------|-----------------|------------------------------------------------------|
    | `g`                | `10.0`          | gravitational acceleration, m/s²                     |
    | `render_mode`      | `None`          | {render_modes}                                       |
{extra_arguments}
    ## Batched Semantics

    {batched}

    ## Version History

    * v1 (sandbox): Gymnasium's Pendulum-v1 as batched torch code. Reset options (`x_init`,
      `y_init`) are not supported.
"""

_VECTOR_ARGUMENTS = """\
    | `num_envs`         | `1`             | N, the number of pendulums stepped together          |
    | `device`           | `"cpu"`         | torch device of every tensor in and out              |
    | `dtype`            | `torch.float32` | float dtype of state, observations and rewards       |
    | `max_episode_steps`| `200`           | truncation step count (`None`: never truncate)       |
    | `validate_actions` | `True`          | check for NaN (one host sync per step on CUDA)       |
    | `compile`          | `False`         | `True`/`"auto"`: one compiled graph per step         |
"""


class PendulumVectorEnv(TorchVectorEnv):
    __doc__ = "N pendulums stepped together as torch tensors on one device.\n" + _DOCSTRING.format(
        render_modes='`"rgb_array"` (`render()` gives the first 16 rows\' frames)',
        extra_arguments=_VECTOR_ARGUMENTS,
        batched=(
            "Actions `(N, 1)` (or `(N,)`) floats; observations `(N, 3)`, rewards `(N,)` in "
            "`dtype`, `terminated` (always false) and `truncated` `(N,)` bool, all on `device`. "
            "Autoreset is SAME_STEP: a truncated row is reset inside `step`, its last "
            'observation in `info["final_obs"]` (mask `info["_final_obs"]`), its return and '
            'length in `info["episode"]`. One `torch.Generator`, seeded by '
            "`reset(seed=...)`, draws the start states at `reset` and the key of the hash "
            "that draws autoreset start states: a seed fixes every trajectory, eager or "
            "compiled (`compile`)."
        ),
    )

    env_name: ClassVar[str] = "sandbox/Pendulum-v1"
    start_lanes: ClassVar[int] = 2
    metadata: ClassVar[dict[str, Any]] = {**TorchVectorEnv.metadata, "render_fps": 30}
    # The compiled CPU step calls sin and cos as opaque eager ops (envs.core.sin_cos), which
    # leaves it 0.5-1.0x the eager step at N = 256-65536 on the 2-core CPU (docs/PERFORMANCE.md):
    # "auto" compiles Pendulum on CUDA only.
    auto_compile_min_envs_cpu: ClassVar[int | None] = None

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = 200,
        render_mode: str | None = None,
        validate_actions: bool = True,
        g: float = 10.0,
        compile: bool | str = False,
    ) -> None:
        try:
            self.params = Params(g=g)
        except ValueError as exc:
            raise ValueError(f"{self.env_name}: {exc}") from None
        self.single_observation_space = observation_space(self.params)
        self.single_action_space = action_space(self.params)
        self._setup(
            num_envs,
            device=device,
            dtype=dtype,
            max_episode_steps=max_episode_steps,
            render_mode=render_mode,
            validate_actions=validate_actions,
            compile=compile,
        )

    @property
    def single_env_kwargs(self) -> dict[str, Any]:
        """Arguments that make a :class:`PendulumEnv` with this env's physics."""
        return {"g": self.params.g}

    def _start_states(self, bits: torch.Tensor) -> torch.Tensor:
        return start_states(self.params, bits, self.dtype)

    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        next_state, reward, terminated = step(self.params, state, actions)
        return next_state, reward, terminated, {}

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return observation(self.params, state)

    def render_row(self, i: int) -> np.ndarray:
        """An ``(H, W, 3)`` uint8 frame of row ``i``, with the torque it was last given."""
        theta = float(self.state[i, 0])
        last_u = None if self._last_actions is None else float(self._last_actions[i, 0])
        return draw(self.params, theta, last_u)


class PendulumEnv(TorchSingleEnv):
    __doc__ = "One pendulum as a numpy `gymnasium.Env` (float64 core on the CPU).\n" + (
        _DOCSTRING.format(
            render_modes='`"human"` (pygame window) or `"rgb_array"` (500x500 frames)',
            extra_arguments="",
            batched=(
                "None: N=1, numpy in and out. The dynamics are the same functions, run in "
                "float64, as every row of `PendulumVectorEnv`. `env.unwrapped.state` reads and "
                "sets the float64 state `(theta, theta_dot)` as in Gymnasium."
            ),
        )
    )

    vector_cls: ClassVar[type[TorchVectorEnv]] = PendulumVectorEnv
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": 30}

    def __init__(self, render_mode: str | None = None, g: float = 10.0) -> None:
        super().__init__(render_mode=render_mode, g=g)
        self.params: Params = self.core.params

    @property
    def last_u(self) -> float | None:
        """The torque last applied, clipped (as Gymnasium's Pendulum keeps it); ``None`` after
        a reset."""
        actions = self.core._last_actions
        return None if actions is None else float(actions[0, 0])

    @property
    def state(self) -> np.ndarray:
        """The float64 state ``(theta, theta_dot)``, a copy; assignable."""
        return self._state[0].numpy().copy()

    @state.setter
    def state(self, value: Any) -> None:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = np.full(2, np.nan)  # reported below
        if array.shape != (2,) or not np.isfinite(array).all():
            raise ValueError(
                f"{self.env_name}: state must be 2 finite numbers (theta, theta_dot), got {value!r}"
            )
        self._set_state_row(array)

    def _frame(self) -> np.ndarray:
        return draw(self.params, float(self._state[0, 0]), self.last_u)
