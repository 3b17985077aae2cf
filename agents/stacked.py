"""``K`` PPO actor-critics as stacked tensors, for :mod:`agents.multiseed`: the batched network,
its per-agent reward normalisation, Adam with per-agent learning rates, the per-agent gradient
clip, PPO's loss and update for all agents at once, and their deterministic evaluation.

Each layer's weights are one ``(K, in, out)`` tensor and a forward pass is one
``torch.baddbmm`` per layer for all agents. Chosen over ``torch.func.stack_module_state`` +
``functional_call`` + ``vmap``: the same kernels in the end, but without vmap's per-call tracing
overhead (it dominates at these tiny widths on the CPU and in CUDA launch-bound loops), and the
parameters stay plain tensors that a batched Adam and a per-agent gradient clip can address by
their leading ``K`` dimension. They are all views of one ``(K, P)`` tensor
(``StackedActorCritic.flat``), so Adam and the clip are a few kernels for every layer at once.

Everything is per agent: advantage normalisation, minibatch permutations, losses, gradient
norms and their clip (an agent with huge gradients never scales another's), Adam steps and
learning rates. The tests check each against :mod:`agents.ppo`'s single-agent maths
(``tests/agents/test_multiseed.py``, ``tests/agents/test_ppo_grads.py``).

Shapes: ``K`` agents, ``N = num_envs`` rows each, ``M`` rows per agent in a batch, ``D``
flattened observation size, ``A`` action size.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import torch

from agents import ppo_grads
from agents.base import action_log_prob_entropy, normalize_obs, sample_categorical
from agents.ppo import LOSS_NAMES, ActorCritic, Config, PPOPolicy, RewardScaler
from rl.evaluation import EvalResult, evaluate
from rl.tensors import GroupedRunningMeanStd, RunningMeanStd


# -- the stacked network -------------------------------------------------------------------------
def _stack_mlp(mlps: list[torch.nn.Module]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """``K`` ``nn.Sequential`` MLPs → per layer ``(K, in, out)`` weights, ``(K, 1, out)`` biases."""
    linears = [[m for m in seq if isinstance(m, torch.nn.Linear)] for seq in mlps]
    weights, biases = [], []
    for layer in zip(*linears, strict=True):
        weights.append(torch.stack([lin.weight.detach().t() for lin in layer]).contiguous())
        biases.append(torch.stack([lin.bias.detach().unsqueeze(0) for lin in layer]))
    return weights, biases


class StackedActorCritic:
    """``K`` :class:`agents.ppo.ActorCritic` networks as stacked tensors (see the module doc).

    Duck-types ``ActorCritic`` for :func:`agents.ppo.collect_rollout`: ``get_action``,
    ``evaluate_actions`` and ``get_value`` take ``(M, ...)`` batches whose rows are grouped as
    ``(..., K, N)`` (a ``(K * N)`` step or a ``(T * K * N)`` rollout) and give ``(M,)`` back.

    Args:
        agents: the ``K`` initialised networks (copied; same spaces and sizes).
        num_envs: ``N``, rows per agent.
        activation: ``"tanh"`` or ``"relu"``.
    """

    def __init__(self, agents: list[ActorCritic], num_envs: int, activation: str) -> None:
        self.num_agents = len(agents)
        self.num_envs = num_envs
        self.discrete = agents[0].discrete
        self.action_shape = agents[0].action_shape
        self.activation = activation
        self.act = torch.tanh if activation == "tanh" else torch.relu
        self.critic_w, self.critic_b = _stack_mlp([a.critic for a in agents])
        self.actor_w, self.actor_b = _stack_mlp([a.actor for a in agents])
        self.params = [*self.critic_w, *self.critic_b, *self.actor_w, *self.actor_b]
        self.log_std = None
        if not self.discrete:
            self.log_std = torch.stack([a.actor_logstd.detach() for a in agents])  # (K, 1, A)
            self.params.append(self.log_std)
        # Every parameter a view of one (K, P) tensor, every gradient a view of its gradient
        # (written in place, never replaced): Adam and the gradient clip are then a few kernels
        # for all the layers instead of a few per layer (rl.tensors.flatten_parameters does the
        # same for one agent).
        self.flat = torch.cat([p.flatten(1) for p in self.params], 1).requires_grad_(True)
        self.flat.grad = torch.zeros_like(self.flat)
        for p, data, grad in zip(
            self.params, self.views(self.flat.data), self.views(self.flat.grad), strict=True
        ):
            p.data = data
            p.requires_grad_(True)
            p.grad = grad

    def views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """A ``(K, P)`` tensor laid out like :attr:`flat` as views shaped like :attr:`params`."""
        views, offset = [], 0
        for p in self.params:
            size = p[0].numel()
            views.append(flat[:, offset : offset + size].view(p.shape))
            offset += size
        return views

    def _mlp(self, x: torch.Tensor, ws: list[torch.Tensor], bs: list[torch.Tensor]) -> torch.Tensor:
        """``(K, M, in)`` → ``(K, M, out)``: one batched matmul per layer for all agents."""
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            x = torch.baddbmm(b, x, w)
            if i < len(ws) - 1:
                x = self.act(x)
        return x

    def by_agent(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, ...)`` rows ordered ``(..., K, N)`` → ``(K, M / K, ...)`` (a copy when T > 1)."""
        k, n = self.num_agents, self.num_envs
        return x.reshape(-1, k, n, *x.shape[1:]).transpose(0, 1).reshape(k, -1, *x.shape[1:])

    def _to_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`by_agent`."""
        k, n = self.num_agents, self.num_envs
        return x.reshape(k, -1, n, *x.shape[2:]).transpose(0, 1).reshape(-1, *x.shape[2:])

    def actor(self, obs: torch.Tensor) -> torch.Tensor:
        """``(K, M, D)`` → ``(K, M, A)`` logits or Gaussian means."""
        return self._mlp(obs, self.actor_w, self.actor_b)

    def critic(self, obs: torch.Tensor) -> torch.Tensor:
        """``(K, M, D)`` → ``(K, M)`` values."""
        return self._mlp(obs, self.critic_w, self.critic_b).squeeze(-1)

    def sample(self, out: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Actions ``(K, M)`` / ``(K, M, A)`` from the actor's ``(K, M, A)`` output."""
        if self.discrete:
            if deterministic:
                return out.argmax(-1)
            return sample_categorical(out)
        if deterministic:
            return out
        return out + self.log_std.exp() * torch.randn_like(out)

    def get_action(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """``(K * N, *obs_shape)`` → ``(K * N,)`` actions (or ``(K * N, *action_shape)``)."""
        actions = self._to_rows(
            self.sample(self.actor(self.by_agent(obs.flatten(1))), deterministic)
        )
        return actions if self.discrete else actions.view(-1, *self.action_shape)

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        """``(M, *obs_shape)`` → ``(M,)``."""
        return self._to_rows(self.critic(self.by_agent(obs.flatten(1))))

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Row-ordered log-probabilities, entropies and values, each ``(M,)``."""
        logprob, entropy, value = self.evaluate_by_agent(
            self.by_agent(obs.flatten(1)), self.by_agent(actions)
        )
        return self._to_rows(logprob), self._to_rows(entropy), self._to_rows(value)

    def evaluate_by_agent(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(K, M, D)`` obs and ``(K, M)`` / ``(K, M, A)`` actions → three ``(K, M)`` tensors."""
        out = self.actor(obs)
        value = self.critic(obs)
        log_std = None if self.discrete else self.log_std
        return (*action_log_prob_entropy(out, actions, log_std), value)

    def subset(self, agents: list[int]) -> StackedActorCritic:
        """Agents ``agents`` (indices into the K) as their own stack: detached copies, for
        evaluating some of the agents."""
        index = torch.tensor(agents, device=self.params[0].device)
        sub = copy.copy(self)
        sub.num_agents = len(agents)
        sub.critic_w, sub.critic_b, sub.actor_w, sub.actor_b = (
            [t.detach().index_select(0, index) for t in tensors]
            for tensors in (self.critic_w, self.critic_b, self.actor_w, self.actor_b)
        )
        sub.params = [*sub.critic_w, *sub.critic_b, *sub.actor_w, *sub.actor_b]
        sub.flat = None  # copies, to act with: not for training
        if self.log_std is not None:
            sub.log_std = self.log_std.detach().index_select(0, index)
            sub.params.append(sub.log_std)
        return sub

    def agent_tensors(self, stacked: list[torch.Tensor], k: int) -> list[torch.Tensor]:
        """Agent ``k``'s slices of tensors laid out like :attr:`params` (the parameters, or
        Adam's moments), as CPU copies in ``ActorCritic.parameters()`` order and layout."""
        n = len(self.critic_w)
        out = []
        if self.log_std is not None:  # a module's own parameters come before its children's
            out.append(stacked[4 * n][k].detach().clone().cpu())
        for ws, bs in (
            (stacked[:n], stacked[n : 2 * n]),
            (stacked[2 * n : 3 * n], stacked[3 * n : 4 * n]),
        ):
            for w, b in zip(ws, bs, strict=True):
                out += [w[k].detach().t().contiguous().cpu(), b[k, 0].detach().clone().cpu()]
        return out

    def param_names(self) -> list[str]:
        """``ActorCritic.state_dict()`` keys in :meth:`agent_tensors` order."""
        names = ["actor_logstd"] if self.log_std is not None else []
        for net in ("critic", "actor"):
            for i in range(len(self.critic_w)):
                # Linear layers sit at even indices of the nn.Sequential (activations between).
                names += [f"{net}.{2 * i}.weight", f"{net}.{2 * i}.bias"]
        return names

    def state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Agent ``k`` as an :class:`agents.ppo.ActorCritic` ``state_dict`` (CPU copies)."""
        return dict(zip(self.param_names(), self.agent_tensors(self.params, k), strict=True))

    def policy(
        self,
        k: int,
        spaces: dict[str, Any],
        hidden: tuple[int, ...],
        init_log_std: float,
        obs_rms: RunningMeanStd | None = None,
        clip_obs: float = 10.0,
    ) -> PPOPolicy:
        """Agent ``k`` as a standalone :class:`agents.ppo.PPOPolicy` on the training device,
        with its observation statistics ``obs_rms`` when it trained with ``norm_obs``."""
        agent = ActorCritic(spaces, hidden, self.activation, init_log_std)
        agent.load_state_dict(self.state_dict(k))
        return PPOPolicy(agent.to(self.params[0].device), spaces, obs_rms, clip_obs)


class GroupedRewardScaler(RewardScaler):
    """:class:`agents.ppo.RewardScaler` with one return statistic per agent (its ``N`` rows)."""

    def __init__(
        self, groups: int, num_envs: int, gamma: float, clip: float, device: torch.device
    ) -> None:
        super().__init__(groups * num_envs, gamma, clip, device)
        self.rms = GroupedRunningMeanStd(groups, (), device)  # type: ignore[assignment]
        self.num_envs = num_envs

    def scale(self, dtype: torch.dtype) -> torch.Tensor:
        return torch.sqrt(self.rms.var + 1e-8).to(dtype).repeat_interleave(self.num_envs)

    def agent_state(self, k: int) -> dict[str, Any]:
        """Agent ``k``'s part in :meth:`RewardScaler.state_dict` form (for its checkpoint)."""
        rows = slice(k * self.num_envs, (k + 1) * self.num_envs)
        return {"rms": self.rms.group(k).state_dict(), "returns": self.returns[rows].clone()}


# -- batched Adam and per-agent clipping ------------------------------------------------------
class StackedAdam:
    """Adam over a :class:`StackedActorCritic`'s ``(K, P)`` parameters with a per-agent
    learning rate.

    Adam is elementwise, so one optimizer over stacked parameters equals ``K`` optimizers,
    except for the step size, which torch's Adam takes as one scalar: this one takes a ``(K,)``
    tensor. The update is torch's (non-fused) ``Adam`` formula with ``eps=1e-5`` as in ppo.py.
    A step can also leave some agents out entirely (``active``), parameters and Adam state, as
    ``target_kl``'s epoch stop leaves an agent that :func:`agents.ppo.update` stopped; from the
    first such step each agent counts its own steps (``agent_steps``).
    """

    def __init__(self, net: StackedActorCritic, betas: tuple[float, float] = (0.9, 0.999)):
        self.flat = net.flat  # (K, P): every parameter of ``net`` (a few kernels for all layers)
        self.betas = betas
        self.eps = 1e-5
        self.capturable = False
        """Count steps on the device (the per-agent path), as a CUDA graph replaying the step
        needs; ``step_count`` then counts only the eager steps."""
        self.step_count = 0
        self.agent_steps: torch.Tensor | None = None  # (K,), once an agent was left out
        self._exp_avg = torch.zeros_like(self.flat)  # (K, P), like flat
        self._exp_avg_sq = torch.zeros_like(self.flat)
        self.exp_avg = net.views(self._exp_avg)  # laid out like net.params (checkpoints)
        self.exp_avg_sq = net.views(self._exp_avg_sq)

    def steps_of(self, k: int) -> float:
        """How many steps agent ``k`` has taken (a host sync once they are counted on the device)."""
        if self.agent_steps is None:
            return float(self.step_count)
        return float(self.agent_steps[k])

    @torch.no_grad()
    def step(self, lr: torch.Tensor, active: torch.Tensor | None = None) -> None:
        """One step; ``lr`` is ``(K,)`` on the parameters' device (0 freezes an agent).

        ``active``: ``(K,)`` bool; an agent where it is False is left exactly as it is.
        """
        if active is not None or self.agent_steps is not None or self.capturable:
            self._masked_step(lr, active)
            return
        beta1, beta2 = self.betas
        self.step_count += 1
        bias1 = 1 - beta1**self.step_count
        bias2_sqrt = math.sqrt(1 - beta2**self.step_count)
        p, m, v = self.flat, self._exp_avg, self._exp_avg_sq
        g = p.grad
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
        p.sub_((lr / bias1).view(-1, 1) * m / denom)

    def _masked_step(self, lr: torch.Tensor, active: torch.Tensor | None) -> None:
        """:meth:`step` for the agents in ``active`` only, each with its own step count."""
        beta1, beta2 = self.betas
        if self.agent_steps is None:
            self.agent_steps = torch.full_like(lr, float(self.step_count), dtype=torch.float64)
        if active is None:
            active = torch.ones_like(self.agent_steps, dtype=torch.bool)
        self.step_count += 1
        self.agent_steps += active
        steps = self.agent_steps.clamp(min=1)  # an agent never stepped: no 0 / 0
        bias1 = 1 - beta1**steps
        bias2_sqrt = (1 - beta2**steps).sqrt()
        step_size = lr.double() / bias1 * active
        p, m, v = self.flat, self._exp_avg, self._exp_avg_sq
        on, g = active.view(-1, 1), p.grad
        m.copy_(torch.where(on, m.lerp(g, 1 - beta1), m))
        v.copy_(torch.where(on, v * beta2 + (1 - beta2) * g * g, v))
        denom = (v.sqrt() / bias2_sqrt.to(p.dtype).view(-1, 1)).add_(self.eps)
        p.sub_(step_size.to(p.dtype).view(-1, 1) * m / denom)


@torch.no_grad()
def clip_grad_norm_per_agent(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip each agent's gradient to global norm ``max_norm``; return the ``(K,)`` norms.

    ``torch.nn.utils.clip_grad_norm_`` per agent: the norm over all of agent ``k``'s slices
    ``p.grad[k]``, and the same ``max_norm / (norm + 1e-6)`` factor, capped at 1. No host sync.
    """
    squares = torch.stack([p.grad.square().flatten(1).sum(1) for p in params]).sum(0)
    norms = squares.sqrt()  # (K,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for p in params:
        p.grad.mul_(coef.view(-1, *(1,) * (p.dim() - 1)))
    return norms


# -- learning ------------------------------------------------------------------------------------
def ppo_loss_per_agent(
    net: StackedActorCritic,
    mb: dict[str, torch.Tensor],
    cfg: Config,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`agents.ppo.ppo_loss` for every agent at once; reductions over each agent's rows.

    Args:
        mb: ``(K, M, ...)`` minibatch tensors: obs, actions, logprobs, advantages, returns, values.

    Returns:
        ``(loss, stats)``: ``(K,)`` per-agent losses and a detached ``(K, 5)`` in
        :data:`agents.ppo.LOSS_NAMES` order. Summing the losses gives each agent its own
        gradient, as its parameters are its own slices.
    """
    newlogprob, entropy, newvalue = net.evaluate_by_agent(mb["obs"], mb["actions"])
    logratio = newlogprob - mb["logprobs"]
    ratio = logratio.exp()
    with torch.no_grad():
        approx_kl = ((ratio - 1) - logratio).mean(1)  # k3, http://joschu.net/blog/kl-approx.html
        clipfrac = ((ratio - 1.0).abs() > cfg.clip_coef).float().mean(1)
    advantages = mb["advantages"]
    if cfg.norm_adv:  # per agent: one agent's returns never rescale another's
        advantages = (advantages - advantages.mean(1, keepdim=True)) / (
            advantages.std(1, keepdim=True) + 1e-8
        )
    pg_loss1 = -advantages * ratio
    pg_loss2 = -advantages * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)
    pg_loss = torch.max(pg_loss1, pg_loss2).mean(1)
    v_loss_unclipped = (newvalue - mb["returns"]).square()
    if cfg.clip_vloss:
        values = mb["values"]
        v_clipped = values + (newvalue - values).clamp(-cfg.clip_coef, cfg.clip_coef)
        v_loss = 0.5 * torch.max(v_loss_unclipped, (v_clipped - mb["returns"]).square()).mean(1)
    else:
        v_loss = 0.5 * v_loss_unclipped.mean(1)
    entropy_loss = entropy.mean(1)
    loss = pg_loss - cfg.ent_coef * entropy_loss + cfg.vf_coef * v_loss
    stats = torch.stack([pg_loss, v_loss, entropy_loss, approx_kl, clipfrac], 1).detach()
    return loss, stats


def update(
    net: StackedActorCritic,
    optimizer: StackedAdam,
    batch: dict[str, torch.Tensor],
    lr: torch.Tensor,
    cfg: Config,
) -> torch.Tensor:
    """``update_epochs`` passes of per-agent minibatch steps; ``(K, 5)`` mean loss stats.

    Each agent gets its own random minibatch order (one batched argsort, no host sync). With
    ``target_kl``, an agent whose last minibatch of an epoch went past it takes no more steps
    this update (:func:`agents.ppo.update`'s break, per agent and without a host sync); its
    statistics average the minibatches it took.
    """
    k, size = batch["advantages"].shape  # (K, B)
    device = batch["advantages"].device
    stats_sum = torch.zeros(k, len(LOSS_NAMES), device=device)
    count = 0
    running = None if cfg.target_kl is None else torch.ones(k, dtype=torch.bool, device=device)
    counts = torch.zeros(k, device=device)
    for _ in range(cfg.update_epochs):
        order = torch.rand(k, size, device=device).argsort(1)  # (K, B): a permutation per agent
        for idx in order.tensor_split(cfg.num_minibatches, dim=1):
            mb = {}
            for name, tensor in batch.items():
                index = idx.view(*idx.shape, *(1,) * (tensor.dim() - 2)).expand(
                    -1, -1, *tensor.shape[2:]
                )
                mb[name] = tensor.gather(1, index)
            if cfg.fused_update:
                loss, stats = ppo_grads.stacked_loss_and_grads(net, mb, cfg)
            else:
                loss, stats = ppo_loss_per_agent(net, mb, cfg)
                grads = torch.autograd.grad(loss.sum(), net.params)
                with torch.no_grad():
                    for p, grad in zip(net.params, grads, strict=True):
                        p.grad.copy_(grad)  # into the views of flat.grad
            clip_grad_norm_per_agent([net.flat], cfg.max_grad_norm)
            optimizer.step(lr, running)
            if running is None:
                stats_sum += stats
                count += 1
            else:
                stats_sum += stats * running[:, None]
                counts += running
        if running is not None:
            running = running & ~(stats[:, 3] > cfg.target_kl)  # NaN does not stop, as in ppo
    return stats_sum / count if running is None else stats_sum / counts[:, None]


@torch.no_grad()
def evaluate_stacked(
    net: StackedActorCritic,
    cfg: Config,
    episodes: int,
    seed: int,
    device: torch.device,
    spaces: dict[str, Any],
    max_steps: int = 100_000,
    obs_rms: GroupedRunningMeanStd | None = None,
) -> list[EvalResult]:
    """Deterministic evaluation of all ``K`` agents in one env of ``K * episodes`` rows, agent
    ``k`` acting on rows ``k * episodes ...``: :func:`rl.evaluation.evaluate` (each row counts
    its first episode; on CUDA replayed from a graph unless ``cfg.cuda_graphs`` is off).
    ``obs_rms``: the agents' observation statistics (frozen), when they trained with
    ``norm_obs``.
    """
    k = net.num_agents
    act = stacked_act(net, episodes, cfg.clip_obs, spaces, device, obs_rms)
    result = evaluate(
        act, cfg.env_id, episodes=k * episodes, device=device, seed=seed,
        env_kwargs=cfg.env_kwargs, max_steps=max_steps, cuda_graphs=cfg.cuda_graphs,
    )  # fmt: skip
    return result.split(k)


def stacked_act(
    net: StackedActorCritic,
    episodes: int,
    clip_obs: float,
    spaces: dict[str, Any],
    device: torch.device,
    obs_rms: GroupedRunningMeanStd | None = None,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The deterministic actions of ``net``'s ``K`` agents on ``K * episodes`` rows (agent
    ``k`` on rows ``k * episodes ...``), clipped to the action bounds. It reads ``net``'s
    parameters and ``obs_rms`` as they are at each call (a view of ``net`` with ``episodes``
    rows per agent shares them)."""
    view = copy.copy(net)
    view.num_envs = episodes
    bounds = None
    if not net.discrete:
        bounds = spaces["action_low"].to(device), spaces["action_high"].to(device)

    def act(obs: torch.Tensor) -> torch.Tensor:
        actions = view.get_action(normalize_obs(obs, obs_rms, clip_obs), deterministic=True)
        if bounds is not None:
            actions = torch.maximum(torch.minimum(actions, bounds[1]), bounds[0])
        return actions

    return act
