"""K independent PPO agents trained in one process (``python -m agents.multiseed --seeds 0-63``).

The same maths as :mod:`agents.ppo` (clipped surrogate, GAE from :func:`rl.returns.compute_gae`,
clipped value loss, entropy bonus, linear LR annealing, gradient-norm clipping), run for ``K``
agents at once so that one device runs many seeds for about the price of one:

* **Stacked weights, hand-batched MLPs.** Each layer's weights are one ``(K, in, out)`` tensor
  and a forward pass is one ``torch.baddbmm`` per layer for all agents. Chosen over
  ``torch.func.stack_module_state`` + ``functional_call`` + ``vmap``: the same kernels in the
  end, but without vmap's per-call tracing overhead (it dominates at these tiny widths on the
  CPU and in CUDA launch-bound loops), and the parameters stay plain tensors that a batched
  Adam and a per-agent gradient clip can address by their leading ``K`` dimension. They are
  all views of one ``(K, P)`` tensor (``StackedActorCritic.flat``), so Adam and the clip are a
  few kernels for every layer at once; with ``fused_update`` (the default, as in
  :mod:`agents.ppo`) the gradients are written by hand
  (:func:`agents.ppo_grads.stacked_loss_and_grads`), without an autograd graph.
* **One vector env of ``K * N`` rows**; agent ``k`` owns rows ``[k * N, (k + 1) * N)``. The
  rollout is :func:`agents.ppo.collect_rollout` itself: the stacked network takes ``(K * N, D)``
  batches and regroups them by agent inside.
* **Per-agent everything else**: advantage normalisation, minibatch permutations, losses,
  gradient norms and their clip (an agent with huge gradients never scales another's), Adam
  steps with per-agent learning rates (optionally different per agent), LR annealing, the
  ``target_return`` stop (a solved agent's learning rate drops to 0, which freezes it where
  :func:`agents.ppo.train` would have stopped; the run ends when every agent has solved).

Randomness. Agent ``k``'s initial weights come from ``torch.manual_seed(seeds[k])``, exactly as
:func:`agents.ppo.train` draws them, so they do not depend on ``K``. The env takes one
generator, so it is seeded once with :func:`env_seed` (derived from all the seeds); action
sampling and minibatch order draw from the global torch stream seeded the same way. Each agent's
rows are still statistically independent streams (distinct rows of a counter-based hash, see
``envs/core.py``), but agent ``k``'s trajectory *does* depend on which other seeds run beside
it: results are reproducible for a given seed list, not identical across ``K``.

``norm_obs`` and ``norm_reward`` keep one set of running statistics per agent
(:class:`rl.tensors.GroupedRunningMeanStd` over its own rows), and ``target_kl`` stops each
agent's epochs on its own, as ``K`` runs of :func:`agents.ppo.train` would. Each per-seed run
folder holds ``agents.ppo``'s checkpoint keys (its agent's observation and return statistics
included), so ``rl eval``, ``rl watch`` and :func:`agents.ppo.load_policy` read it; only the
env's exact state is left out (a ``--resume`` of one seed alone restarts its episodes).

Resuming the whole run: a group folder beside the seeds' folders
(``runs/<env>__ppo-seeds__<first>-<last>_K<k>__<time>/multiseed.pt``, written atomically every
``checkpoint_every`` iterations and at the end) holds the stacked weights and Adam state, every
agent's statistics and stop-rule state, the shared env and the random streams:
``rl train --resume <group folder>`` continues bit for bit where an uninterrupted run would be.

Shapes: ``K`` agents, ``N = num_envs`` rows each, ``T = num_steps``, ``B = T * N`` transitions
per agent per iteration, ``D`` flattened observation size, ``A`` action size.
"""

from __future__ import annotations

import copy
import hashlib
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents import ppo_grads, ppo_graphs
from agents.base import normalize_obs, space_spec
from agents.ppo import (
    ALGO,
    LOSS_NAMES,
    RESUMABLE_FIELDS,
    ActorCritic,
    Config,
    PPOPolicy,
    RewardScaler,
    collect_rollout,
    make_rollout,
)
from rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rl.config import config_from_dict, config_to_dict, replace_config, resume_config
from rl.device import configure_threads, resolve_device
from rl.evaluation import EvalResult, Evaluator, evaluate
from rl.returns import compute_gae
from rl.runs import RUNS_ROOT, TrainingDiverged, TrainingRun, run_name, write_json
from rl.seeding import rng_state, seed_everything, set_rng_state
from rl.tensors import GroupedRunningMeanStd, RunningMeanStd
from rl.vector import make_vector_env


@dataclass(frozen=True)
class MultiSeedConfig:
    """``K`` PPO agents: shared hyperparameters, one seed (and optionally one LR) each."""

    ppo: Config = field(default_factory=Config)
    """Hyperparameters shared by every agent (its ``seed`` and ``run_dir`` are ignored)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """One agent per seed (distinct integers >= 0); K = len(seeds)."""
    learning_rates: tuple[float, ...] | None = None
    """Per-agent initial learning rates (len K); ``None`` gives every agent ``ppo.learning_rate``."""
    write_runs: bool = True
    """One run folder per seed (``runs/<env>__ppo__<seed>__<ts>``) plus a summary JSON."""
    runs_root: str = RUNS_ROOT
    """Where the per-seed run folders and the summary JSON go."""
    eval_episodes: int = 100
    """Deterministic evaluation episodes per agent after training; 0 skips it."""
    solved_return: float | None = None
    """Per-seed solved bar on the final evaluation's mean return (``None``: the env's
    registered ``reward_threshold``, when it has one). Only reported, never a stop rule."""
    progress: bool = True
    """Show a progress bar (the first seed's run)."""

    def __post_init__(self) -> None:
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed, e.g. (0, 1, 2)")
        for seed in self.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"seeds must be integers >= 0, got {seed!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct (one run folder each), got {self.seeds}")
        if self.learning_rates is not None and (
            len(self.learning_rates) != len(self.seeds)
            or not all(lr > 0 for lr in self.learning_rates)
        ):
            raise ValueError(
                f"learning_rates needs one value > 0 per seed ({len(self.seeds)}), "
                f"got {self.learning_rates}"
            )
        if self.eval_episodes < 0:
            raise ValueError(f"eval_episodes must be >= 0, got {self.eval_episodes}")

    @property
    def num_agents(self) -> int:
        """K."""
        return len(self.seeds)

    @property
    def agent_learning_rates(self) -> tuple[float, ...]:
        """Each agent's initial learning rate."""
        return self.learning_rates or (self.ppo.learning_rate,) * self.num_agents


def parse_seeds(spec: str) -> tuple[int, ...]:
    """``"0-63"``, ``"0,1,5"`` or ``"0-3,10"`` → a tuple of distinct seeds, in order.

    Raises:
        ValueError: an unreadable spec, with an example of a good one.
    """
    seeds: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError
                seeds.extend(range(low, high + 1))
            else:
                seeds.append(int(part))
    except ValueError:
        raise ValueError(
            f"cannot read seeds {spec!r}: expected e.g. '0-63', '0,1,5' or '0-3,10'"
        ) from None
    if any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {spec!r} must be distinct integers >= 0")
    return tuple(seeds)


def env_seed(seeds: tuple[int, ...]) -> int:
    """The one seed of the shared env and global stream: the seed itself when K = 1."""
    if len(seeds) == 1:
        return seeds[0]
    digest = hashlib.sha256(",".join(map(str, seeds)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# -- the stacked network ---------------------------------------------------------------------
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
        # Every parameter a view of one (K, P) tensor, every gradient a view of its gradient:
        # Adam, the gradient clip and zeroing are then a few kernels for all the layers instead
        # of a few per layer (rl.tensors.flatten_parameters does the same for one agent).
        self.flat = torch.cat([p.flatten(1) for p in self.params], 1).requires_grad_(True)
        self.flat.grad = torch.zeros_like(self.flat)
        for p, data, grad in zip(
            self.params, self._views(self.flat.data), self._views(self.flat.grad), strict=True
        ):
            p.data = data
            p.requires_grad_(True)
            p.grad = grad

    def _views(self, flat: torch.Tensor) -> list[torch.Tensor]:
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

    def _by_agent(self, x: torch.Tensor) -> torch.Tensor:
        """``(M, ...)`` rows ordered ``(..., K, N)`` → ``(K, M / K, ...)`` (a copy when T > 1)."""
        k, n = self.num_agents, self.num_envs
        return x.reshape(-1, k, n, *x.shape[1:]).transpose(0, 1).reshape(k, -1, *x.shape[1:])

    def _to_rows(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of :meth:`_by_agent`."""
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
            # Gumbel-max, as agents.ppo.ActorCritic.get_action samples.
            noise = torch.empty_like(out).exponential_().clamp_min_(torch.finfo(out.dtype).tiny)
            return (out - noise.log_()).argmax(-1)
        if deterministic:
            return out
        return out + self.log_std.exp() * torch.randn_like(out)

    def get_action(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """``(K * N, *obs_shape)`` → ``(K * N,)`` actions (or ``(K * N, *action_shape)``)."""
        actions = self._to_rows(
            self.sample(self.actor(self._by_agent(obs.flatten(1))), deterministic)
        )
        return actions if self.discrete else actions.view(-1, *self.action_shape)

    def get_value(self, obs: torch.Tensor) -> torch.Tensor:
        """``(M, *obs_shape)`` → ``(M,)``."""
        return self._to_rows(self.critic(self._by_agent(obs.flatten(1))))

    def evaluate_actions(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Row-ordered log-probabilities, entropies and values, each ``(M,)``."""
        logprob, entropy, value = self.evaluate_by_agent(
            self._by_agent(obs.flatten(1)), self._by_agent(actions)
        )
        return self._to_rows(logprob), self._to_rows(entropy), self._to_rows(value)

    def evaluate_by_agent(
        self, obs: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(K, M, D)`` obs and ``(K, M)`` / ``(K, M, A)`` actions → three ``(K, M)`` tensors."""
        out = self.actor(obs)
        value = self.critic(obs)
        if self.discrete:
            log_probs = out.log_softmax(-1)  # (K, M, A)
            entropy = -(log_probs.exp() * log_probs).sum(-1)
            return log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy, value
        log_std = self.log_std.expand_as(out)
        flat_actions = actions.reshape(out.shape)
        logprob = (
            -0.5 * ((flat_actions - out) / log_std.exp()).square()
            - log_std
            - 0.5 * math.log(2 * math.pi)
        ).sum(-1)
        entropy = (0.5 + 0.5 * math.log(2 * math.pi) + log_std).sum(-1)
        return logprob, entropy, value

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
        agent = ActorCritic(
            spaces, hidden, "tanh" if self.act is torch.tanh else "relu", init_log_std
        )
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
    """Adam over ``(K, ...)`` parameters with a per-agent learning rate.

    Adam is elementwise, so one optimizer over stacked parameters equals ``K`` optimizers,
    except for the step size, which torch's Adam takes as one scalar: this one takes a ``(K,)``
    tensor. The update is torch's (non-fused) ``Adam`` formula with ``eps=1e-5`` as in ppo.py.
    A step can also leave some agents out entirely (``active``), parameters and Adam state, as
    ``target_kl``'s epoch stop leaves an agent that :func:`agents.ppo.update` stopped; from the
    first such step each agent counts its own steps (``agent_steps``).
    """

    def __init__(
        self,
        params: list[torch.Tensor],
        betas: tuple[float, float] = (0.9, 0.999),
        net: StackedActorCritic | None = None,
    ):
        self.params = params
        self.betas = betas
        self.eps = 1e-5
        self.capturable = False
        """Count steps on the device (the per-agent path), as a CUDA graph replaying the step
        needs; ``step_count`` then counts only the eager steps."""
        self.step_count = 0
        self.agent_steps: torch.Tensor | None = None  # (K,), once an agent was left out
        # What a step updates: ``net``'s one flat (K, P) parameter (a few kernels for all the
        # layers) or each of ``params``; ``exp_avg``/``exp_avg_sq`` are laid out like params.
        self._stepped = [net.flat] if net is not None else params
        self._exp_avg = [torch.zeros_like(p) for p in self._stepped]
        self._exp_avg_sq = [torch.zeros_like(p) for p in self._stepped]
        if net is not None:
            self.exp_avg = net._views(self._exp_avg[0])
            self.exp_avg_sq = net._views(self._exp_avg_sq[0])
        else:
            self.exp_avg, self.exp_avg_sq = self._exp_avg, self._exp_avg_sq

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
        for p, m, v in zip(self._stepped, self._exp_avg, self._exp_avg_sq, strict=True):
            g = p.grad
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (v.sqrt() / bias2_sqrt).add_(self.eps)
            step_size = (lr / bias1).view(-1, *(1,) * (p.dim() - 1))
            p.sub_(step_size * m / denom)

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
        for p, m, v in zip(self._stepped, self._exp_avg, self._exp_avg_sq, strict=True):
            shape = (-1, *(1,) * (p.dim() - 1))
            on, g = active.view(shape), p.grad
            m.copy_(torch.where(on, m.lerp(g, 1 - beta1), m))
            v.copy_(torch.where(on, v * beta2 + (1 - beta2) * g * g, v))
            denom = (v.sqrt() / bias2_sqrt.to(p.dtype).view(shape)).add_(self.eps)
            p.sub_(step_size.to(p.dtype).view(shape) * m / denom)


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


class AgentEpisodes:
    """Per-agent finished-episode sums ``(K, 3)``: count, return, length; no host sync.

    Duck-types :class:`rl.runs.EpisodeTracker`'s ``record`` for :func:`agents.ppo.collect_rollout`.
    """

    def __init__(self, num_agents: int, num_envs: int, device: torch.device) -> None:
        self.shape = (num_agents, num_envs)
        self.sums = torch.zeros(num_agents, 3, dtype=torch.float64, device=device)

    def record(self, info: dict[str, Any]) -> None:
        mask = info.get("_episode")
        if mask is None:
            return
        weight = mask.view(self.shape).to(torch.float64)
        episode = info["episode"]
        returns = episode["r"].view(self.shape) * weight
        lengths = episode["l"].view(self.shape) * weight
        self.sums += torch.stack([weight.sum(1), returns.sum(1), lengths.sum(1)], 1)

    def take(self) -> torch.Tensor:
        sums = self.sums.clone()
        self.sums.zero_()
        return sums


def _window_return(
    recent: list[list[float]], episodes: float, rewards: float, size: int
) -> float | None:
    """:meth:`agents.ppo.TrainState.recent_return` for one agent's ``recent`` list."""
    recent.append([episodes, rewards])
    while len(recent) > 1 and sum(c for c, _ in recent[1:]) >= size:
        recent.pop(0)
    count = sum(c for c, _ in recent)
    return sum(r for _, r in recent) / count if count >= size else None


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
    return [
        EvalResult(
            cfg.env_id,
            result.returns[i * episodes : (i + 1) * episodes],
            result.lengths[i * episodes : (i + 1) * episodes],
        )
        for i in range(k)
    ]


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


# -- training ------------------------------------------------------------------------------------
@dataclass
class MultiSeedResult:
    """What :func:`train` returns: one policy, run folder and metrics row per seed."""

    seeds: tuple[int, ...]
    policies: list[PPOPolicy]
    run_dirs: list[Path | None]
    per_seed: list[dict[str, Any]]
    """Per seed: final evaluation, the step it reached ``target_return`` (or None), losses."""
    summary: dict[str, Any]
    """Mean and std over seeds of the final evaluation return, solve rate, wall-clock."""
    summary_path: Path | None = None
    evaluations: list[EvalResult] = field(default_factory=list)


def _optimizer_state(
    net: StackedActorCritic, optimizer: StackedAdam, k: int, group: dict[str, Any], lr: float
) -> dict[str, Any]:
    """Agent ``k``'s Adam state in ``torch.optim.Adam.state_dict()`` form (for ppo's resume)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    if optimizer.step_count > 0:
        moments = zip(
            net.agent_tensors(optimizer.exp_avg, k),
            net.agent_tensors(optimizer.exp_avg_sq, k),
            strict=True,
        )
        for i, (m, v) in enumerate(moments):
            step = torch.tensor(optimizer.steps_of(k))
            state[i] = {"step": step, "exp_avg": m, "exp_avg_sq": v}
    return {"state": state, "param_groups": [{**group, "lr": lr}]}


GROUP_CHECKPOINT = "multiseed.pt"
"""The group folder's checkpoint: what ``rl train --resume GROUP`` continues from."""


def group_name(cfg: MultiSeedConfig) -> str:
    """``<env>__ppo-seeds__<first>-<last>_K<k>__<timestamp>``: the group folder (under
    ``runs_root``, beside the seeds' run folders) and its summary JSON."""
    first = cfg.seeds[0]
    return run_name(cfg.ppo.env_id, ALGO, first).replace(
        f"__{ALGO}__{first}__", f"__{ALGO}-seeds__{first}-{cfg.seeds[-1]}_K{cfg.num_agents}__"
    )


def is_group(path: str | Path) -> bool:
    """Whether ``path`` is a multi-seed group folder (holds ``multiseed.pt``)."""
    return (Path(path) / GROUP_CHECKPOINT).is_file()


def load_group_checkpoint(group_dir: str | Path) -> dict[str, Any]:
    """A group folder's ``multiseed.pt``; a one-line :class:`CheckpointError` otherwise."""
    path = Path(group_dir) / GROUP_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(
            f"cannot resume: {group_dir} has no {GROUP_CHECKPOINT} (a multi-seed group folder, "
            "runs/<env>__ppo-seeds__..., holds one)"
        )
    saved = load_checkpoint(path)
    if saved.get("algo") != ALGO + "-multiseed":
        raise CheckpointError(f"{path} is not a multi-seed PPO checkpoint")
    return saved


def saved_config(group_dir: str | Path, **changes: Any) -> MultiSeedConfig:
    """The configuration a group folder trained with, with ``changes`` to the fields of
    :data:`agents.ppo.RESUMABLE_FIELDS` (e.g. ``total_timesteps``, ``device``) and
    ``progress``: what ``rl train --resume GROUP`` runs."""
    saved = load_group_checkpoint(group_dir)
    base = replace_config(config_from_dict(Config, saved["config"]), changes)
    return _config_of(saved, base, base.progress, group_dir)


def _config_of(
    saved: dict[str, Any], base: Config, progress: bool, group_dir: str | Path
) -> MultiSeedConfig:
    """The saved group's config around ``base``; its runs root is the group folder's parent
    (where the seeds' folders are), wherever the folder was moved."""
    extra = saved["multiseed"]
    rates = extra["learning_rates"]
    return MultiSeedConfig(
        ppo=base, seeds=tuple(extra["seeds"]),
        learning_rates=None if rates is None else tuple(rates), write_runs=True,
        runs_root=str(Path(group_dir).parent), eval_episodes=extra["eval_episodes"],
        solved_return=extra["solved_return"], progress=progress,
    )  # fmt: skip


def _check_resume(
    cfg: MultiSeedConfig, saved: dict[str, Any], group_dir: str | Path
) -> MultiSeedConfig:
    """``cfg`` as the resume runs it; a ValueError where it changes a fixed field."""
    if tuple(saved["multiseed"]["seeds"]) != cfg.seeds:
        raise ValueError(
            f"cannot resume seeds {list(cfg.seeds)} from a group of seeds "
            f"{saved['multiseed']['seeds']}"
        )
    base = resume_config(cfg.ppo, saved["config"], RESUMABLE_FIELDS)
    resumed = _config_of(saved, base, cfg.progress, group_dir)
    if resumed.learning_rates != cfg.learning_rates:
        raise ValueError("cannot resume with different per-seed learning_rates")
    return resumed


def train(cfg: MultiSeedConfig, *, resume: str | Path | None = None) -> MultiSeedResult:
    """Train ``K = len(cfg.seeds)`` PPO agents together; log, checkpoint and evaluate each.

    Args:
        cfg: the configuration. With ``resume``, it must equal the saved one except for
            ``agents.ppo.RESUMABLE_FIELDS`` of ``cfg.ppo`` (see :func:`resume_config`).
        resume: a group folder (``runs/<env>__ppo-seeds__...``) to continue from its
            ``multiseed.pt``: every agent, the shared env and the random streams, exactly.

    Raises:
        TrainingDiverged: a loss or parameter of some agent became non-finite (named by seed).
        rl.checkpoint.CheckpointError: ``resume`` holds no readable ``multiseed.pt``.
        ValueError: ``cfg`` changes a field a resume may not change.
    """
    start_time = time.perf_counter()
    saved = None
    if resume is not None:
        saved = load_group_checkpoint(resume)
        cfg = _check_resume(cfg, saved, resume)
    base, seeds = cfg.ppo, cfg.seeds
    k_agents, n = cfg.num_agents, base.num_envs
    device = resolve_device(base.device)
    configure_threads(device, base.num_threads)
    shared_seed = env_seed(seeds)
    env = make_vector_env(base.env_id, k_agents * n, device, env_kwargs=base.env_kwargs)
    runs: list[TrainingRun] = []
    loop: _Loop | None = None
    try:
        spaces = space_spec(env.single_observation_space, env.single_action_space)
        agents = []
        for seed in seeds:  # the draws agents.ppo.train makes for this seed: independent of K
            seed_everything(seed)
            agents.append(
                ActorCritic(spaces, base.hidden_sizes, base.activation, base.init_log_std)
            )
        net = StackedActorCritic([a.to(device) for a in agents], n, base.activation)
        # One fused-Adam param group as torch writes it, for ppo-compatible checkpoints.
        group = torch.optim.Adam(agents[0].parameters(), eps=1e-5, fused=True).state_dict()[
            "param_groups"
        ][0]
        del agents
        seed_everything(shared_seed)
        next_obs, _ = env.reset(seed=shared_seed)
        optimizer = StackedAdam(net.params, net=net)
        lr0 = torch.tensor(cfg.agent_learning_rates, device=device)
        seed_cfgs = [
            replace_config(base, {"seed": s, "learning_rate": lr})
            for s, lr in zip(seeds, cfg.agent_learning_rates, strict=True)
        ]
        group_dir = None
        if cfg.write_runs:
            group_dir = (
                Path(resume) if resume is not None else Path(cfg.runs_root) / group_name(cfg)
            )
            for i, seed_cfg in enumerate(seed_cfgs):
                run_dir = (
                    # Siblings of the group folder, wherever it was moved or resumed from.
                    Path(resume).parent / Path(saved["run_dirs"][i]).name
                    if saved is not None and resume is not None
                    else Path(cfg.runs_root) / run_name(base.env_id, ALGO, seed_cfg.seed)
                )
                seed_cfgs[i] = seed_cfg = replace_config(seed_cfg, {"run_dir": str(run_dir)})
                runs.append(
                    TrainingRun(
                        run_dir,
                        config_to_dict(seed_cfg),
                        total_timesteps=base.num_iterations * base.batch_size,
                        num_snapshots=base.num_snapshots,
                        # Each agent logged up to its own step at the checkpoint.
                        purge_step=saved["steps"][i] + 1 if saved is not None else None,
                        progress=cfg.progress and i == 0,
                    )
                )
        loop = _Loop(cfg, seed_cfgs, net, optimizer, group, lr0, env, spaces, runs, next_obs)
        loop.group_dir = group_dir
        if saved is not None:
            loop.restore(saved)
        else:
            loop.save_all(0, snapshot=True)  # the untrained policies: "before" of before/after
            loop.save_group()
        loop.run()
        train_seconds = time.perf_counter() - start_time
    finally:
        env.close()
        if loop is not None and loop.check_evaluator is not None:
            loop.check_evaluator.close()
        for run in runs:
            run.close()
    evaluations: list[EvalResult] = []
    if cfg.eval_episodes > 0:
        evaluations = evaluate_stacked(
            net, base, cfg.eval_episodes, shared_seed, device, spaces, obs_rms=loop.obs_rms
        )
    return _finish(cfg, net, spaces, runs, loop, evaluations, train_seconds)


class _Loop:
    """The iteration loop's state and steps (kept out of :func:`train` to stay readable)."""

    def __init__(
        self,
        cfg: MultiSeedConfig,
        seed_cfgs: list[Config],
        net: StackedActorCritic,
        optimizer: StackedAdam,
        group: dict[str, Any],
        lr0: torch.Tensor,
        env: Any,
        spaces: dict[str, Any],
        runs: list[TrainingRun],
        next_obs: torch.Tensor,
    ) -> None:
        self.cfg, self.base, self.seed_cfgs = cfg, cfg.ppo, seed_cfgs
        self.net, self.optimizer, self.group, self.lr0 = net, optimizer, group, lr0
        self.env, self.spaces, self.runs, self.next_obs = env, spaces, runs, next_obs
        k = cfg.num_agents
        device = next_obs.device
        self.storage = make_rollout(
            replace_config(self.base, {"num_envs": k * net.num_envs}), spaces, device
        )
        self.tracker = AgentEpisodes(k, net.num_envs, device)
        self.reward_sum = torch.zeros(k * net.num_envs, dtype=torch.float64, device=device)
        self.obs_rms = (
            GroupedRunningMeanStd(k, tuple(spaces["obs_shape"]), device)
            if self.base.norm_obs
            else None
        )
        self.reward_scaler = (
            GroupedRewardScaler(k, net.num_envs, self.base.gamma, self.base.clip_reward, device)
            if self.base.norm_reward
            else None
        )
        self.iteration = 0
        self.active = [True] * k  # False once an agent reached target_return (frozen, lr 0)
        self.steps = [0] * k  # each agent's own global_step (frozen at its stop)
        self.reached_step: list[int | None] = [None] * k
        self.best = [-math.inf] * k
        self.recent: list[list[list[float]]] = [[] for _ in range(k)]
        self.last_metrics: list[dict[str, float]] = [{} for _ in range(k)]
        self.lrs = [0.0] * k
        self.lr = torch.zeros_like(lr0)  # (K,) this iteration's rates, updated in place
        self.graphed_iterations = 0
        self.keep_check = False  # see check(); set by run()
        self.check_evaluator: Evaluator | None = None
        self.checks = 0  # deterministic checks run (one per iteration at most), all agents'
        self.checked_agents = 0  # agents evaluated over those checks
        self.check_seconds = 0.0  # wall-clock of those checks (each ends on a host copy)
        self.group_dir: Path | None = None  # where multiseed.pt goes (None: no run folders)

    def group_state(self) -> dict[str, Any]:
        """Everything :meth:`restore` needs to continue exactly: the stacked weights and Adam
        state, every agent's statistics and stop-rule state, the shared env and RNG streams."""
        opt = self.optimizer
        return {
            "algo": ALGO + "-multiseed",
            "model": {f"param_{i}": p.detach().clone() for i, p in enumerate(self.net.params)},
            "optimizer": {
                "step_count": opt.step_count,
                "agent_steps": None if opt.agent_steps is None else opt.agent_steps.clone(),
                "exp_avg": [m.clone() for m in opt.exp_avg],
                "exp_avg_sq": [v.clone() for v in opt.exp_avg_sq],
            },
            "config": config_to_dict(self.base),
            "multiseed": {
                "seeds": list(self.cfg.seeds),
                "learning_rates": (
                    None if self.cfg.learning_rates is None else list(self.cfg.learning_rates)
                ),
                "eval_episodes": self.cfg.eval_episodes,
                "solved_return": self.cfg.solved_return,
            },
            "run_dirs": [str(run.run_dir) for run in self.runs],
            "env_id": self.base.env_id,
            "iteration": self.iteration,
            "active": list(self.active),
            "steps": list(self.steps),
            "reached_step": [-1 if s is None else s for s in self.reached_step],
            "best": list(self.best),
            "recent_rewards": [[list(x) for x in r] for r in self.recent],
            "obs_rms": None if self.obs_rms is None else self.obs_rms.state_dict(),
            "return_rms": None if self.reward_scaler is None else self.reward_scaler.state_dict(),
            "env_state": self.env.state_dict() if hasattr(self.env, "state_dict") else None,
            "next_obs": self.next_obs.clone(),
            "rng": rng_state(),
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Load :meth:`group_state`'s output (same seeds and sizes); RNG streams last."""
        device = self.next_obs.device
        with torch.no_grad():
            for i, p in enumerate(self.net.params):
                p.copy_(saved["model"][f"param_{i}"])
        opt, state = self.optimizer, saved["optimizer"]
        opt.step_count = int(state["step_count"])
        opt.agent_steps = None if state["agent_steps"] is None else state["agent_steps"].to(device)
        for mine, theirs in (
            (opt.exp_avg, state["exp_avg"]),
            (opt.exp_avg_sq, state["exp_avg_sq"]),
        ):
            for m, t in zip(mine, theirs, strict=True):
                m.copy_(t)
        if self.obs_rms is not None:
            self.obs_rms.load_state_dict(saved["obs_rms"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(saved["return_rms"])
        if saved["env_state"] is not None:
            self.env.load_state_dict(saved["env_state"])
            self.next_obs = saved["next_obs"].to(device)
        else:  # Gymnasium's numpy envs keep no state: their episodes restart
            self.next_obs, _ = self.env.reset(seed=env_seed(self.cfg.seeds) + saved["iteration"])
        self.iteration = int(saved["iteration"])
        self.active = [bool(a) for a in saved["active"]]
        self.steps = [int(s) for s in saved["steps"]]
        self.reached_step = [None if s < 0 else int(s) for s in saved["reached_step"]]
        self.best = [float(b) for b in saved["best"]]
        self.recent = [[list(x) for x in r] for r in saved["recent_rewards"]]
        for k, run in enumerate(self.runs):
            run.restore_schedule(self.steps[k], self.best[k])
        set_rng_state(saved["rng"])

    def save_group(self) -> None:
        """Write ``multiseed.pt`` (atomically) into the group folder, if there is one."""
        if self.group_dir is not None:
            self.group_dir.mkdir(parents=True, exist_ok=True)
            save_checkpoint(self.group_state(), self.group_dir / GROUP_CHECKPOINT)

    def payload(self, k: int) -> dict[str, Any]:
        """Agent ``k``'s checkpoint with :func:`agents.ppo.checkpoint_payload`'s keys (the env's
        exact state excepted: its rows belong to a ``K * N`` env)."""
        n = self.net.num_envs
        payload: dict[str, Any] = {
            "algo": ALGO,
            "model": self.net.state_dict(k),
            "optimizer": _optimizer_state(self.net, self.optimizer, k, self.group, self.lrs[k]),
            "config": config_to_dict(self.seed_cfgs[k]),
            "env_id": self.base.env_id,
            "iteration": self.iteration,
            "best_return": self.best[k],
            "recent_rewards": [list(x) for x in self.recent[k]],
            "rng": rng_state(),
            "spaces": self.spaces,
            "next_obs": self.next_obs[k * n : (k + 1) * n].clone(),
        }
        if self.obs_rms is not None:
            payload["obs_rms"] = self.obs_rms.group(k).state_dict()
        if self.reward_scaler is not None:
            payload["return_rms"] = self.reward_scaler.agent_state(k)
        return payload

    def save_all(self, step: int, snapshot: bool) -> None:
        for k, run in enumerate(self.runs):
            run.save(self.payload(k), step, snapshot=snapshot)

    def rollout(self, next_obs: torch.Tensor) -> torch.Tensor:
        return collect_rollout(
            self.env, self.net, self.storage, next_obs, self.tracker, obs_rms=self.obs_rms,
            reward_scaler=self.reward_scaler, clip_obs=self.base.clip_obs,
            reward_sum=self.reward_sum,
        )  # fmt: skip

    def learn(self) -> torch.Tensor:
        """GAE, the update at the rates in ``self.lr``, and per agent ``(K, 7)``: the 5 loss
        statistics, explained variance and whether every parameter is finite."""
        batch = self.batch()
        stats = update(self.net, self.optimizer, batch, self.lr, self.base)  # (K, 5)
        with torch.no_grad():
            finite = self.net.flat.isfinite().all(1)  # (K,)
            var_returns = batch["returns"].var(1)
            explained = torch.where(
                var_returns > 0,
                1 - (batch["returns"] - batch["values"]).var(1) / var_returns,
                torch.nan,
            )
            return torch.cat(
                [stats.double(), explained.double()[:, None], finite.double()[:, None]], 1
            )

    def run(self) -> None:
        base, k_agents = self.base, self.cfg.num_agents
        graphs = None
        if base.cuda_graphs and ppo_graphs.env_unsupported(self.env, self.lr.device) is None:
            self.optimizer.capturable = True
            graphs = ppo_graphs.IterationGraphs(self.env, self.rollout, self.learn)
            self.keep_check = True
        while self.iteration < base.num_iterations and any(self.active):
            self.iteration += 1
            frac = 1.0 - (self.iteration - 1.0) / base.num_iterations if base.anneal_lr else 1.0
            active = torch.tensor(self.active, dtype=self.lr0.dtype, device=self.lr0.device)
            self.lr.copy_(self.lr0 * (frac * active))  # (K,): 0 freezes a solved agent
            self.lrs = [
                lr_k * frac if on else 0.0
                for lr_k, on in zip(self.cfg.agent_learning_rates, self.active, strict=True)
            ]
            if graphs is not None:
                self.next_obs, learned = graphs.iteration(self.next_obs)
            else:
                self.next_obs = self.rollout(self.next_obs)
                learned = self.learn()
            with torch.no_grad():
                host = torch.cat(
                    [
                        self.tracker.take(),
                        learned,
                        self.reward_sum.view(k_agents, -1).sum(1, keepdim=True),
                    ],
                    1,
                ).tolist()  # sync: the one host sync of the iteration, (K, 11)
                self.reward_sum.zero_()
            if graphs is not None:
                self.graphed_iterations = graphs.replays
            bad = [
                self.cfg.seeds[k]
                for k in range(k_agents)
                if not (host[k][9] and all(math.isfinite(v) for v in host[k][3:8]))
            ]
            if bad:
                raise TrainingDiverged(
                    f"multi-seed PPO diverged at iteration {self.iteration} for seed(s) {bad}: a loss or "
                    "parameter is not finite; the last good checkpoints are kept. Try a lower "
                    "learning_rate or max_grad_norm"
                )
            reached = self.reached(host)
            for k in range(k_agents):
                if self.active[k]:
                    self.log_agent(k, host[k], reached[k])
            finished = self.iteration == base.num_iterations or not any(self.active)
            if finished or self.iteration % base.checkpoint_every == 0:
                self.save_group()
            if self.runs:
                done = sum(not a for a in self.active)
                returns = [
                    m["charts/episodic_return"]
                    for m in self.last_metrics
                    if "charts/episodic_return" in m
                ]
                status = f"solved {done}/{k_agents}"
                if returns:
                    status = f"mean return {statistics.fmean(returns):.1f} | " + status
                self.runs[0].update_progress(self.iteration * base.batch_size, status)

    def batch(self) -> dict[str, torch.Tensor]:
        """GAE over the ``(T, K * N)`` rollout, regrouped per agent as ``(K, B, ...)``."""
        s, base = self.storage, self.base
        advantages, returns = compute_gae(
            s.rewards,
            s.values,
            s.next_values,
            s.terminated,
            s.truncated,
            base.gamma,
            base.gae_lambda,
        )  # (T, K * N) each: the recursion is per column, so per agent
        by_agent = self.net._by_agent
        return {
            "obs": by_agent(s.obs.flatten(0, 1).flatten(1)),
            "actions": by_agent(s.actions.flatten(0, 1)),
            "logprobs": by_agent(s.logprobs.flatten()),
            "advantages": by_agent(advantages.flatten()),
            "returns": by_agent(returns.flatten()),
            "values": by_agent(s.values.flatten()),
        }

    def reached(self, host: list[list[float]]) -> list[bool]:
        """Per agent: reached ``target_return`` this iteration (as :func:`agents.ppo.train`
        judges it; one stacked deterministic check for every agent whose window passed)."""
        base = self.base
        window = [
            _window_return(self.recent[k], row[0], row[10], base.target_window)
            if self.active[k]
            else None
            for k, row in enumerate(host)
        ]
        reached = [
            base.target_return is not None and w is not None and w >= base.target_return
            for w in window
        ]
        if base.target_check_episodes > 0 and any(reached):
            passed = [k for k, r in enumerate(reached) if r]
            started = time.perf_counter()
            means = self.check(passed, self.cfg.seeds[0] + self.iteration * base.batch_size)
            self.check_seconds += time.perf_counter() - started
            self.checks += 1
            self.checked_agents += len(passed)
            reached = [False] * len(reached)
            for k, mean in zip(passed, means, strict=True):
                reached[k] = mean >= base.target_return
        return reached

    def check(self, passed: list[int], seed: int) -> list[float]:
        """The deterministic check's mean return for each agent in ``passed``, from fresh
        episodes seeded with ``seed`` (RNG streams untouched).

        With :attr:`keep_check` (CUDA graphs on a CUDA sandbox env), every agent runs in one
        :class:`rl.evaluation.Evaluator` kept for the run, the other agents' rows ignored:
        its first check captures the steps in a graph and later checks only replay it, a
        fixed cost whatever ``passed`` holds. Otherwise only the agents in ``passed`` run: on
        the CPU the cost grows with the rows.
        """
        base, episodes = self.base, self.base.target_check_episodes
        device = self.next_obs.device
        if not self.keep_check:
            obs_rms = self.obs_rms.subset(passed) if self.obs_rms is not None else None
            with torch.random.fork_rng(devices=[]):
                checks = evaluate_stacked(
                    self.net.subset(passed), base, episodes, seed, device, self.spaces,
                    obs_rms=obs_rms,
                )  # fmt: skip
            return [check.mean_return for check in checks]
        if self.check_evaluator is None:
            rms = self.obs_rms
            act = stacked_act(self.net, episodes, base.clip_obs, self.spaces, device, rms)
            self.check_evaluator = Evaluator(
                act, base.env_id, episodes=self.cfg.num_agents * episodes, device=device,
                env_kwargs=base.env_kwargs,
                watch=[self.net.flat, *(() if rms is None else (rms.mean, rms.var))],
            )  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            returns = self.check_evaluator(seed).returns
        return [sum(returns[k * episodes : (k + 1) * episodes]) / episodes for k in passed]

    def log_agent(self, k: int, host: list[float], reached: bool) -> None:
        """One agent's iteration: TensorBoard, target stop, checkpoints (as ppo's loop)."""
        base = self.base
        self.steps[k] = self.iteration * base.batch_size
        count, total, length = host[:3]
        metrics = {f"losses/{name}": v for name, v in zip(LOSS_NAMES, host[3:8], strict=True)}
        metrics["losses/explained_variance"] = host[8]
        metrics["charts/learning_rate"] = self.lrs[k]
        mean_return = None
        if count > 0:
            mean_return = total / count
            metrics["charts/episodic_return"] = mean_return
            metrics["charts/episodic_length"] = length / count
        if reached:
            self.active[k] = False
            self.reached_step[k] = self.steps[k]
        last = reached or self.iteration == base.num_iterations
        self.last_metrics[k] = metrics
        if not self.runs:
            if mean_return is not None:
                self.best[k] = max(self.best[k], mean_return)
            return
        run = self.runs[k]
        metrics["charts/SPS"] = run.sps(self.steps[k])
        run.log(metrics, self.steps[k])
        improved = mean_return is not None and mean_return > self.best[k]
        snapshot = last or run.snapshot_due(self.steps[k])
        if improved or snapshot or self.iteration % base.checkpoint_every == 0:
            self.best[k] = max(self.best[k], mean_return if mean_return is not None else -math.inf)
            run.save(self.payload(k), self.steps[k], mean_return=mean_return, snapshot=snapshot)


def _finish(
    cfg: MultiSeedConfig,
    net: StackedActorCritic,
    spaces: dict[str, Any],
    runs: list[TrainingRun],
    loop: _Loop,
    evaluations: list[EvalResult],
    train_seconds: float,
) -> MultiSeedResult:
    """Per-seed rows, eval.json per run, the summary (mean ± std over seeds) and its JSON."""
    base = cfg.ppo
    bar = cfg.solved_return
    if bar is None:
        import gymnasium

        bar = gymnasium.spec(base.env_id).reward_threshold
    per_seed = []
    for k, seed in enumerate(cfg.seeds):
        row: dict[str, Any] = {
            "seed": seed,
            "learning_rate": cfg.agent_learning_rates[k],
            "global_step": loop.steps[k],
            "reached_target_step": loop.reached_step[k],
            "run_dir": str(runs[k].run_dir) if runs else None,
            **{key: v for key, v in loop.last_metrics[k].items()},
        }
        if evaluations:
            ev = evaluations[k]
            row.update(eval_mean_return=ev.mean_return, eval_std_return=ev.std_return)
            if bar is not None:
                row["solved"] = ev.mean_return >= bar
            if runs:
                write_json(runs[k].run_dir / "eval.json", ev.to_json())
        per_seed.append(row)
    summary: dict[str, Any] = {
        "env_id": base.env_id,
        "num_agents": cfg.num_agents,
        "seeds": list(cfg.seeds),
        "num_envs_per_agent": base.num_envs,
        "iterations": loop.iteration,
        "graphed_iterations": loop.graphed_iterations,
        "train_seconds": train_seconds,
        "reached_target": sum(s is not None for s in loop.reached_step),
        "target_checks": loop.checks,
        "target_checked_agents": loop.checked_agents,
        "target_check_seconds": loop.check_seconds,
        "solved_return": bar,
    }
    if evaluations:
        means = [ev.mean_return for ev in evaluations]
        summary.update(
            eval_mean_return=statistics.fmean(means),
            eval_std_return=statistics.pstdev(means),
            eval_min_return=min(means),
            eval_max_return=max(means),
        )
        if bar is not None:
            summary["solve_rate"] = sum(m >= bar for m in means) / len(means)
    summary_path = None
    if runs and loop.group_dir is not None:
        summary["group_dir"] = str(loop.group_dir)
        summary_path = write_json(
            loop.group_dir.parent / f"{loop.group_dir.name}.json", {**summary, "per_seed": per_seed}
        )
    policies = [
        net.policy(
            k,
            spaces,
            base.hidden_sizes,
            base.init_log_std,
            loop.obs_rms.group(k) if loop.obs_rms is not None else None,
            base.clip_obs,
        )
        for k in range(cfg.num_agents)
    ]
    return MultiSeedResult(
        seeds=cfg.seeds,
        policies=policies,
        run_dirs=[r.run_dir for r in runs] if runs else [None] * cfg.num_agents,
        per_seed=per_seed,
        summary=summary,
        summary_path=summary_path,
        evaluations=evaluations,
    )


def format_summary(result: MultiSeedResult) -> str:
    """A few lines for the terminal: per-seed returns and mean ± std."""
    s = result.summary
    lines = [f"{s['env_id']}: {s['num_agents']} seeds in {s['train_seconds']:.1f} s"]
    if "eval_mean_return" in s:
        lines.append(
            f"final eval return {s['eval_mean_return']:.1f} ± {s['eval_std_return']:.1f} "
            f"(min {s['eval_min_return']:.1f}, max {s['eval_max_return']:.1f})"
            + (f", solved {s['solve_rate']:.0%}" if "solve_rate" in s else "")
        )
        per = ", ".join(f"{r['seed']}: {r['eval_mean_return']:.0f}" for r in result.per_seed)
        lines.append(f"per seed: {per}")
    if result.summary_path is not None:
        lines.append(f"summary: {result.summary_path}")
    if "group_dir" in s:
        lines.append(f"group folder (for --resume): {s['group_dir']}")
    return "\n".join(lines)


# -- python -m agents.multiseed ------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m agents.multiseed --seeds 0-7 --env-id sandbox/CartPole-v1 [--set k=v ...]``."""
    import argparse

    from agents.ppo import default_config
    from rl.config import parse_overrides

    parser = argparse.ArgumentParser(
        prog="python -m agents.multiseed",
        description="Train one PPO agent per seed together (unset fields: the env's preset).",
    )
    parser.add_argument("--seeds", default="0-7", help="e.g. 0-63 or 0,1,5")
    parser.add_argument("--env-id", default="sandbox/CartPole-v1")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    base = default_config(args.env_id, **parse_overrides(args.set))
    cfg = MultiSeedConfig(
        ppo=base, seeds=parse_seeds(args.seeds), write_runs=base.write_run,
        eval_episodes=base.eval_episodes, progress=base.progress,
    )  # fmt: skip
    print(format_summary(train(cfg)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
