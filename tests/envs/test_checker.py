"""envs.check_vector_env: passes the sandbox's envs and catches each kind of broken env."""

from __future__ import annotations

from typing import Any

import gymnasium
import pytest
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv as GymCartPoleVectorEnv

from envs import check_vector_env
from envs.cartpole import CartPoleEnv, CartPoleVectorEnv
from envs.checker import VectorEnvCheckError, find_single_env
from envs.pendulum import PendulumEnv, PendulumVectorEnv

ALL_CHECKS = [
    "spaces",
    "reset",
    "step",
    "autoreset",
    "episode_stats",
    "determinism",
    "single_env",
    "bad_actions",
]


@pytest.mark.parametrize("vector_cls", [CartPoleVectorEnv, PendulumVectorEnv])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sandbox_envs_pass_every_check(vector_cls: type, dtype: torch.dtype) -> None:
    env = vector_cls(5, dtype=dtype, max_episode_steps=30)
    assert check_vector_env(env, num_steps=64) == ALL_CHECKS


def test_single_env_is_found_with_the_vector_envs_physics() -> None:
    single = find_single_env(PendulumVectorEnv(2, g=3.0))
    assert isinstance(single, PendulumEnv) and single.params.g == 3.0
    single = find_single_env(CartPoleVectorEnv(2, sutton_barto_reward=True))
    assert isinstance(single, CartPoleEnv) and single.params.sutton_barto_reward
    single = find_single_env(gymnasium.make_vec("sandbox/Pendulum-v1", num_envs=2, g=4.0))
    assert single is not None and single.params.g == 4.0


# -- deliberately broken envs: each breaks one rule, and the checker must name it -----------
class ActionSpaceNotBatched(CartPoleVectorEnv):
    def __init__(self, num_envs: int = 4, **kwargs: Any) -> None:
        super().__init__(num_envs, **kwargs)
        self.action_space = self.single_action_space


class Float64ObsInFloat32Env(CartPoleVectorEnv):
    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return super()._observe(state).double()


class ObsOutsideItsSpace(CartPoleVectorEnv):
    def _observe(self, state: torch.Tensor) -> torch.Tensor:
        return super()._observe(state) * 100.0


class Float64Reward(CartPoleVectorEnv):
    def _transition(self, state: torch.Tensor, actions: torch.Tensor) -> Any:
        next_state, reward, terminated, info = super()._transition(state, actions)
        return next_state, reward.double(), terminated, info


class MergedTerminatedTruncated(CartPoleVectorEnv):
    def step(self, actions: Any) -> Any:
        obs, reward, terminated, truncated, info = super().step(actions)
        done = terminated | truncated
        return obs, reward, done, done, info


class FinalObsOnlyWhereDone(CartPoleVectorEnv):
    def step(self, actions: Any) -> Any:
        obs, reward, terminated, truncated, info = super().step(actions)
        info["final_obs"] = info["final_obs"] * info["_final_obs"].unsqueeze(1)  # zeros elsewhere
        return obs, reward, terminated, truncated, info


class FinalObsMaskIgnoresTruncation(CartPoleVectorEnv):
    def step(self, actions: Any) -> Any:
        obs, reward, terminated, truncated, info = super().step(actions)
        info["_final_obs"] = terminated.clone()
        return obs, reward, terminated, truncated, info


class ReturnsFinalObsInsteadOfReset(CartPoleVectorEnv):
    def step(self, actions: Any) -> Any:
        _, reward, terminated, truncated, info = super().step(actions)
        return info["final_obs"].clone(), reward, terminated, truncated, info


class EpisodeLengthOffByOne(CartPoleVectorEnv):
    def step(self, actions: Any) -> Any:
        obs, reward, terminated, truncated, info = super().step(actions)
        info["episode"]["l"] = info["episode"]["l"] + 1
        return obs, reward, terminated, truncated, info


class IgnoresSeed(CartPoleVectorEnv):
    def reset(self, *, seed: Any = None, options: Any = None) -> Any:
        return super().reset(seed=None, options=options)


class RowsLeakIntoEachOther(CartPoleVectorEnv):
    def _transition(self, state: torch.Tensor, actions: torch.Tensor) -> Any:
        # A batching bug: every row is pushed by its neighbour's action.
        return super()._transition(state, actions.roll(1))


class AcceptsAnyAction(CartPoleVectorEnv):
    def check_actions(self, actions: Any) -> torch.Tensor:
        return torch.as_tensor(actions).long().reshape(-1)[: self.num_envs]


class AnonymousActionError(CartPoleVectorEnv):
    def check_actions(self, actions: Any) -> torch.Tensor:
        try:
            return super().check_actions(actions)
        except ValueError:
            raise ValueError("bad action") from None


class PendulumAcceptsNaN(PendulumVectorEnv):
    def check_actions(self, actions: Any) -> torch.Tensor:
        return super().check_actions(torch.nan_to_num(torch.as_tensor(actions)))


BROKEN = [
    (ActionSpaceNotBatched, "spaces", "action_space"),
    (Float64ObsInFloat32Env, "reset", "dtype torch.float64"),
    (ObsOutsideItsSpace, "reset", "outside the single observation space"),
    (Float64Reward, "step", "reward has dtype"),
    (MergedTerminatedTruncated, "step", "one tensor"),
    (FinalObsMaskIgnoresTruncation, "autoreset", '"_final_obs"'),
    (FinalObsOnlyWhereDone, "autoreset", "differs from obs on rows that did not finish"),
    (ReturnsFinalObsInsteadOfReset, "autoreset", "not being reset"),
    (EpisodeLengthOffByOne, "episode_stats", "episode r="),
    (IgnoresSeed, "determinism", "differ"),
    (RowsLeakIntoEachOther, "single_env", "same state and action"),
    (AcceptsAnyAction, "bad_actions", "was accepted"),
    (AnonymousActionError, "bad_actions", "does not name the env"),
]


@pytest.mark.parametrize(("env_cls", "check", "message"), BROKEN, ids=lambda v: str(v))
def test_broken_env_fails_the_right_check(env_cls: type, check: str, message: str) -> None:
    env = env_cls(4, max_episode_steps=8)  # rows truncate within the checked steps
    with pytest.raises(VectorEnvCheckError, match=message) as caught:
        check_vector_env(env, num_steps=40, single_env=CartPoleEnv())
    assert caught.value.check == check
    assert f"check {check!r} failed" in str(caught.value)
    assert "sandbox/CartPole-v1" in str(caught.value)


def test_nan_actions_must_be_rejected() -> None:
    with pytest.raises(VectorEnvCheckError, match="a NaN was accepted") as caught:
        check_vector_env(PendulumAcceptsNaN(3), num_steps=10)
    assert caught.value.check == "bad_actions"


def test_rejects_envs_that_are_not_torch_vector_envs() -> None:
    with pytest.raises(VectorEnvCheckError, match=r"not an envs\.core\.TorchVectorEnv"):
        check_vector_env(GymCartPoleVectorEnv(2))


@pytest.mark.parametrize("kwargs", [{"num_steps": 0}, {"seed": -1}, {"num_steps": 2.5}])
def test_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="check_vector_env"):
        check_vector_env(CartPoleVectorEnv(2), **kwargs)
