"""What every agent hands back: a policy to act with and a training result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from rl.evaluation import EvalResult


@dataclass
class PolicyView:
    """What a policy thinks of a batch of observations, for HUDs and debugging.

    Attributes:
        value: ``(N,)`` the state value (``V(s)``, or ``max_a Q(s, a)`` for DQN).
        probs: ``(N, A)`` action probabilities for discrete actions (greedy one-hot for DQN).
        q_values: ``(N, A)`` for value-based agents.
        mean, std: ``(N, *action_shape)`` for Gaussian policies.
    """

    value: torch.Tensor
    probs: torch.Tensor | None = None
    q_values: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None


@runtime_checkable
class Policy(Protocol):
    """A trained (or untrained) policy over batches of observations."""

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """``(N, *obs_shape)`` observations → ``(N, ...)`` actions on the same device."""
        ...

    def explain(self, obs: torch.Tensor) -> PolicyView:
        """Action probabilities (or Gaussian mean/std) and value estimates for ``obs``."""
        ...


@dataclass
class TrainResult:
    """What ``train`` returns."""

    policy: Policy
    global_step: int
    run_dir: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation: EvalResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)
