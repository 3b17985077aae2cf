"""PPO's loss and its gradients written out by hand: the same numbers as
:func:`agents.ppo.ppo_loss` + ``loss.backward()``, in fewer torch calls and no autograd graph.

Why: a 64-64 actor-critic on a 256-sample minibatch is a few microseconds of arithmetic per
op, and on the CPU each op also costs its dispatch, plus autograd's graph building and engine
(about 100 graph nodes here). Writing the backward pass of the MLPs and of the clipped
objective directly (one ``mm`` per weight gradient, straight into the flat gradient buffer of
:func:`rl.tensors.flatten_parameters`) cut a 256-sample gradient step from ~1.9 ms to ~1.3 ms
on the 2-core CPU, and PPO's CartPole update from ~54 to ~37 ms per iteration (2026-11-26;
what is left is mostly the ``tanh`` and ``mm`` arithmetic itself).

:func:`stacked_loss_and_grads` is the same for the ``K`` stacked agents of
:mod:`agents.multiseed` (one ``bmm`` per weight gradient for all of them; under CUDA graphs an
update there went from ~7.7k to ~3.1k kernels per iteration, counted as dispatched ops on the
CPU, together with its flat parameter).

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
  (``1 - h^2`` for tanh, ``h > 0`` for ReLU; autograd's own ``tanh_backward`` and
  ``threshold_backward`` kernels).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from agents.ppo import ActorCritic, Batch, Config
    from agents.stacked import StackedActorCritic


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
            grad = _activation_backward(torch.mm(grad, layer.weight), hs[i], activation)


def _forward_stacked(
    ws: list[torch.Tensor], bs: list[torch.Tensor], activation: str, x: torch.Tensor
) -> list[torch.Tensor]:
    """:func:`_forward` for ``K`` stacked MLPs: ``(K, in, out)`` weights, ``(K, 1, out)`` biases,
    ``(K, M, in)`` inputs."""
    hs = [x]
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        out = torch.baddbmm(b, hs[-1], w)
        if i < len(ws) - 1:
            out = out.tanh_() if activation == "tanh" else out.relu_()
        hs.append(out)
    return hs


def _backward_stacked(
    ws: list[torch.Tensor],
    bs: list[torch.Tensor],
    activation: str,
    hs: list[torch.Tensor],
    grad: torch.Tensor,
) -> None:
    """:func:`_backward` for :func:`_forward_stacked`'s layers: ``dW = h^T g`` per agent."""
    for i in range(len(ws) - 1, -1, -1):
        _set_grad(ws[i], torch.bmm(hs[i].transpose(1, 2), grad))
        _set_grad(bs[i], grad.sum(1, keepdim=True))
        if i > 0:
            grad = _activation_backward(torch.bmm(grad, ws[i].transpose(1, 2)), hs[i], activation)


def _activation_backward(grad: torch.Tensor, h: torch.Tensor, activation: str) -> torch.Tensor:
    """``grad`` through the activation whose output was ``h``: autograd's own one-kernel
    formulas (``grad * (1 - h^2)`` for tanh; ``grad`` where ``h > 0``, else 0, for ReLU)."""
    if activation == "tanh":
        return torch.ops.aten.tanh_backward(grad, h)
    return torch.ops.aten.threshold_backward(grad, h, 0)


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
    actor_hs = _forward(actor, act_kind, x)
    critic_hs = _forward(critic, critic_kind, x)
    loss, stats, grad_out, grad_value, grad_log_std = _objective(
        actor_hs[-1], critic_hs[-1].squeeze(-1), mb.actions, mb.logprobs, mb.advantages,
        mb.returns, mb.values, None if agent.discrete else agent.actor_logstd, cfg,
    )  # fmt: skip
    if grad_log_std is not None:
        _set_grad(agent.actor_logstd, grad_log_std)
    _backward(actor, act_kind, actor_hs, grad_out)
    _backward(critic, critic_kind, critic_hs, grad_value.unsqueeze(-1))
    return loss, stats


@torch.no_grad()
def stacked_loss_and_grads(
    net: StackedActorCritic, mb: dict[str, torch.Tensor], cfg: Config
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`loss_and_grads` for ``K`` stacked agents (:mod:`agents.stacked`): the same
    maths over ``(K, M, ...)`` minibatches, one ``bmm`` per weight gradient for all agents,
    written to the stacked parameters' ``.grad``.

    Returns:
        ``(loss, stats)`` as :func:`agents.stacked.ppo_loss_per_agent`: ``(K,)`` and
        ``(K, 5)``, detached.
    """
    x = mb["obs"]  # (K, M, D)
    actor_hs = _forward_stacked(net.actor_w, net.actor_b, net.activation, x)
    critic_hs = _forward_stacked(net.critic_w, net.critic_b, net.activation, x)
    loss, stats, grad_out, grad_value, grad_log_std = _objective(
        actor_hs[-1], critic_hs[-1].squeeze(-1), mb["actions"], mb["logprobs"],
        mb["advantages"], mb["returns"], mb["values"], net.log_std, cfg,
    )  # fmt: skip
    if grad_log_std is not None:
        _set_grad(net.log_std, grad_log_std)
    _backward_stacked(net.actor_w, net.actor_b, net.activation, actor_hs, grad_out)
    _backward_stacked(
        net.critic_w, net.critic_b, net.activation, critic_hs, grad_value.unsqueeze(-1)
    )
    return loss, stats


def _objective(
    out: torch.Tensor,
    newvalue: torch.Tensor,
    actions: torch.Tensor,
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    returns: torch.Tensor,
    values: torch.Tensor,
    log_std: torch.Tensor | None,
    cfg: Config,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`agents.ppo.ppo_loss` from the networks' outputs, and its gradients.

    Every tensor has the minibatch's ``n`` rows last (``(..., n)``; ``out`` ``(..., n, A)``),
    after any leading agent dimensions; means and normalisation are over the rows only.

    Args:
        out: the actor's logits or Gaussian means.
        newvalue: the critic's values.
        log_std: the Gaussian's ``(..., 1, A)`` log standard deviation; ``None``: categorical.

    Returns:
        ``(loss, stats, grad_out, grad_value, grad_log_std)``: the loss ``(...)``, the
        statistics ``(..., 5)`` and dLoss/d``out``, dLoss/d``newvalue`` and dLoss/d``log_std``
        (``None`` for a categorical policy).
    """
    n = out.shape[-2]
    if log_std is None:
        logp_all = out.log_softmax(-1)
        probs = logp_all.exp()
        index = actions.long().unsqueeze(-1)
        newlogprob = logp_all.gather(-1, index).squeeze(-1)
        entropy = -(probs * logp_all).sum(-1)
    else:
        log_std = log_std.expand_as(out)
        inv_std = torch.exp(-log_std)
        z = (actions.reshape(out.shape) - out) * inv_std
        newlogprob = (-0.5 * z.square() - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)

    logratio = newlogprob - logprobs
    ratio = logratio.exp()
    approx_kl = ((ratio - 1) - logratio).mean(-1)
    clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean(-1)
    if cfg.norm_adv:
        advantages = (advantages - advantages.mean(-1, keepdim=True)) / (
            advantages.std(-1, keepdim=True) + 1e-8
        )
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean(-1)
    diff = newvalue - returns
    if cfg.clip_vloss:
        v_delta = newvalue - values
        v_clipped = values + v_delta.clamp(-cfg.clip_coef, cfg.clip_coef)
        clipped_diff = v_clipped - returns
        loss_u, loss_c = diff.square(), clipped_diff.square()
        v_loss = 0.5 * torch.max(loss_u, loss_c).mean(-1)
        # torch.max's gradient: all to the larger term, half each on a tie.
        to_u = (loss_u > loss_c).to(diff.dtype) + 0.5 * (loss_u == loss_c).to(diff.dtype)
        inside = (v_delta.abs() <= cfg.clip_coef).to(diff.dtype)
        grad_value = to_u * diff + (1 - to_u) * inside * clipped_diff
    else:
        v_loss = 0.5 * diff.square().mean(-1)
        grad_value = diff
    entropy_loss = entropy.mean(-1)
    loss = pg_loss - cfg.ent_coef * entropy_loss + cfg.vf_coef * v_loss
    stats = torch.stack([pg_loss, v_loss, entropy_loss, approx_kl, clipfrac], -1)

    # dLoss/d(log pi(a|s)) through the ratio: the unclipped term carries it when it is the max.
    grad_logprob = torch.where(pg_loss1 >= pg_loss2, advantages * ratio, 0.0).mul_(-1.0 / n)
    grad_log_std = None
    if log_std is None:
        grad_out = probs * (
            grad_logprob.unsqueeze(-1) - cfg.ent_coef / n * (logp_all + entropy.unsqueeze(-1))
        )
        grad_out.neg_().scatter_add_(-1, index, grad_logprob.unsqueeze(-1))
    else:
        scaled = grad_logprob.unsqueeze(-1)
        grad_out = scaled * z * inv_std
        grad_log_std = (scaled * (z.square() - 1)).sum(-2, keepdim=True) - cfg.ent_coef
    return loss, stats, grad_out, grad_value.mul_(cfg.vf_coef / n), grad_log_std


def describe(agent: Any) -> str:
    """Why :func:`loss_and_grads` cannot train ``agent`` (for an error message)."""
    return (
        f"fused_update needs actor and critic built by agents.ppo.mlp (Linear layers with tanh "
        f"or ReLU between them); got {type(agent).__name__}. Set fused_update=False to train "
        "through ppo_loss and autograd"
    )
