"""The agents on CUDA: rollouts and updates stay on the device, checkpoints load on the CPU.

Every test here is ``gpu``-marked: conftest skips them on a machine without CUDA.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from agents import a2c, dqn, ppo
from agents import multiseed as ms
from rl.checkpoint import load_checkpoint
from rl.config import replace_config

pytestmark = pytest.mark.gpu

CARTPOLE = "sandbox/CartPole-v1"
QUIET = {"eval_episodes": 0, "progress": False, "device": "cuda"}


def config(algo: str, run_dir: Path) -> Any:
    """A few iterations of ``algo`` on CUDA, writing a run (and its checkpoint) to ``run_dir``."""
    if algo == "ppo":
        return ppo.default_config(
            CARTPOLE, num_envs=64, num_steps=16, total_timesteps=64 * 16 * 3, num_minibatches=4,
            update_epochs=2, run_dir=str(run_dir), **QUIET,
        )  # fmt: skip
    if algo == "a2c":
        return a2c.default_config(
            CARTPOLE, num_envs=64, num_steps=8, total_timesteps=64 * 8 * 4, target_return=None,
            run_dir=str(run_dir), **QUIET,
        )  # fmt: skip
    return dqn.default_config(
        CARTPOLE, num_envs=8, total_timesteps=1_600, buffer_size=2_000, learning_starts=400,
        batch_size=64, run_dir=str(run_dir), **QUIET,
    )  # fmt: skip


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_trains_on_cuda_and_its_checkpoint_loads_on_cpu(algo: str, tmp_path: Path) -> None:
    module = {"ppo": ppo, "a2c": a2c, "dqn": dqn}[algo]
    cfg = config(algo, tmp_path / algo)
    result = module.train(cfg)
    assert result.global_step == cfg.total_timesteps
    assert all(math.isfinite(v) for v in result.metrics.values() if isinstance(v, float))
    checkpoint = tmp_path / algo / "checkpoints" / "latest.pt"
    assert torch.load(checkpoint, weights_only=True, map_location="cpu")["algo"] == algo
    # Saved from CUDA, read back on the CPU: the same greedy actions as the trained policy.
    loaded = module.load_policy(load_checkpoint(checkpoint), device="cpu")
    obs = torch.randn(256, 4)
    on_cuda = result.policy.act(obs.cuda())
    assert on_cuda.device.type == "cuda"
    assert torch.equal(loaded.act(obs), on_cuda.cpu())


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_a_cuda_run_resumes_on_the_cpu_and_back(algo: str, tmp_path: Path) -> None:
    """``device`` is a resumable field: the checkpoint's generators (CUDA's Philox states) must
    not stop a resume on the CPU, nor the CPU's a resume on CUDA."""
    module = {"ppo": ppo, "a2c": a2c, "dqn": dqn}[algo]
    cfg = config(algo, tmp_path / algo)
    module.train(cfg)
    total = cfg.total_timesteps
    for device, more in (("cpu", 2), ("cuda", 3)):
        later = replace_config(cfg, {"device": device, "total_timesteps": total * more})
        result = module.train(later, resume=tmp_path / algo)
        assert result.global_step == total * more
        assert all(math.isfinite(v) for v in result.metrics.values() if isinstance(v, float))


def test_ppo_rollout_storage_lives_on_cuda() -> None:
    cfg = ppo.default_config(CARTPOLE, num_envs=32, num_steps=8, num_minibatches=2, **QUIET)
    rollout = ppo.make_rollout(
        cfg, {"obs_shape": (4,), "action_kind": "discrete"}, torch.device("cuda")
    )
    for name, tensor in rollout._asdict().items():
        assert tensor.device.type == "cuda", name


def test_multiseed_trains_k_agents_on_cuda() -> None:
    base = ppo.default_config(
        CARTPOLE, num_envs=16, num_steps=16, total_timesteps=16 * 16 * 2, num_minibatches=2,
        update_epochs=2, write_run=False, **QUIET,
    )  # fmt: skip
    cfg = ms.MultiSeedConfig(ppo=base, seeds=(0, 1, 2, 3), write_runs=False, eval_episodes=0)
    result = ms.train(cfg)
    assert len(result.policies) == 4
    assert result.summary["target_check_gap"] == ms.CUDA_CHECK_GAP  # checks batched on a GPU
    obs = torch.randn(8, 4, device="cuda")
    actions = [policy.act(obs) for policy in result.policies]
    assert all(a.device.type == "cuda" for a in actions)
