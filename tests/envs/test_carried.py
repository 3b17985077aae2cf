"""``TorchVectorEnv.carried`` and the static buffers a CUDA graph of env steps reads
(``static_carried`` / ``copy_carried_into``), checked eagerly on the CPU; the graphs themselves
are tested on CUDA in tests/agents/test_ppo_graphs.py."""

from __future__ import annotations

import pytest
import torch

import envs  # noqa: F401  (registers the sandbox/ ids)
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
