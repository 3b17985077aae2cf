"""PPO's iterations replayed from CUDA graphs (``Config.cuda_graphs``).

Why: on a GPU a small PPO (CartPole: 32 envs, two 64-64 MLPs) is all launch overhead. A
rollout of 32 steps is over a thousand kernels launched one by one from Python, the update
another thousand or two, and each kernel is done in a few microseconds while the next one is
still being launched. A CUDA graph records those launches once; replaying it is one call, and
the GPU runs the kernels back to back.

How: the first iteration of a :func:`agents.ppo.train` call runs eagerly (the warm-up: Adam's
state, cuBLAS, a compiled env step); the second captures the rollout and the learning step
into two graphs and replays them; every later iteration only replays. A graph replays fixed
kernels on fixed memory, so everything an iteration reads or changes is a tensor updated in
place: the rollout storage, the agent's flat parameter, its gradient and Adam's moments, the
learning rate (a device tensor, filled before each replay), the observations to continue from
and the env's carried tensors (:meth:`envs.core.TorchVectorEnv.carried`; both copied back at
the end of the rollout graph), the episode sums and the normalisation statistics. Random
numbers come from the default CUDA generator, whose graph-safe Philox offsets make a replay
draw what the eager code would: the tests check that captured and eager iterations give the
same weights, bit for bit.

What stays on the host, once per iteration: the learning rate, one copy of the iteration's
statistics to the host (``tolist``), logging, checkpoints and the early-stop check.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from agents import ppo_grads
from rl.device import host_syncs_recorded

if TYPE_CHECKING:
    from agents.ppo import Config


def env_unsupported(env: Any, device: torch.device) -> str | None:
    """Why steps of ``env`` on ``device`` cannot be captured in CUDA graphs, or ``None``."""
    from envs.core import TorchVectorEnv

    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if not isinstance(getattr(env, "unwrapped", None), TorchVectorEnv):
        return "only the sandbox's torch envs step without the host"
    return None


def unsupported(cfg: Config, agent: torch.nn.Module, env: Any, device: torch.device) -> str | None:
    """Why this PPO run cannot replay CUDA graphs, or ``None`` when it can."""
    reason = env_unsupported(env, device)
    if reason is not None:
        return reason
    if cfg.distributed:
        return "distributed runs exchange gradients between ranks every step"
    if cfg.target_kl is not None:
        return "target_kl reads the KL on the host after every epoch"
    if not (cfg.fused_update and ppo_grads.supported(agent)):
        return "only the fused update (fused_update=True, mlp networks) is captured"
    return None


def capturable_adam(optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """Make a (fused) Adam capturable, its learning rate a device tensor; return that tensor
    (fill it to change the rate, see :func:`set_lr`)."""
    group = optimizer.param_groups[0]
    group["capturable"] = True
    group["lr"] = torch.tensor(float(group["lr"]), device=group["params"][0].device)
    return group["lr"]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """The learning rate for the next step, wherever the optimizer keeps it."""
    group = optimizer.param_groups[0]
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)  # a kernel, no sync: ordered before the next replay
    else:
        group["lr"] = lr


class IterationGraphs:
    """Runs PPO iterations: eagerly for the warm-up, then from two captured CUDA graphs
    (single-agent PPO and :mod:`agents.multiseed`'s K agents).

    Args:
        env: the training env (its ``unwrapped`` a :class:`envs.core.TorchVectorEnv`).
        rollout: ``next_obs -> next_obs``, one rollout into the preallocated storage.
        learn: ``() -> stats``, advantages, the update and a tensor of statistics. Everything
            it reads that changes between iterations (a learning rate) must be a tensor
            updated in place, and its optimizer capturable (:func:`capturable_adam`).
    """

    warmup_iterations = 1
    """Eager iterations before the capture (the tests raise it to compare against eager).

    Each eager iteration is also a check that it can be captured: no host syncs and no env
    state outside :meth:`envs.core.TorchVectorEnv.carried`. One that fails it (a first step's
    lazily built constants copy to the device) is followed by another; a second failure, after
    the warm-up, leaves the run eager with a warning (:attr:`eager_reason`)."""

    def __init__(
        self,
        env: Any,
        rollout: Callable[[torch.Tensor], torch.Tensor],
        learn: Callable[[], torch.Tensor],
    ) -> None:
        self.core = env.unwrapped
        self.core.capturable = True
        self.rollout, self.learn = rollout, learn
        self._side = torch.cuda.Stream()  # eager iterations before the capture run on it
        self.iterations = 0
        self.replaying = False
        self.replays = 0
        """Iterations replayed from the graphs so far."""
        self._rollout_graph: torch.cuda.CUDAGraph | None = None
        self._learn_graph: torch.cuda.CUDAGraph | None = None
        self._next_obs: torch.Tensor | None = None
        self._carry: list[torch.Tensor] = []
        self._stats: torch.Tensor | None = None
        self._checked_clean = False  # the last eager iteration passed the capture check
        self.eager_reason: str | None = None
        """Why this run stays eager, once the check found a reason."""

    def iteration(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One rollout and update from ``next_obs``; the observations to continue from and the
        statistics (both overwritten by the next call)."""
        self.iterations += 1
        if not self.replaying:
            if self.eager_reason is not None:
                return self.rollout(next_obs), self.learn()  # on the default stream
            if not (self._checked_clean and self.iterations > self.warmup_iterations):
                return self._checked_eagerly(next_obs)
            try:
                self._capture(next_obs)
            except RuntimeError as exc:
                # Not recoverable in this process: a failed capture leaves torch's CUDA random
                # generator unusable. The check above passed, so this is a bug to report.
                raise RuntimeError(
                    f"cuda_graphs: capturing PPO's iteration failed ({exc}); train with "
                    "cuda_graphs=False (--set cuda_graphs=false)"
                ) from exc
            self.replaying = True
        elif next_obs is not self._next_obs:  # not what the last replay returned: take it
            self._next_obs.copy_(next_obs)
        self._rollout_graph.replay()
        self._learn_graph.replay()
        self.replays += 1
        return self._next_obs, self._stats

    def _checked_eagerly(self, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An eager iteration that also checks it could be captured; on a side stream, as the
        warm-up before a capture should be (autograd's backward runs on its forward's stream)."""
        self._side.wait_stream(torch.cuda.current_stream())
        with (
            torch.cuda.stream(self._side),
            host_syncs_recorded() as syncs,
            self.core.uncarried_changes() as changed,
        ):
            out = self.rollout(next_obs), self.learn()
        torch.cuda.current_stream().wait_stream(self._side)
        self._checked_clean = not syncs and not changed
        if not self._checked_clean and self.iterations > self.warmup_iterations:
            if syncs:
                why = f"an iteration syncs with the host ({syncs[0][:200]})"
            else:
                why = (
                    f"{self.core.env_name} replaces {', '.join(changed)} each step, outside "
                    "the state a graph carries (see TorchVectorEnv.carried)"
                )
            self.eager_reason = why
            warnings.warn(f"cuda_graphs: {why}; training eagerly", RuntimeWarning, stacklevel=3)
        return out

    def _capture(self, next_obs: torch.Tensor) -> None:
        torch.cuda.synchronize()
        self._next_obs = next_obs.clone()
        self._carry = self.core.static_carried()  # what the graph reads and rewrites
        rollout_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(rollout_graph):
            self._next_obs.copy_(self.rollout(self._next_obs))
            self.core.copy_carried_into(self._carry)
        learn_graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(learn_graph):
            self._stats = self.learn()
        self._rollout_graph, self._learn_graph = rollout_graph, learn_graph


def portable_optimizer_state(optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``optimizer.state_dict()`` with a float learning rate and ``capturable`` off, as an
    eager run on any device (the CPU included) loads it; a graphed run sets them again."""
    saved = optimizer.state_dict()
    groups = []
    for group in saved["param_groups"]:
        group = dict(group)
        if isinstance(group.get("lr"), torch.Tensor):
            group["lr"] = float(group["lr"])  # a host sync: at checkpoints only
        if group.get("capturable"):
            group["capturable"] = False
        groups.append(group)
    return {**saved, "param_groups": groups}
