"""The numpy → torch adapter: SAME_STEP semantics, dense final_obs, episode statistics."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the sandbox ids)
from rl.evaluation import evaluate
from rl.vector import NumpyToTorchVectorEnv, make_vector_env


def test_cartpole_through_the_adapter_matches_gymnasium() -> None:
    env = make_vector_env("CartPole-v1", 3)
    assert isinstance(env, NumpyToTorchVectorEnv)
    reference = gymnasium.make_vec(
        "CartPole-v1",
        3,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
    )
    obs, _ = env.reset(seed=5)
    ref_obs, _ = reference.reset(seed=5)
    np.testing.assert_array_equal(obs.numpy(), ref_obs)
    rng = np.random.default_rng(0)
    returns = np.zeros(3)
    finished = 0
    for _ in range(300):
        actions = rng.integers(0, 2, size=3)
        obs, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
        ref_obs, ref_reward, ref_term, ref_trunc, ref_info = reference.step(actions)
        np.testing.assert_array_equal(obs.numpy(), ref_obs)
        np.testing.assert_array_equal(terminated.numpy(), ref_term)
        np.testing.assert_array_equal(truncated.numpy(), ref_trunc)
        assert obs.dtype == torch.float32 and reward.dtype == torch.float32
        returns += ref_reward
        done = ref_term | ref_trunc
        np.testing.assert_array_equal(info["_final_obs"].numpy(), done)
        for i in np.flatnonzero(done):
            np.testing.assert_array_equal(info["final_obs"][i].numpy(), ref_info["final_obs"][i])
            assert info["episode"]["r"][i].item() == returns[i]
            finished += 1
        # Rows that did not finish hold their current observation.
        np.testing.assert_array_equal(
            info["final_obs"][~info["_final_obs"]].numpy(), ref_obs[~done]
        )
        returns[done] = 0.0
    assert finished > 5
    env.close()


def test_continuous_actions_are_clipped() -> None:
    env = make_vector_env("Pendulum-v1", 2)
    env.reset(seed=0)
    obs, reward, *_ = env.step(torch.tensor([[100.0], [-100.0]]))
    assert obs.shape == (2, 3) and reward.shape == (2,)
    env.close()


def test_bad_requests() -> None:
    with pytest.raises(ValueError, match="unknown environment"):
        make_vector_env("NoSuchEnv-v0", 2)
    with pytest.raises(ValueError, match="num_envs"):
        make_vector_env("CartPole-v1", 0)
    with pytest.raises(ValueError, match="Box"):
        make_vector_env("FrozenLake-v1", 2)


def test_evaluate_counts_each_rows_first_episode() -> None:
    result = evaluate(
        lambda obs: torch.zeros(obs.shape[0], dtype=torch.long), "CartPole-v1", episodes=7, seed=1
    )
    assert result.episodes == 7
    assert all(8 <= length <= 12 for length in result.lengths)
    assert result.returns == [float(length) for length in result.lengths]
    assert result.success_rate is None
    data = result.to_json()
    assert data["episodes"] == 7 and data["mean_return"] == pytest.approx(np.mean(result.lengths))


class _SaysSuccess(gymnasium.Wrapper):
    """CartPole whose last step's info says ``is_success`` (it lasted to the time limit)."""

    def step(self, action):  # type: ignore[no-untyped-def]
        obs, reward, terminated, truncated, info = self.env.step(action)
        if terminated or truncated:
            info = {**info, "is_success": bool(truncated and not terminated)}
        return obs, reward, terminated, truncated, info


def test_the_finished_rows_last_info_passes_through() -> None:
    vector = gymnasium.vector.SyncVectorEnv(
        [lambda: _SaysSuccess(gymnasium.make("CartPole-v1")) for _ in range(3)],
        autoreset_mode=gymnasium.vector.AutoresetMode.SAME_STEP,
    )
    env = NumpyToTorchVectorEnv(vector)
    env.reset(seed=0)
    seen = 0
    for _ in range(60):
        *_, info = env.step(torch.zeros(3, dtype=torch.long))  # always left: ends in ~10 steps
        done = info["_final_obs"].numpy()
        if done.any():
            np.testing.assert_array_equal(info["_final_info"], done)
            np.testing.assert_array_equal(info["final_info"]["_is_success"], done)
            seen += int(done.sum())
    assert seen >= 3
    env.close()


@pytest.mark.parametrize("env_id", ["sandbox/CartPole-v1", "CartPole-v1"])
def test_arguments_an_env_does_not_take_are_a_value_error_naming_them(env_id: str) -> None:
    with pytest.raises(ValueError, match=rf"{env_id} takes no argument 'foo'; its arguments"):
        make_vector_env(env_id, 2, env_kwargs={"foo": 1})
    with pytest.raises(ValueError, match="env_kwargs must be a dict"):
        make_vector_env(env_id, 2, env_kwargs="x")  # type: ignore[arg-type]


def test_a_sandbox_id_before_import_envs_says_to_import_it() -> None:
    """A fresh interpreter (this one imported envs): the core does not import envs itself."""
    import subprocess
    import sys

    script = (
        "from rl.vector import make_vector_env\n"
        "try:\n"
        "    make_vector_env('sandbox/CartPole-v1', 2)\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "print(make_vector_env('envs:sandbox/CartPole-v1', 2).num_envs)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    assert "registered by `import envs`" in out and "'envs:sandbox/CartPole-v1'" in out
    assert out.splitlines()[-1] == "2"


def test_an_env_the_adapter_refuses_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    make_vec = gymnasium.make_vec
    monkeypatch.setattr(
        gymnasium, "make_vec", lambda *a, **k: made.append(make_vec(*a, **k)) or made[-1]
    )
    with pytest.raises(ValueError, match="Box"):
        make_vector_env("FrozenLake-v1", 2)
    assert len(made) == 1 and made[0].closed


def test_a_users_torch_vector_env_registered_by_string_is_used_natively(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Registered the way the sandbox registers its own ("module:Class"), from a module outside
    # envs/: it went through the numpy adapter (a SyncVectorEnv of single float64 CPU envs).
    (tmp_path / "my_torch_envs.py").write_text(
        "from envs.cartpole import CartPoleEnv, CartPoleVectorEnv\n"
        "class MyVectorEnv(CartPoleVectorEnv):\n"
        "    env_name = 'my/TorchCartPole-v0'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    gymnasium.register(
        "my/TorchCartPole-v0",
        entry_point="envs.cartpole:CartPoleEnv",
        vector_entry_point="my_torch_envs:MyVectorEnv",
        max_episode_steps=500,
    )
    try:
        env = make_vector_env("my/TorchCartPole-v0", 4)
        assert type(env).__name__ == "MyVectorEnv" and not isinstance(env, NumpyToTorchVectorEnv)
        env.close()
        # Gymnasium's own numpy vector entry points still go through the adapter.
        gym_env = make_vector_env("CartPole-v1", 2)
        assert isinstance(gym_env, NumpyToTorchVectorEnv)
        gym_env.close()
    finally:
        del gymnasium.registry["my/TorchCartPole-v0"]
