"""Hand-written PPO gradients (agents.ppo_grads) equal autograd's through ppo_loss."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from agents import ppo, ppo_grads, stacked
from rl.tensors import flatten_parameters

DISCRETE = {"obs_shape": [5], "action_kind": "discrete", "action_n": 3}
GAUSSIAN = {
    "obs_shape": [2, 3],
    "action_kind": "box",
    "action_shape": [2],
    "action_low": -torch.ones(2),
    "action_high": torch.ones(2),
}


def minibatch(agent: ppo.ActorCritic, spaces: dict[str, Any], n: int = 64) -> ppo.Batch:
    """Old log-probabilities and values a long way from the current ones, so that both the
    ratio and the value clips are active on some rows and not on others."""
    obs = torch.randn(n, *spaces["obs_shape"])
    with torch.no_grad():
        actions = agent.get_action(obs)
        logprobs, _, values = agent.evaluate_actions(obs, actions)
    return ppo.Batch(
        obs=obs,
        actions=actions,
        logprobs=logprobs + 0.4 * torch.randn(n),
        advantages=torch.randn(n) + 0.3,
        returns=values + torch.randn(n),
        values=values + 0.3 * torch.randn(n),
    )


@pytest.mark.parametrize("spaces", [DISCRETE, GAUSSIAN], ids=["discrete", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"clip_vloss": False, "ent_coef": 0.0},
        {"norm_adv": False, "ent_coef": 0.05, "vf_coef": 1.3, "clip_coef": 0.1},
    ],
    ids=["defaults", "no-clip-no-entropy", "raw-advantages"],
)
def test_loss_stats_and_gradients_equal_autograd(
    spaces: dict[str, Any], activation: str, overrides: dict[str, Any]
) -> None:
    torch.manual_seed(0)
    cfg = ppo.Config(activation=activation, hidden_sizes=(16, 8), **overrides)
    agent = ppo.ActorCritic(spaces, cfg.hidden_sizes, activation, init_log_std=-0.3)
    flat = flatten_parameters(agent)
    mb = minibatch(agent, spaces)
    loss, stats = ppo.ppo_loss(agent, mb, cfg)
    flat.grad.zero_()
    loss.backward()
    expected = flat.grad.clone()
    flat.grad.fill_(123.0)  # replaced, not accumulated
    fused_loss, fused_stats = ppo_grads.loss_and_grads(agent, mb, cfg)
    assert torch.allclose(fused_loss, loss.detach(), rtol=1e-6, atol=1e-7)
    assert torch.allclose(fused_stats, stats, rtol=1e-6, atol=1e-7)
    assert 0 < float(stats[4]) < 1  # some ratios clipped, some not
    scale = float(expected.abs().max())
    assert torch.allclose(flat.grad, expected, rtol=1e-5, atol=1e-6 * scale)


def test_gradients_land_in_plain_parameters_too() -> None:
    torch.manual_seed(1)
    cfg = ppo.Config(hidden_sizes=(8,))
    agent = ppo.ActorCritic(DISCRETE, cfg.hidden_sizes, "tanh")
    mb = minibatch(agent, DISCRETE, n=16)
    loss, _ = ppo.ppo_loss(agent, mb, cfg)
    loss.backward()
    expected = [p.grad.clone() for p in agent.parameters()]
    agent.zero_grad(set_to_none=True)
    ppo_grads.loss_and_grads(agent, mb, cfg)
    for got, want in zip((p.grad for p in agent.parameters()), expected, strict=True):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-7)


def test_only_mlp_stacks_are_supported() -> None:
    agent = ppo.ActorCritic(DISCRETE, (8,), "tanh")
    assert ppo_grads.supported(agent)
    agent.critic = nn.Sequential(nn.Linear(5, 8), nn.GELU(), nn.Linear(8, 1))
    assert not ppo_grads.supported(agent)
    agent.critic = nn.Linear(5, 1)
    assert not ppo_grads.supported(agent)


def test_training_takes_the_same_path_either_way() -> None:
    """Fused and autograd updates train to the same weights (to float rounding) over a short
    run: the same minibatches, the same Adam steps."""
    overrides = {
        "num_envs": 4, "num_steps": 16, "total_timesteps": 128, "num_minibatches": 2,
        "update_epochs": 2, "eval_episodes": 0, "progress": False, "write_run": False,
    }  # fmt: skip
    runs = [
        ppo.train(ppo.default_config("sandbox/CartPole-v1", fused_update=fused, **overrides))
        for fused in (True, False)
    ]
    fused, plain = (r.policy.agent.state_dict() for r in runs)
    for key in fused:
        assert torch.allclose(fused[key], plain[key], rtol=1e-4, atol=1e-5), key


@pytest.mark.parametrize("spaces", [DISCRETE, GAUSSIAN], ids=["discrete", "gaussian"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize(
    "overrides",
    [{}, {"clip_vloss": False, "norm_adv": False, "ent_coef": 0.05}],
    ids=["defaults", "raw-advantages"],
)
def test_stacked_gradients_equal_each_agents_autograd(
    spaces: dict[str, Any], activation: str, overrides: dict[str, Any]
) -> None:
    """multiseed's fused update: K agents' losses, statistics and gradients at once, each equal
    to ppo_loss + backward on that agent alone (its own advantage normalisation included)."""

    cfg = ppo.Config(activation=activation, hidden_sizes=(16, 8), **overrides)
    agents, batches = [], []
    for seed in range(3):
        torch.manual_seed(seed)
        agent = ppo.ActorCritic(spaces, cfg.hidden_sizes, activation, init_log_std=-0.3 + seed)
        agents.append(agent)
        batches.append(minibatch(agent, spaces, n=32))
    net = stacked.StackedActorCritic(agents, 32, activation)
    mb = {
        name: torch.stack([getattr(b, name) for b in batches])
        for name in ("obs", "actions", "logprobs", "advantages", "returns", "values")
    }
    mb["obs"] = mb["obs"].flatten(2)
    for p in net.params:
        p.grad = torch.full_like(p, 123.0)  # replaced, not accumulated
    loss, stats = ppo_grads.stacked_loss_and_grads(net, mb, cfg)
    assert loss.shape == (3,) and stats.shape == (3, 5)
    for i, (agent, batch) in enumerate(zip(agents, batches, strict=True)):
        ref_loss, ref_stats = ppo.ppo_loss(agent, batch, cfg)
        agent.zero_grad()
        ref_loss.backward()
        torch.testing.assert_close(loss[i], ref_loss.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stats[i], ref_stats, rtol=1e-5, atol=1e-6)
        grads = net.agent_tensors([p.grad for p in net.params], i)
        for got, param in zip(grads, agent.parameters(), strict=True):
            scale = float(param.grad.abs().max())
            torch.testing.assert_close(got, param.grad, rtol=1e-4, atol=1e-6 * max(scale, 1.0))


def test_multiseed_trains_the_same_either_way() -> None:
    """multiseed's fused and autograd updates reach the same weights (to float rounding)."""
    from agents import multiseed as ms

    overrides = {
        "num_envs": 4, "num_steps": 16, "total_timesteps": 128, "num_minibatches": 2,
        "update_epochs": 2, "eval_episodes": 0, "progress": False, "write_run": False,
    }  # fmt: skip
    results = []
    for fused in (True, False):
        base = ppo.default_config("sandbox/Pendulum-v1", fused_update=fused, **overrides)
        cfg = ms.MultiSeedConfig(ppo=base, seeds=(0, 1), write_runs=False, progress=False)
        results.append([p.agent.state_dict() for p in ms.train(cfg).policies])
    for fused, plain in zip(*results, strict=True):
        for key in fused:
            torch.testing.assert_close(fused[key], plain[key], rtol=1e-4, atol=1e-5)
