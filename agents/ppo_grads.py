"""PPO's loss and its gradients written out by hand: the same numbers as
:func:`agents.ppo.ppo_loss` + ``loss.backward()``, in fewer torch calls and no autograd graph.

Why: a 64-64 actor-critic on a 256-sample minibatch is a few microseconds of arithmetic per
op, and on the CPU each op also costs its dispatch, plus autograd's graph building and engine
(about 100 graph nodes here). Writing the backward pass of the MLPs and of the clipped
objective directly (one ``mm`` per weight gradient, straight into the flat gradient buffer of
:func:`rl.tensors.flatten_parameters`) cut a 256-sample gradient step from ~1.9 ms to ~1.3 ms
on the 2-core CPU, and PPO's CartPole update from ~54 to ~37 ms per iteration (2026-11-26;
what is left is mostly the ``tanh`` and ``mm`` arithmetic itself).

:func:`agents.ppo.ppo_loss` stays the readable definition; ``Config.fused_update=False``
trains through it and autograd, as you would after editing the loss. The tests check both
give the same loss, statistics and gradients (to float rounding) for every supported case:
discrete and Gaussian actions, tanh and ReLU, value clipping, entropy bonus, advantage
normalisation.

The derivatives, per minibatch of ``n`` transitions (``r`` the ratio, ``A`` the advantages):

* clipped surrogate ``mean(max(-A r, -A clip(r)))``: ``d/dr = -A / n`` where the unclipped term
  is the larger or equal one (then ``r`` is inside the clip range or ``A`` is 0), else 0;
  ``d/d log pi = r d/dr``.
* categorical: ``d log pi(a)/d logits = onehot(a) - p``, ``d H/d logits = -p (log p + H)``.
* Gaussian: ``d log pi/d mean = z / std``, ``d log pi/d log_std = z^2 - 1``, ``d H/d log_std = 1``.
* value: ``vf_coef (V - R) / n``; with value clipping, the larger of the two squared errors
  takes the gradient (half each on a tie, as ``torch.max`` does).
* each ``Linear`` layer: ``dW = g^T h``, ``db = sum(g)``, and ``g h'(a)`` flows down
  (``1 - h^2`` for tanh, ``h > 0`` for ReLU).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from agents.ppo import ActorCritic, Batch, Config


def supported(agent: nn.Module) -> bool:
    """Whether ``agent``'s actor and critic are :func:`agents.ppo.mlp` stacks (Linear layers
    with tanh or ReLU between them), which :func:`loss_and_grads` differentiates."""
    return all(_layers(net) is not None for net in (agent.actor, agent.critic))


def _layers(net: nn.Module) -> tuple[list[nn.Linear], str] | None:
    """The Linear layers of an ``mlp()`` stack and its activation, or ``None``."""
    modules = list(net.children()) if isinstance(net, nn.Sequential) else []
    if not modules or len(modules) % 2 == 0:
        return None
    linears, activations = modules[0::2], modules[1::2]
    if not all(type(m) is nn.Linear for m in linears):
        return None
    kinds = {type(m) for m in activations}
    if kinds not in (set(), {nn.Tanh}, {nn.ReLU}):
        return None
    return linears, "relu" if kinds == {nn.ReLU} else "tanh"


def _forward(linears: list[nn.Linear], activation: str, x: torch.Tensor) -> list[torch.Tensor]:
    """Each layer's input, then the output: what the backward pass needs."""
    hs = [x]
    for i, layer in enumerate(linears):
        out = torch.addmm(layer.bias, hs[-1], layer.weight.t())
        if i < len(linears) - 1:
            out = out.tanh_() if activation == "tanh" else out.relu_()
        hs.append(out)
    return hs


def _backward(
    linears: list[nn.Linear], activation: str, hs: list[torch.Tensor], grad: torch.Tensor
) -> None:
    """Write each layer's weight and bias gradients for ``grad`` = dLoss/d(output)."""
    for i in range(len(linears) - 1, -1, -1):
        layer = linears[i]
        _set_grad(layer.weight, torch.mm(grad.t(), hs[i]))
        _set_grad(layer.bias, grad.sum(0))
        if i > 0:
            grad = torch.mm(grad, layer.weight)
            h = hs[i]
            if activation == "tanh":
                grad.mul_(1 - h * h)
            else:
                grad.mul_(h > 0)


def _set_grad(param: torch.Tensor, grad: torch.Tensor) -> None:
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.copy_(grad)


@torch.no_grad()
def loss_and_grads(agent: ActorCritic, mb: Batch, cfg: Config) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`agents.ppo.ppo_loss` on one minibatch, with the gradients of its loss written to
    the agent's parameters' ``.grad`` (replacing them, as ``zero_grad`` + ``backward`` would).

    Returns:
        ``(loss, stats)`` as :func:`agents.ppo.ppo_loss`, both detached.
    """
    actor, act_kind = _layers(agent.actor)  # type: ignore[misc]
    critic, critic_kind = _layers(agent.critic)  # type: ignore[misc]
    x = mb.obs.flatten(1)
    n = x.shape[0]
    actor_hs = _forward(actor, act_kind, x)
    critic_hs = _forward(critic, critic_kind, x)
    out = actor_hs[-1]  # (n, A): logits or Gaussian means
    newvalue = critic_hs[-1].squeeze(-1)

    if agent.discrete:
        logp_all = out.log_softmax(-1)
        probs = logp_all.exp()
        index = mb.actions.long().unsqueeze(-1)
        newlogprob = logp_all.gather(-1, index).squeeze(-1)
        entropy = -(probs * logp_all).sum(-1)
    else:
        log_std = agent.actor_logstd.expand_as(out)
        inv_std = torch.exp(-log_std)
        z = (mb.actions.flatten(1) - out) * inv_std
        newlogprob = (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)

    logratio = newlogprob - mb.logprobs
    ratio = logratio.exp()
    approx_kl = ((ratio - 1) - logratio).mean()
    clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean()
    advantages = mb.advantages
    if cfg.norm_adv:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean()
    diff = newvalue - mb.returns
    if cfg.clip_vloss:
        v_delta = newvalue - mb.values
        v_clipped = mb.values + v_delta.clamp(-cfg.clip_coef, cfg.clip_coef)
        clipped_diff = v_clipped - mb.returns
        loss_u, loss_c = diff.square(), clipped_diff.square()
        v_loss = 0.5 * torch.max(loss_u, loss_c).mean()
        # torch.max's gradient: all to the larger term, half each on a tie.
        to_u = (loss_u > loss_c).to(diff.dtype) + 0.5 * (loss_u == loss_c).to(diff.dtype)
        inside = (v_delta.abs() <= cfg.clip_coef).to(diff.dtype)
        grad_value = to_u * diff + (1 - to_u) * inside * clipped_diff
    else:
        v_loss = 0.5 * diff.square().mean()
        grad_value = diff
    entropy_loss = entropy.mean()
    loss = pg_loss - cfg.ent_coef * entropy_loss + cfg.vf_coef * v_loss
    stats = torch.stack([pg_loss, v_loss, entropy_loss, approx_kl, clipfrac])

    # dLoss/d(log pi(a|s)) through the ratio: the unclipped term carries it when it is the max.
    grad_logprob = torch.where(pg_loss1 >= pg_loss2, advantages * ratio, 0.0).mul_(-1.0 / n)
    if agent.discrete:
        grad_out = probs * (
            grad_logprob.unsqueeze(-1) - cfg.ent_coef / n * (logp_all + entropy[:, None])
        )
        grad_out.neg_().scatter_add_(-1, index, grad_logprob.unsqueeze(-1))
    else:
        scaled = grad_logprob.unsqueeze(-1)
        grad_out = scaled * z * inv_std
        grad_log_std = (scaled * (z.square() - 1)).sum(0, keepdim=True) - cfg.ent_coef
        _set_grad(agent.actor_logstd, grad_log_std)
    _backward(actor, act_kind, actor_hs, grad_out)
    _backward(critic, critic_kind, critic_hs, grad_value.mul_(cfg.vf_coef / n).unsqueeze(-1))
    return loss, stats


def describe(agent: Any) -> str:
    """Why :func:`loss_and_grads` cannot train ``agent`` (for an error message)."""
    return (
        f"fused_update needs actor and critic built by agents.ppo.mlp (Linear layers with tanh "
        f"or ReLU between them); got {type(agent).__name__}. Set fused_update=False to train "
        "through ppo_loss and autograd"
    )
