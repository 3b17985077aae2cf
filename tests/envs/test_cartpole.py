"""sandbox/CartPole-v1 against Gymnasium's own CartPole: bit-exact in float64.

Over 110,000 transitions in all: the single env against ``gymnasium.make("CartPole-v1")``
trajectory by trajectory (a few thousand steps: the single env costs ~100 µs a step), and the
vector env against Gymnasium's numpy ``CartPoleVectorEnv`` row by row (the bulk). Gymnasium's start states come from another generator, so at every reset Gymnasium's
state is set from ours (``env.unwrapped.state = ...``); after that both run freely (single env),
or Gymnasium is handed our state before every step (vector env: equal next states at every
step then imply equal trajectories).
"""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv as GymCartPoleEnv
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv as GymCartPoleVectorEnv

import envs  # noqa: F401  (registers sandbox/CartPole-v1)
from envs import cartpole
from envs.cartpole import CartPoleEnv, CartPoleVectorEnv, Params


def balancing_action(state: np.ndarray, rng: np.random.Generator, epsilon: float) -> int:
    """Mostly keep the pole up (so some episodes reach the 500-step limit), sometimes random."""
    if rng.random() < epsilon:
        return int(rng.integers(2))
    _, x_dot, theta, theta_dot = state
    return int(theta + 0.5 * theta_dot + 0.01 * x_dot > 0)


def test_params_and_spaces_are_gymnasiums() -> None:
    gym_env = GymCartPoleEnv()
    params = Params()
    for name in (
        "gravity",
        "masscart",
        "masspole",
        "total_mass",
        "length",
        "polemass_length",
        "force_mag",
        "tau",
        "kinematics_integrator",
        "theta_threshold_radians",
        "x_threshold",
    ):
        assert getattr(params, name) == getattr(gym_env, name), name
    env = CartPoleEnv()
    assert env.observation_space == gym_env.observation_space
    assert env.action_space == gym_env.action_space
    assert gymnasium.spec("sandbox/CartPole-v1").max_episode_steps == 500


@pytest.mark.parametrize(("sutton_barto_reward", "num_steps"), [(False, 2_000), (True, 600)])
def test_single_env_trajectories_equal_gymnasium_float64(
    sutton_barto_reward: bool, num_steps: int
) -> None:
    ours = gymnasium.make("sandbox/CartPole-v1", sutton_barto_reward=sutton_barto_reward)
    theirs = gymnasium.make("CartPole-v1", sutton_barto_reward=sutton_barto_reward)
    rng = np.random.default_rng(0)
    steps = episodes = truncations = 0
    while steps < num_steps:
        obs, _ = ours.reset(seed=episodes)
        theirs.reset(seed=episodes)
        theirs.unwrapped.state = ours.unwrapped.state
        epsilon = (0.0, 1.0, 0.1, 1.0)[episodes % 4]  # episode 0 runs to the time limit
        done = False
        while not done:
            action = balancing_action(ours.unwrapped.state, rng, epsilon)
            obs, reward, terminated, truncated, _ = ours.step(action)
            g_obs, g_reward, g_terminated, g_truncated, _ = theirs.step(action)
            assert obs.dtype == g_obs.dtype == np.float32
            assert np.array_equal(obs, g_obs), (episodes, steps)
            assert np.array_equal(ours.unwrapped.state, theirs.unwrapped.state), (episodes, steps)
            assert (reward, terminated, truncated) == (g_reward, g_terminated, g_truncated)
            done = terminated or truncated
            steps += 1
            truncations += truncated
        episodes += 1
    assert truncations > 0, "no episode reached the time limit: truncation went untested"
    assert episodes > 2


@pytest.mark.parametrize(("sutton_barto_reward", "num_steps"), [(False, 550), (True, 100)])
def test_vector_env_rows_equal_gymnasium_vector_env_float64(
    sutton_barto_reward: bool, num_steps: int
) -> None:
    num_envs = 160  # x 550 steps: 88,000 transitions, some rows running to the time limit
    ours = CartPoleVectorEnv(num_envs, dtype=torch.float64, sutton_barto_reward=sutton_barto_reward)
    theirs = GymCartPoleVectorEnv(num_envs, sutton_barto_reward=sutton_barto_reward)
    theirs.reset(seed=0)
    obs, _ = ours.reset(seed=0)
    lengths = np.zeros(num_envs, dtype=np.int32)
    rng = np.random.default_rng(1)
    epsilon = rng.choice([0.0, 0.05, 1.0], size=num_envs)
    finished = truncations = 0
    for t in range(num_steps):
        state = obs.numpy()
        controller = (state[:, 2] + 0.5 * state[:, 3] + 0.01 * state[:, 1] > 0).astype(np.int64)
        actions = np.where(rng.random(num_envs) < epsilon, rng.integers(0, 2, num_envs), controller)
        # Gymnasium steps from our state; its NEXT_STEP autoreset is disarmed (prev_done) since
        # ours resets rows in the same step.
        theirs.state = state.T.copy()
        theirs.steps = lengths.copy()
        theirs.prev_done[:] = False
        g_obs, g_reward, g_terminated, g_truncated, _ = theirs.step(actions)
        obs, reward, terminated, truncated, info = ours.step(torch.from_numpy(actions))
        # final_obs holds every row's pre-reset observation (valid where _final_obs).
        assert np.array_equal(info["final_obs"].numpy(), theirs.state.T), t
        assert np.array_equal(info["final_obs"].numpy().astype(np.float32), g_obs), t
        assert np.array_equal(reward.numpy(), g_reward.astype(np.float64)), t
        assert np.array_equal(terminated.numpy(), g_terminated), t
        assert np.array_equal(truncated.numpy(), g_truncated), t
        done = (terminated | truncated).numpy()
        lengths = np.where(done, 0, lengths + 1).astype(np.int32)
        finished += int(done.sum())
        truncations += int(truncated.sum())
    assert finished > num_steps // 2
    assert truncations > 0 or num_steps < 500


def test_vector_env_float32_is_close_to_gymnasium() -> None:
    num_envs, num_steps = 256, 100
    ours = CartPoleVectorEnv(num_envs)  # float32
    theirs = GymCartPoleVectorEnv(num_envs)
    theirs.reset(seed=0)
    obs, _ = ours.reset(seed=0)
    rng = np.random.default_rng(2)
    params = Params()
    for t in range(num_steps):
        actions = rng.integers(0, 2, num_envs)
        theirs.state = obs.numpy().astype(np.float64).T.copy()
        theirs.prev_done[:] = False
        _, g_reward, g_terminated, _, _ = theirs.step(actions)
        obs, reward, terminated, _, info = ours.step(torch.from_numpy(actions))
        assert obs.dtype == reward.dtype == torch.float32
        expected = theirs.state.T
        np.testing.assert_allclose(info["final_obs"].numpy(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(reward.numpy(), g_reward)
        # float32 rounding may only flip termination right at a threshold.
        margin = np.minimum(
            np.abs(np.abs(expected[:, 0]) - params.x_threshold),
            np.abs(np.abs(expected[:, 2]) - params.theta_threshold_radians),
        )
        mismatch = terminated.numpy() != g_terminated
        assert (margin[mismatch] < 1e-5).all(), t


@pytest.mark.parametrize("integrator", ["euler", "semi-implicit euler"])
def test_pure_step_equals_gymnasium_for_either_integrator_and_any_layout(integrator: str) -> None:
    params = Params(kinematics_integrator=integrator)
    theirs = GymCartPoleVectorEnv(500)
    theirs.reset(seed=0)
    theirs.kinematics_integrator = integrator
    rng = np.random.default_rng(3)
    for layout in ("columns", "rows"):
        state = torch.from_numpy(rng.normal(scale=0.3, size=(500, 4)))  # row-major (N, 4)
        if layout == "columns":
            state = state.T.contiguous().T
        before = state.clone()
        actions = rng.integers(0, 2, 500)
        theirs.state = state.numpy().T.copy()
        theirs.prev_done[:] = False
        _, _, g_terminated, _, _ = theirs.step(actions)
        next_state, reward, terminated = cartpole.step(params, state, torch.from_numpy(actions))
        assert torch.equal(state, before), "step must not modify its input"
        assert np.array_equal(next_state.numpy(), theirs.state.T)
        assert np.array_equal(terminated.numpy(), g_terminated)
        assert torch.equal(reward, torch.ones(500, dtype=torch.float64))


def test_reset_draws_uniform_start_states_from_the_generator() -> None:
    generator = torch.Generator().manual_seed(0)
    state = cartpole.reset(Params(), 10_000, generator, dtype=torch.float64)
    assert state.shape == (10_000, 4) and state.dtype == torch.float64
    assert bool((state.abs() < 0.05).all())
    assert bool((state.abs().amax(dim=0) > 0.049).all()), "the whole (-0.05, 0.05) range is used"
    again = cartpole.reset(Params(), 10_000, torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(state, again)


def test_stepping_after_termination_is_gymnasiums() -> None:
    for sutton_barto_reward in (False, True):
        ours = CartPoleEnv(sutton_barto_reward=sutton_barto_reward)
        theirs = GymCartPoleEnv(sutton_barto_reward=sutton_barto_reward)
        ours.reset(seed=0)
        theirs.reset(seed=0)
        theirs.state = ours.state
        terminated = False
        while not terminated:  # Always pushing right topples the pole within ~10 steps.
            _, reward, terminated, _, _ = ours.step(1)
            _, g_reward, _, _, _ = theirs.step(1)
            assert reward == g_reward
        with pytest.warns(UserWarning, match="after the episode terminated"):
            _, reward, terminated, _, _ = ours.step(1)
        with pytest.warns(UserWarning):
            _, g_reward, g_terminated, _, _ = theirs.step(1)
        assert (reward, terminated) == (g_reward, g_terminated)
        assert reward == (-1.0 if sutton_barto_reward else 0.0)


def test_state_attribute_reads_and_sets_like_gymnasiums() -> None:
    env = gymnasium.make("sandbox/CartPole-v1")
    env.reset(seed=0)
    state = env.unwrapped.state
    assert state.dtype == np.float64 and state.shape == (4,)
    state[0] = 1.0  # a copy: the env is unaffected
    assert env.unwrapped.state[0] != 1.0
    start = np.array([0.1, -0.2, 0.05, 0.3])
    env.unwrapped.state = start
    theirs = GymCartPoleEnv()
    theirs.reset(seed=0)
    theirs.state = start.copy()
    obs, *_ = env.step(0)
    g_obs, *_ = theirs.step(0)
    assert np.array_equal(obs, g_obs)
    assert np.array_equal(env.unwrapped.state, theirs.state)
    for bad in ([1.0, 2.0], [0.0, 0.0, np.nan, 0.0], "abcd"):
        with pytest.raises(ValueError, match="CartPole"):
            env.unwrapped.state = bad


def test_bad_params_are_rejected() -> None:
    with pytest.raises(ValueError, match="masspole"):
        Params(masspole=0.0)
    with pytest.raises(ValueError, match="kinematics_integrator"):
        Params(kinematics_integrator="rk4")


def test_frames_are_gymnasiums_pixels() -> None:
    ours = CartPoleEnv(render_mode="rgb_array")
    theirs = GymCartPoleEnv(render_mode="rgb_array")
    vector = CartPoleVectorEnv(2, dtype=torch.float64, render_mode="rgb_array")
    ours.reset(seed=0)
    theirs.reset(seed=0)
    for state in ([0.0, 0.0, 0.0, 0.0], [-1.3, 0.2, 0.15, -0.4], [2.0, 0.0, -0.2, 0.0]):
        ours.state = np.array(state)
        theirs.state = np.array(state)
        frame = ours.render()
        assert frame.shape == (400, 600, 3) and frame.dtype == np.uint8
        assert np.array_equal(frame, theirs.render())
        vector.state = torch.tensor([state, state], dtype=torch.float64)
        assert np.array_equal(vector.render_row(1), frame)
    theirs.close()
