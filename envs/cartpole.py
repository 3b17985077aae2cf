"""CartPole-v1 as batched torch code: Gymnasium's cart-pole, exactly, for N carts at once.

The pure core (:class:`Params`, :func:`reset`, :func:`step`, :func:`observation`) follows
``gymnasium/envs/classic_control/cartpole.py`` operation for operation, so that in float64 on
the CPU every trajectory is bit-identical to Gymnasium's (tests/envs/test_cartpole.py).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from envs.compiled import compiling
from envs.core import TorchSingleEnv, TorchVectorEnv, check_flag, sin_cos
from envs.rendering import import_pygame, new_canvas, surface_to_array
from envs.rng import random_bits, uniform_from_bits

_INTEGRATORS = ("euler", "semi-implicit euler")


@dataclass(frozen=True)
class Params:
    """Physical constants of the cart-pole (Gymnasium's values by default)."""

    gravity: float = 9.8
    """Gravitational acceleration, m/s²."""
    masscart: float = 1.0
    """Mass of the cart, kg."""
    masspole: float = 0.1
    """Mass of the pole, kg."""
    length: float = 0.5
    """Half the pole's length, m (Gymnasium's naming)."""
    force_mag: float = 10.0
    """Magnitude of the push on the cart, N."""
    tau: float = 0.02
    """Seconds between state updates."""
    kinematics_integrator: str = "euler"
    """``"euler"`` (Gymnasium's default) or ``"semi-implicit euler"``."""
    theta_threshold_radians: float = 12 * 2 * math.pi / 360
    """Pole angle beyond which the episode terminates (12°; same expression as Gymnasium's)."""
    x_threshold: float = 2.4
    """Cart position beyond which the episode terminates, m."""
    sutton_barto_reward: bool = False
    """Reward 0 per step and -1 on termination instead of +1 per step."""

    def __post_init__(self) -> None:
        positive = ("gravity", "masscart", "masspole", "length", "force_mag", "tau")
        for name in (*positive, "theta_threshold_radians", "x_threshold"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not (math.isfinite(value) and value > 0)
            ):
                raise ValueError(
                    f"CartPole Params.{name} must be a finite number > 0, got {value!r}"
                )
        if self.kinematics_integrator not in _INTEGRATORS:
            raise ValueError(
                f"CartPole Params.kinematics_integrator must be one of {_INTEGRATORS}, "
                f"got {self.kinematics_integrator!r}"
            )

    @property
    def total_mass(self) -> float:
        return self.masspole + self.masscart

    @property
    def polemass_length(self) -> float:
        return self.masspole * self.length


def observation_space(params: Params) -> spaces.Box:
    """Gymnasium's observation space: twice the termination bounds, so a failing state fits."""
    high = np.array(
        [params.x_threshold * 2, np.inf, params.theta_threshold_radians * 2, np.inf],
        dtype=np.float32,
    )
    return spaces.Box(-high, high, dtype=np.float32)


class _Constants(NamedTuple):
    """:class:`Params` as 0-dim tensors of the state's dtype (see :func:`_constants`)."""

    gravity: torch.Tensor
    masspole: torch.Tensor
    total_mass: torch.Tensor
    length: torch.Tensor
    polemass_length: torch.Tensor
    forces: torch.Tensor  # (2,): the push for action 0 and for action 1
    four_thirds: torch.Tensor
    tau: torch.Tensor
    thresholds: torch.Tensor  # (2, 1): x_threshold, theta_threshold_radians


@functools.lru_cache(maxsize=64)
def _constants(params: Params, dtype: torch.dtype, device: torch.device) -> _Constants:
    """The constants as tensors of ``dtype`` on ``device``, built once per (params, dtype, device).

    A Python float operand costs ~15 µs per torch op (it is wrapped in a tensor and cast every
    call), more than the arithmetic itself at N=4096; a 0-dim tensor of the right dtype costs
    ~2 µs and holds the same value, so results are unchanged.
    """

    def scalar(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=dtype, device=device)

    return _Constants(
        gravity=scalar(params.gravity),
        masspole=scalar(params.masspole),
        total_mass=scalar(params.total_mass),
        length=scalar(params.length),
        polemass_length=scalar(params.polemass_length),
        forces=torch.tensor([-params.force_mag, params.force_mag], dtype=dtype, device=device),
        four_thirds=scalar(4.0 / 3.0),
        tau=scalar(params.tau),
        thresholds=torch.tensor(
            [[params.x_threshold], [params.theta_threshold_radians]], dtype=dtype, device=device
        ),
    )


def start_states(params: Params, bits: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Start states ``(n, 4)`` from ``(4, n)`` int32 random bits (see :func:`reset`)."""
    del params  # The start distribution does not depend on the physics; kept for a uniform API.
    u = uniform_from_bits(bits, dtype)  # (4, n) in [0, 1)
    return (u * 0.1 - 0.05).T  # Gymnasium's low + (high - low) * u, for (-0.05, 0.05)


def reset(
    params: Params,
    n: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``n`` start states ``(n, 4)``: ``(x, x_dot, theta, theta_dot)`` each uniform in (-0.05, 0.05).

    The ``(n, 4)`` tensor is a transposed view of ``(4, n)`` storage, so that :func:`step` reads
    and writes each variable as one contiguous vector (as Gymnasium's ``CartPoleVectorEnv`` does).
    """
    bits = random_bits(generator, 4, n, device)
    return start_states(params, bits, dtype)


def step(
    params: Params, state: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of every cart: ``(next_state, reward, terminated)``.

    Args:
        params: the physics.
        state: ``(N, 4)`` float ``(x, x_dot, theta, theta_dot)``; fastest as :func:`reset` lays
            it out (a transposed ``(4, N)`` tensor), correct for any layout. Not modified.
        actions: ``(N,)`` integers, 0 pushes left and 1 pushes right (assumed valid).

    Returns:
        ``next_state`` ``(N, 4)`` (laid out as :func:`reset`'s), ``reward`` ``(N,)`` in the
        state's dtype and ``terminated`` ``(N,)`` bool.
    """
    if compiling():
        return _step_functional(params, state, actions)
    # Gymnasium's expressions, each computed in place in Gymnasium's operand order (a * b as
    # b * a: IEEE-identical), so float64 matches bit for bit. Never ``torch.add(a, b, alpha=c)``
    # or ``addcmul``: their kernels fuse into an FMA that rounds once. At N=4096 a step costs
    # the number of torch calls (a few µs each), hence in-place ops on (2, N) and (4, N) blocks.
    k = _constants(params, state.dtype, state.device)
    columns = state.T  # (4, N): rows x, x_dot, theta, theta_dot; contiguous after reset()
    _, _, theta, theta_dot = columns.unbind(0)
    force = k.forces.index_select(0, actions)  # force_mag if action == 1 else -force_mag
    sintheta, costheta = sin_cos(theta)
    # temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
    temp = theta_dot * theta_dot
    temp.mul_(k.polemass_length).mul_(sintheta).add_(force).div_(k.total_mass)
    # thetaacc = (gravity * sintheta - costheta * temp)
    #            / (length * (4/3 - masspole * costheta**2 / total_mass))
    denominator = costheta * costheta
    denominator.mul_(k.masspole).div_(k.total_mass)
    torch.sub(k.four_thirds, denominator, out=denominator).mul_(k.length)
    # Time derivatives of (x, x_dot, theta, theta_dot), filled in place: (4, N).
    derivatives = torch.empty_like(columns, memory_format=torch.contiguous_format)
    derivatives[0::2] = columns[1::2]  # x_dot, theta_dot
    _, xacc, _, thetaacc = derivatives.unbind(0)
    torch.mul(sintheta, k.gravity, out=thetaacc)
    thetaacc.sub_(costheta * temp).div_(denominator)
    # xacc = temp - polemass_length * thetaacc * costheta / total_mass
    torch.mul(thetaacc, k.polemass_length, out=xacc)
    xacc.mul_(costheta).div_(k.total_mass)
    torch.sub(temp, xacc, out=xacc)

    out = torch.empty_like(derivatives)  # (4, N)
    if params.kinematics_integrator == "euler":
        torch.mul(derivatives, k.tau, out=out).add_(columns)  # s + tau * ds/dt
    else:  # semi-implicit euler: positions move with the updated velocities
        torch.mul(derivatives[1::2], k.tau, out=out[1::2]).add_(columns[1::2])
        torch.mul(out[1::2], k.tau, out=out[0::2]).add_(columns[0::2])
    # |x| > t is exactly (x < -t) | (x > t): negation is exact. Rows x and theta: (2, N).
    x_beyond, theta_beyond = (torch.abs(out[0::2]) > k.thresholds).unbind(0)
    terminated = x_beyond | theta_beyond  # not .any(dim=0): a reduction costs 4x more here
    if params.sutton_barto_reward:
        reward = terminated.to(state.dtype).neg_()
    else:
        reward = torch.ones_like(force)
    return out.T, reward, terminated


def _step_functional(
    params: Params, state: torch.Tensor, actions: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`step` out of place, for torch.compile: the same operations in the same order.

    Inductor turns :func:`step`'s in-place writes into strided views into one loop over the
    four state rows that recomputes every intermediate for each (4x the work, ~50x slower than
    this); one vector per variable fuses into a single pass. The compiled tests check that
    both spellings give the same bits (and CPU inductor emits no FMA: ``-ffp-contract=off``).
    """
    # The constants are built in the graph and folded (the lru_cache is for eager calls).
    k = _constants.__wrapped__(params, state.dtype, state.device)
    x, x_dot, theta, theta_dot = state.unbind(1)
    # The same two values as step()'s index_select, without a gather (scalarised by inductor).
    force = torch.where(actions == 1, k.forces[1], k.forces[0])
    sintheta, costheta = sin_cos(theta)
    temp = theta_dot * theta_dot * k.polemass_length * sintheta
    temp = (temp + force) / k.total_mass
    denominator = costheta * costheta * k.masspole / k.total_mass
    denominator = (k.four_thirds - denominator) * k.length
    thetaacc = (sintheta * k.gravity - costheta * temp) / denominator
    xacc = temp - thetaacc * k.polemass_length * costheta / k.total_mass
    if params.kinematics_integrator == "euler":
        new_x, new_x_dot = x_dot * k.tau + x, xacc * k.tau + x_dot
        new_theta, new_theta_dot = theta_dot * k.tau + theta, thetaacc * k.tau + theta_dot
    else:  # semi-implicit euler: positions move with the updated velocities
        new_x_dot, new_theta_dot = xacc * k.tau + x_dot, thetaacc * k.tau + theta_dot
        new_x, new_theta = new_x_dot * k.tau + x, new_theta_dot * k.tau + theta
    x_threshold, theta_threshold = k.thresholds.unbind(0)  # (1,) each
    terminated = (torch.abs(new_x) > x_threshold) | (torch.abs(new_theta) > theta_threshold)
    reward = -terminated.to(state.dtype) if params.sutton_barto_reward else torch.ones_like(force)
    # (4, N) storage seen as (N, 4), as reset() and step() lay the state out.
    return torch.stack((new_x, new_x_dot, new_theta, new_theta_dot)).T, reward, terminated


def observation(params: Params, state: torch.Tensor) -> torch.Tensor:
    """The ``(N, 4)`` observation: a copy of the state, so callers may modify it.

    The copy keeps the state's layout: after :func:`reset`/:func:`step` an ``(N, 4)`` view of
    ``(4, N)`` storage (not ``is_contiguous()``; ``.reshape`` rather than ``.view``). Making it
    row-major costs two transposing copies per step, ~40% of a step at N=4096.
    """
    del params
    return state.clone()


def draw(params: Params, state: np.ndarray | list[float]) -> np.ndarray:
    """A 600x400 ``(H, W, 3)`` uint8 frame of one cart-pole, drawn as Gymnasium draws it."""
    pygame = import_pygame()
    from pygame import gfxdraw

    width, height = 600, 400
    scale = width / (params.x_threshold * 2)
    polewidth, polelen = 10.0, scale * (2 * params.length)
    cartwidth, cartheight = 50.0, 30.0
    x = [float(v) for v in state]

    surf = new_canvas(width, height)
    left, right, top, bottom = -cartwidth / 2, cartwidth / 2, cartheight / 2, -cartheight / 2
    axleoffset = cartheight / 4.0
    cartx = x[0] * scale + width / 2.0  # middle of the cart
    carty = 100  # top of the cart
    cart = [(left, bottom), (left, top), (right, top), (right, bottom)]
    cart = [(cx + cartx, cy + carty) for cx, cy in cart]
    gfxdraw.aapolygon(surf, cart, (0, 0, 0))
    gfxdraw.filled_polygon(surf, cart, (0, 0, 0))

    left, right, top, bottom = (
        -polewidth / 2,
        polewidth / 2,
        polelen - polewidth / 2,
        -polewidth / 2,
    )
    pole = []
    for corner in [(left, bottom), (left, top), (right, top), (right, bottom)]:
        rotated = pygame.math.Vector2(corner).rotate_rad(-x[2])
        pole.append((rotated[0] + cartx, rotated[1] + carty + axleoffset))
    gfxdraw.aapolygon(surf, pole, (202, 152, 101))
    gfxdraw.filled_polygon(surf, pole, (202, 152, 101))

    axle = (int(cartx), int(carty + axleoffset), int(polewidth / 2))
    gfxdraw.aacircle(surf, *axle, (129, 132, 203))
    gfxdraw.filled_circle(surf, *axle, (129, 132, 203))
    gfxdraw.hline(surf, 0, width, carty, (0, 0, 0))
    # Drawn with y up, as Gymnasium does; pygame's y axis points down.
    return surface_to_array(pygame.transform.flip(surf, False, True))


_DOCSTRING = """
    ## Description

    Gymnasium's CartPole-v1 (Barto, Sutton & Anderson, 1983) as batched torch code. A pole is
    attached by an un-actuated joint to a cart on a frictionless track; pushing the cart left or
    right keeps the pole upright. Dynamics, rewards, termination and spaces are Gymnasium's, bit
    for bit in float64 on the CPU.

    ## Action Space

    `Discrete(2)`: 0 pushes the cart to the left, 1 to the right, with a fixed force of 10 N.

    ## Observation Space

    `Box(4,)` float32:

    | Num | Observation           | Min                 | Max               |
    |-----|-----------------------|---------------------|-------------------|
    | 0   | Cart Position         | -4.8                | 4.8               |
    | 1   | Cart Velocity         | -Inf                | Inf               |
    | 2   | Pole Angle            | ~ -0.418 rad (-24°) | ~ 0.418 rad (24°) |
    | 3   | Pole Angular Velocity | -Inf                | Inf               |

    The bounds are twice the termination bounds, so the state an episode ends on fits.

    ## Rewards

    +1 for every step, the terminating step included. With `sutton_barto_reward=True`, 0 per
    step and -1 on the terminating step.

    ## Starting State

    Every state variable uniform in (-0.05, 0.05).

    ## Episode End

    1. Termination: the pole angle leaves ±12°.
    2. Termination: the cart position leaves ±2.4.
    3. Truncation: 500 steps (`max_episode_steps`).

    ## Arguments

    | Argument              | Default         | Meaning                                           |
    |-----------------------|-----------------|---------------------------------------------------|
    | `sutton_barto_reward` | `False`         | 0 per step, -1 on termination                     |
    | `render_mode`         | `None`          | {render_modes}                                    |
{extra_arguments}
    ## Batched Semantics

    {batched}

    ## Version History

    * v1 (sandbox): Gymnasium's CartPole-v1 as batched torch code. Reset options (`low`,
      `high`) are not supported.
"""

_VECTOR_ARGUMENTS = """\
    | `num_envs`            | `1`             | N, the number of carts stepped together           |
    | `device`              | `"cpu"`         | torch device of every tensor in and out           |
    | `dtype`               | `torch.float32` | float dtype of state, observations and rewards    |
    | `max_episode_steps`   | `500`           | truncation step count (`None`: never truncate)    |
    | `validate_actions`    | `True`          | check action values (one host sync per step on CUDA) |
    | `compile`             | `False`         | `True`/`"auto"`: one compiled graph per step      |
"""


class CartPoleVectorEnv(TorchVectorEnv):
    __doc__ = "N cart-poles stepped together as torch tensors on one device.\n" + _DOCSTRING.format(
        render_modes='`"rgb_array"` (`render()` gives the first 16 rows\' frames)',
        extra_arguments=_VECTOR_ARGUMENTS,
        batched=(
            "Actions `(N,)` integers; observations `(N, 4)` (an `(N, 4)` view of `(4, N)` "
            "storage, so each variable is contiguous: `.reshape`, not `.view`), rewards `(N,)` "
            "in `dtype`, `terminated`/`truncated` `(N,)` bool, all on `device`. With "
            "`validate_actions=False` an out-of-range action is not checked: the eager step "
            "raises an indexing error (on CUDA a device-side assert), the compiled one reads "
            "it as a push left. Autoreset is SAME_STEP: "
            'a finished row is reset inside `step`, its last observation in `info["final_obs"]` '
            '(mask `info["_final_obs"]`), its return and length in `info["episode"]`. One '
            "`torch.Generator`, seeded by `reset(seed=...)`, draws the start states at `reset` "
            "and the key of the hash that draws autoreset start states: a seed fixes every "
            "trajectory, eager or compiled (`compile`), and autoreset draws are the same on "
            "every device."
        ),
    )

    env_name: ClassVar[str] = "sandbox/CartPole-v1"
    start_lanes: ClassVar[int] = 4
    metadata: ClassVar[dict[str, Any]] = {**TorchVectorEnv.metadata, "render_fps": 50}

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = 500,
        render_mode: str | None = None,
        validate_actions: bool = True,
        sutton_barto_reward: bool = False,
        compile: bool | str = False,
    ) -> None:
        flag = check_flag(sutton_barto_reward, "sutton_barto_reward", self.env_name)
        self.params = Params(sutton_barto_reward=flag)
        self.single_observation_space = observation_space(self.params)
        self.single_action_space = spaces.Discrete(2)
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
        """Arguments that make a :class:`CartPoleEnv` with this env's physics."""
        return {"sutton_barto_reward": self.params.sutton_barto_reward}

    def _start_states(self, bits: torch.Tensor) -> torch.Tensor:
        return start_states(self.params, bits, self.dtype)

    def _transition(
        self, state: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        next_state, reward, terminated = step(self.params, state, actions)
        return next_state, reward, terminated, {}

    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return observation(self.params, state)

    def _render_state(self, state_row: torch.Tensor) -> np.ndarray:
        return draw(self.params, state_row[0].tolist())


class CartPoleEnv(TorchSingleEnv):
    __doc__ = "One cart-pole as a numpy `gymnasium.Env` (float64 core on the CPU).\n" + (
        _DOCSTRING.format(
            render_modes='`"human"` (pygame window) or `"rgb_array"` (600x400 frames)',
            extra_arguments="",
            batched=(
                "None: N=1, numpy in and out. The dynamics are the same functions, run in "
                "float64, as every row of `CartPoleVectorEnv`. `env.unwrapped.state` reads and "
                "sets the float64 state `(x, x_dot, theta, theta_dot)` as in Gymnasium. Stepping "
                "after termination continues the physics with reward 0 (-1 with "
                "`sutton_barto_reward`) and a warning, as Gymnasium does."
            ),
        )
    )

    vector_cls: ClassVar[type[TorchVectorEnv]] = CartPoleVectorEnv
    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": 50}

    def __init__(self, sutton_barto_reward: bool = False, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode, sutton_barto_reward=sutton_barto_reward)
        self.params: Params = self.core.params

    @property
    def state(self) -> np.ndarray:
        """The float64 state ``(x, x_dot, theta, theta_dot)``, a copy; assignable."""
        return self._state[0].numpy().copy()

    @state.setter
    def state(self, value: Any) -> None:
        try:
            array = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            array = np.full(4, np.nan)  # reported below
        if array.shape != (4,) or not np.isfinite(array).all():
            raise ValueError(
                f"{self.env_name}: state must be 4 finite numbers (x, x_dot, theta, theta_dot), "
                f"got {value!r}"
            )
        self._set_state_row(array)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = super().step(action)  # warns past the end
        if terminated and self.steps_beyond_terminated:
            reward = -1.0 if self.params.sutton_barto_reward else 0.0
        return obs, reward, terminated, truncated, info
