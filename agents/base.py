"""What every agent hands back: a policy to act with and a training result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from gymnasium import spaces

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


def space_spec(observation_space: spaces.Space, action_space: spaces.Space) -> dict[str, Any]:
    """The single-env spaces as tensors and plain values, for a checkpoint's ``"spaces"`` entry.

    Enough to rebuild a network without the env: ``obs_shape``, ``action_kind``
    (``"discrete"``/``"box"``) and ``action_n`` or ``action_shape``/``action_low``/``action_high``.

    Raises:
        ValueError: for spaces the agents do not support.
    """
    if not isinstance(observation_space, spaces.Box):
        raise ValueError(f"observation space {observation_space} is not supported; expected a Box")
    spec: dict[str, Any] = {"obs_shape": [int(d) for d in observation_space.shape]}
    if isinstance(action_space, spaces.Discrete):
        if int(action_space.start) != 0:
            raise ValueError(f"action space {action_space} must start at 0")
        spec.update(action_kind="discrete", action_n=int(action_space.n))
    elif isinstance(action_space, spaces.Box):
        spec.update(
            action_kind="box",
            action_shape=[int(d) for d in action_space.shape],
            action_low=torch.as_tensor(action_space.low, dtype=torch.float32),
            action_high=torch.as_tensor(action_space.high, dtype=torch.float32),
        )
    else:
        raise ValueError(f"action space {action_space} is not supported; expected Discrete or Box")
    return spec


def check_space_spec(
    saved: dict[str, Any],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    env_id: str,
) -> None:
    """Raise ``ValueError`` (one line) unless an env's spaces fit a checkpoint's ``"spaces"``."""
    try:
        current = space_spec(observation_space, action_space)
    except ValueError as exc:
        raise ValueError(f"{env_id}: {exc}") from None
    for key in ("obs_shape", "action_kind", "action_n", "action_shape"):
        if saved.get(key) != current.get(key):
            raise ValueError(
                f"{env_id} does not match the checkpoint's spaces: {key} is "
                f"{current.get(key)!r} there but {saved.get(key)!r} in the checkpoint"
            )
    for key in ("action_low", "action_high"):
        if key in saved and not torch.equal(saved[key].float().cpu(), current[key]):
            raise ValueError(
                f"{env_id} does not match the checkpoint's spaces: {key} is "
                f"{current[key].tolist()} there but {saved[key].tolist()} in the checkpoint"
            )
