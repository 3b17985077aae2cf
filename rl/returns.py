"""Advantage and return estimators shared by the agents (hand-worked tests in tests/rl)."""

from __future__ import annotations

import torch


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    gae_lambda: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised Advantage Estimation over a ``(T, N)`` rollout with SAME_STEP autoreset.

    Termination and truncation are kept apart (https://arxiv.org/abs/1712.00378):

    * ``next_values[t]`` is ``V(s_{t+1})`` of the transition's *own* next state. For a row whose
      episode ended at ``t`` that is ``V(final_obs)``, not the value of the fresh reset state.
    * ``terminated[t]``: the episode ended in a terminal state, so nothing is bootstrapped.
    * ``truncated[t]`` (and not terminated): bootstrapped from ``V(final_obs)``, but the
      advantage recursion stops there because step ``t+1`` belongs to a new episode.

    Args:
        rewards: ``(T, N)``.
        values: ``(T, N)``, ``V(s_t)``.
        next_values: ``(T, N)``, ``V(s_{t+1})`` as above.
        terminated, truncated: ``(T, N)`` bool.
        gamma: discount factor in [0, 1].
        gae_lambda: GAE's lambda in [0, 1].

    Returns:
        ``(advantages, returns)``, both ``(T, N)``; ``returns = advantages + values``.
    """
    if rewards.shape != values.shape or rewards.shape != next_values.shape:
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and next_values "
            f"{tuple(next_values.shape)} must all have the same (T, N) shape"
        )
    not_terminated = (~terminated).to(values.dtype)
    # The recursion continues into t+1 only while the same episode goes on.
    not_done = (~(terminated | truncated)).to(values.dtype)
    deltas = rewards + gamma * next_values * not_terminated - values  # (T, N)
    advantages = torch.empty_like(values)
    last = torch.zeros_like(values[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        last = deltas[t] + gamma * gae_lambda * not_done[t] * last
        advantages[t] = last
    return advantages, advantages + values


def discounted_returns(
    rewards: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    next_values: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """n-step discounted returns over a ``(T, N)`` rollout, bootstrapped where the data ends.

    Equal to :func:`compute_gae` with ``gae_lambda=1`` plus the values; written out directly
    for A2C and for teaching. The last step and truncated steps bootstrap from
    ``next_values``; terminated steps do not.
    """
    not_terminated = (~terminated).to(rewards.dtype)
    not_done = (~(terminated | truncated)).to(rewards.dtype)
    returns = torch.empty_like(rewards)
    running = next_values[-1] * not_terminated[-1]
    for t in range(rewards.shape[0] - 1, -1, -1):
        bootstrap = next_values[t] * not_terminated[t]
        # Inside an episode the running return carries on; at an episode end it restarts
        # from the bootstrap (0 when terminated, V(final_obs) when truncated).
        running = rewards[t] + gamma * (not_done[t] * running + (1.0 - not_done[t]) * bootstrap)
        returns[t] = running
    return returns


def explained_variance(
    values: torch.Tensor, returns: torch.Tensor, dim: int | None = None
) -> torch.Tensor:
    """``1 - Var(returns - values) / Var(returns)``: how much of the returns' spread the critic
    explains. 1 is a perfect critic, 0 one no better than the returns' mean, below 0 a worse one.

    Over every element, or along ``dim`` (one figure per agent for ``(K, B)`` stacks). NaN
    where the returns are constant and the ratio has no meaning (SB3's convention): logged, never
    checked for finiteness. Sample variances (Bessel's correction), so one element gives NaN.
    """
    if (returns.numel() if dim is None else returns.shape[dim]) < 2:  # (a shape: no host sync)
        shape = () if dim is None else returns.select(dim, 0).shape
        return torch.full(shape, torch.nan, dtype=returns.dtype, device=returns.device)
    var_returns = returns.var(dim)
    return torch.where(var_returns > 0, 1 - (returns - values).var(dim) / var_returns, torch.nan)
