"""``TorchVectorEnv.carried`` and the static buffers a CUDA graph of env steps reads
(``static_carried`` / ``copy_carried_into``), checked eagerly on the CPU; the graphs themselves
are tested on CUDA in tests/agents/test_ppo_graphs.py."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import envs  # noqa: F401  (registers the sandbox/ ids)
from envs.cartpole import CartPoleVectorEnv
from rl.vector import make_vector_env


@pytest.mark.parametrize("env_id", ["sandbox/CartPole-v1", "sandbox/DogTraining-v0"])
def test_steps_copied_back_into_static_buffers_continue_like_plain_steps(env_id: str) -> None:
    plain, graphed = (make_vector_env(env_id, 16, "cpu") for _ in range(2))
    for env in (plain, graphed):
        env.reset(seed=4)
    actions = [torch.as_tensor(plain.action_space.sample()) for _ in range(30)]
    core = graphed.unwrapped
    static = core.static_carried()
    assert all(a is b for a, b in zip(static, core.carried(), strict=True))
    for block in range(3):
        for a in actions[block * 10 : (block + 1) * 10]:
            expected = plain.step(a)[0]
            got = graphed.step(a)[0]
        core.copy_carried_into(static)  # what a graph's last op does after each replay
        assert all(a is b for a, b in zip(static, core.carried(), strict=True))
        torch.testing.assert_close(got, expected, rtol=0, atol=0)
        for mine, theirs in zip(static, plain.unwrapped.carried(), strict=True):
            assert torch.equal(mine, theirs)


def test_a_reset_writes_the_autoreset_key_in_place() -> None:
    """The key is not carried: a CUDA graph of steps captured before a reset (an evaluator
    reused across seeds) must read the new key from the tensor it captured."""
    core = make_vector_env("sandbox/CartPole-v1", 4, "cpu").unwrapped
    core.reset(seed=1)
    key = core._rng_key_t
    core.reset(seed=2)
    assert core._rng_key_t is key
    fresh = make_vector_env("sandbox/CartPole-v1", 4, "cpu").unwrapped
    fresh.reset(seed=2)
    assert torch.equal(key, fresh._rng_key_t)  # the value a first reset with that seed sets
    # Made and reset under inference_mode (as an evaluator does), then reset outside it.
    with torch.inference_mode():
        inner = make_vector_env("sandbox/CartPole-v1", 4, "cpu").unwrapped
        inner.reset(seed=1)
    inner.reset(seed=2)
    assert torch.equal(inner._rng_key_t, fresh._rng_key_t)


class _RebindsEveryStep(CartPoleVectorEnv):
    """Per-step state kept outside ``state``, its old tensor freed before the new one is made:
    the allocator then hands each step's tensor the last one's address (and ``id``)."""

    def _transition(self, state: torch.Tensor, actions: torch.Tensor) -> Any:
        old = self.__dict__.pop("pushes")
        total = old + actions.sum()
        del old  # freed here, so the clone below is made where it was
        self.pushes = total.clone()
        del total
        return super()._transition(state, actions)


@pytest.mark.parametrize("steps", [1, 2, 3, 32])
def test_uncarried_changes_names_an_attribute_rebound_every_step(steps: int) -> None:
    """It used to compare ids, which a freed tensor hands on: it reported nothing here, and an
    evaluator captured such an env in a CUDA graph that replays stale values (seen on an
    H200: its 32-step check missed tests/agents/test_ppo_graphs.py's RebindingCartPole)."""
    env = _RebindsEveryStep(num_envs=4)
    env.reset(seed=0)
    env.pushes = torch.zeros(())
    with env.uncarried_changes() as changed:
        for _ in range(steps):
            env.step(torch.zeros(4, dtype=torch.long))
    assert changed == ["pushes"]


def test_uncarried_changes_leaves_out_tensors_updated_in_place() -> None:
    env = CartPoleVectorEnv(num_envs=4)
    env.reset(seed=0)
    env.pushes = torch.zeros(())
    with env.uncarried_changes() as changed:
        for _ in range(4):
            env.pushes.add_(1)
            env.step(torch.zeros(4, dtype=torch.long))
    assert changed == []
