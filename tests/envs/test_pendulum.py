"""sandbox/Pendulum-v1 against Gymnasium's own Pendulum: bit-exact in float64.

Gymnasium has no vector Pendulum, so the vector env's rows are checked against one Gymnasium
env each (32,000 transitions: Gymnasium's Python step takes ~20 µs), and the single env
against ``gymnasium.make("Pendulum-v1")`` trajectory by trajectory. At every reset Gymnasium's
state is set from ours (``env.unwrapped.state = ...``).

Actions are float64 arrays here. Given float32 actions, Gymnasium computes its torque terms in
float32 (NumPy 2 promotes ``3.0 * np.float32`` to float32) while we compute in float64, a
difference of about 1e-7 relative that :func:`test_float32_actions_are_close_to_gymnasium`
bounds.
"""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.envs.classic_control.pendulum import PendulumEnv as GymPendulumEnv

import envs  # noqa: F401  (registers sandbox/Pendulum-v1)
from envs import pendulum
from envs.pendulum import Params, PendulumEnv, PendulumVectorEnv


def test_params_and_spaces_are_gymnasiums() -> None:
    theirs = GymPendulumEnv()
    params = Params()
    assert (params.g, params.m, params.l, params.dt) == (theirs.g, theirs.m, theirs.l, theirs.dt)
    assert (params.max_speed, params.max_torque) == (theirs.max_speed, theirs.max_torque)
    ours = PendulumEnv()
    assert ours.observation_space == theirs.observation_space
    assert ours.action_space == theirs.action_space
    assert gymnasium.spec("sandbox/Pendulum-v1").max_episode_steps == 200


@pytest.mark.parametrize("g", [10.0, 9.81])
def test_single_env_trajectories_equal_gymnasium_float64(g: float) -> None:
    ours = gymnasium.make("sandbox/Pendulum-v1", g=g)
    theirs = gymnasium.make("Pendulum-v1", g=g)
    rng = np.random.default_rng(0)
    truncations = 0
    for episode in range(4 if g == 10.0 else 1):
        obs, _ = ours.reset(seed=episode)
        theirs.reset(seed=episode)
        theirs.unwrapped.state = ours.unwrapped.state
        truncated = False
        while not truncated:
            # Out-of-range torques too: both clip them to [-2, 2].
            action = rng.uniform(-3.0, 3.0, size=(1,))
            obs, reward, terminated, truncated, _ = ours.step(action)
            g_obs, g_reward, g_terminated, g_truncated, _ = theirs.step(action)
            assert obs.dtype == g_obs.dtype == np.float32
            assert np.array_equal(obs, g_obs)
            assert np.array_equal(ours.unwrapped.state, theirs.unwrapped.state)
            assert (reward, terminated, truncated) == (g_reward, g_terminated, g_truncated)
            assert ours.unwrapped.last_u == theirs.unwrapped.last_u
        truncations += 1
    assert truncations >= 1


def test_vector_env_rows_equal_gymnasium_float64() -> None:
    num_envs, num_steps = 40, 800  # 32,000 transitions, 4 episodes per row
    ours = PendulumVectorEnv(num_envs, dtype=torch.float64)
    theirs = [GymPendulumEnv() for _ in range(num_envs)]
    ours.reset(seed=0)
    for row, env in enumerate(theirs):
        env.reset(seed=row)
        env.state = ours.state[row].numpy().copy()
    rng = np.random.default_rng(1)
    truncations = 0
    g_obs = np.empty((num_envs, 3), dtype=np.float32)
    g_reward = np.empty(num_envs)
    for t in range(num_steps):
        actions = rng.uniform(-2.5, 2.5, size=(num_envs, 1))
        _, reward, terminated, truncated, info = ours.step(torch.from_numpy(actions))
        for row, env in enumerate(theirs):
            g_obs[row], g_reward[row], *_ = env.step(actions[row])
        assert np.array_equal(info["final_obs"].numpy().astype(np.float32), g_obs), t
        assert np.array_equal(reward.numpy(), g_reward), t
        assert not terminated.any()
        assert bool(truncated.all()) == ((t + 1) % 200 == 0)
        if truncated.any():
            truncations += 1
            for row, env in enumerate(theirs):
                env.state = ours.state[row].numpy().copy()
    assert truncations == num_steps // 200


def test_vector_env_float32_is_close_to_gymnasium() -> None:
    num_envs = 32
    ours = PendulumVectorEnv(num_envs)  # float32
    theirs = [GymPendulumEnv() for _ in range(num_envs)]
    for env in theirs:
        env.reset(seed=0)
    ours.reset(seed=0)
    rng = np.random.default_rng(2)
    for t in range(50):
        states = ours.state.numpy().astype(np.float64)
        actions = rng.uniform(-2.0, 2.0, size=(num_envs, 1)).astype(np.float32)
        obs, reward, _, _, _ = ours.step(torch.from_numpy(actions))
        for row, env in enumerate(theirs):
            env.state = states[row].copy()
            g_obs, g_reward, _, _, _ = env.step(actions[row].astype(np.float64))
            np.testing.assert_allclose(obs[row].numpy(), g_obs, rtol=1e-5, atol=1e-5, err_msg=t)
            assert math.isclose(reward[row].item(), g_reward, rel_tol=1e-5, abs_tol=1e-5)


def test_float32_actions_are_close_to_gymnasium() -> None:
    ours, theirs = PendulumEnv(), GymPendulumEnv()
    ours.reset(seed=0)
    theirs.reset(seed=0)
    rng = np.random.default_rng(3)
    for _ in range(200):
        ours.state = theirs.state  # one step from the same state each time
        action = rng.uniform(-2.0, 2.0, size=(1,)).astype(np.float32)
        obs, reward, *_ = ours.step(action)
        g_obs, g_reward, *_ = theirs.step(action)
        np.testing.assert_allclose(obs, g_obs, rtol=1e-6, atol=1e-6)
        assert math.isclose(reward, g_reward, rel_tol=1e-7, abs_tol=1e-9)


def test_pure_functions() -> None:
    params = Params()
    generator = torch.Generator().manual_seed(0)
    state = pendulum.reset(params, 20_000, generator, dtype=torch.float64)
    assert state.shape == (20_000, 2)
    assert float(state[:, 0].abs().max()) <= math.pi and float(state[:, 1].abs().max()) <= 1.0
    assert float(state[:, 0].abs().max()) > 3.1 and float(state[:, 1].abs().max()) > 0.99
    before = state.clone()
    actions = torch.full((20_000, 1), 5.0, dtype=torch.float64)  # clipped to max_torque
    next_state, reward, terminated = pendulum.step(params, state, actions)
    assert torch.equal(state, before), "step must not modify its input"
    assert not terminated.any() and terminated.dtype == torch.bool
    assert float(next_state[:, 1].abs().max()) <= params.max_speed
    assert float(reward.max()) <= 0.0 and float(reward.min()) >= -16.2736044
    clipped = pendulum.step(params, state, actions.clamp(max=2.0))
    assert torch.equal(next_state, clipped[0]) and torch.equal(reward, clipped[1])
    obs = pendulum.observation(params, state)
    assert torch.equal(obs[:, 0] ** 2 + obs[:, 1] ** 2 - 1 < 1e-12, torch.ones(20_000).bool())
    angles = torch.tensor([-3 * math.pi, -math.pi, 0.0, math.pi, 7.0], dtype=torch.float64)
    wrapped = pendulum.angle_normalize(angles)
    assert bool((wrapped >= -math.pi).all() and (wrapped < math.pi).all())


def test_state_attribute_reads_and_sets_like_gymnasiums() -> None:
    env = gymnasium.make("sandbox/Pendulum-v1")
    env.reset(seed=0)
    state = env.unwrapped.state
    assert state.dtype == np.float64 and state.shape == (2,)
    env.unwrapped.state = np.array([math.pi, 0.0])  # hanging straight down, at rest
    obs, reward, *_ = env.step(np.array([0.0]))
    assert obs[0] == pytest.approx(-1.0) and reward == pytest.approx(-(math.pi**2), rel=1e-9)
    for bad in ([1.0], [0.0, np.inf], None):
        with pytest.raises(ValueError, match="Pendulum"):
            env.unwrapped.state = bad


def test_bad_params_are_rejected() -> None:
    with pytest.raises(ValueError, match="dt"):
        Params(dt=0.0)
    with pytest.raises(ValueError, match="Pendulum-v1"):
        PendulumVectorEnv(2, g=float("nan"))


def test_frames_are_gymnasiums_pixels() -> None:
    ours = PendulumEnv(render_mode="rgb_array")
    theirs = GymPendulumEnv(render_mode="rgb_array")
    vector = PendulumVectorEnv(2, dtype=torch.float64, render_mode="rgb_array")
    ours.reset(seed=0)
    theirs.reset(seed=0)
    theirs.state = ours.state
    assert np.array_equal(ours.render(), theirs.render()), "no torque arrow before a step"
    for theta, torque in ((0.0, 1.0), (2.0, -0.3), (-1.2, 2.0)):
        ours.state = np.array([theta, 0.0])
        theirs.state = np.array([theta, 0.0])
        ours.step(np.array([torque]))
        theirs.step(np.array([torque]))
        frame = ours.render()
        assert frame.shape == (500, 500, 3) and frame.dtype == np.uint8
        assert np.array_equal(frame, theirs.render())
        vector.state = torch.tensor([[0.0, 0.0], ours.state.tolist()], dtype=torch.float64)
        vector._last_actions = torch.tensor([[0.0], [torque]], dtype=torch.float64)
        assert np.array_equal(vector.render_row(1), frame)
    theirs.close()
