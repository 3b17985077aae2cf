"""GAE and discounted returns against answers worked out by hand."""

from __future__ import annotations

import warnings

import pytest
import torch

from rl.returns import compute_gae, discounted_returns, explained_variance

GAMMA, LAMBDA = 0.5, 0.5
REWARDS = torch.tensor([[1.0], [2.0], [3.0]])  # (T=3, N=1)
VALUES = torch.tensor([[0.5], [1.0], [1.5]])
NEXT_VALUES = torch.tensor([[1.0], [1.5], [2.0]])
NO = torch.zeros(3, 1, dtype=torch.bool)


def flags(*steps: int) -> torch.Tensor:
    out = torch.zeros(3, 1, dtype=torch.bool)
    for t in steps:
        out[t, 0] = True
    return out


def test_gae_without_episode_end() -> None:
    # deltas: 1 + .5*1 - .5 = 1 ; 2 + .5*1.5 - 1 = 1.75 ; 3 + .5*2 - 1.5 = 2.5
    # A2 = 2.5 ; A1 = 1.75 + .25*2.5 = 2.375 ; A0 = 1 + .25*2.375 = 1.59375
    adv, ret = compute_gae(REWARDS, VALUES, NEXT_VALUES, NO, NO, GAMMA, LAMBDA)
    assert adv[:, 0].tolist() == pytest.approx([1.59375, 2.375, 2.5])
    assert ret[:, 0].tolist() == pytest.approx([2.09375, 3.375, 4.0])


def test_gae_termination_does_not_bootstrap() -> None:
    # Terminated at t=1: delta1 = 2 - 1 = 1 and the recursion stops there.
    # A2 = 2.5 ; A1 = 1.0 ; A0 = 1 + .25*1 = 1.25
    adv, _ = compute_gae(REWARDS, VALUES, NEXT_VALUES, flags(1), NO, GAMMA, LAMBDA)
    assert adv[:, 0].tolist() == pytest.approx([1.25, 1.0, 2.5])


def test_gae_truncation_bootstraps_from_final_obs_value() -> None:
    # Truncated at t=1 with V(final_obs) = 4: delta1 = 2 + .5*4 - 1 = 3; the recursion stops.
    # A2 = 2.5 ; A1 = 3.0 ; A0 = 1 + .25*3 = 1.75
    next_values = NEXT_VALUES.clone()
    next_values[1, 0] = 4.0
    adv, _ = compute_gae(REWARDS, VALUES, next_values, NO, flags(1), GAMMA, LAMBDA)
    assert adv[:, 0].tolist() == pytest.approx([1.75, 3.0, 2.5])


def test_terminated_and_truncated_together_counts_as_terminated() -> None:
    next_values = NEXT_VALUES.clone()
    next_values[1, 0] = 4.0
    adv, _ = compute_gae(REWARDS, VALUES, next_values, flags(1), flags(1), GAMMA, LAMBDA)
    assert adv[:, 0].tolist() == pytest.approx([1.25, 1.0, 2.5])


def test_gae_rows_are_independent() -> None:
    rewards = torch.cat([REWARDS, REWARDS], dim=1)
    values = torch.cat([VALUES, VALUES], dim=1)
    next_values = torch.cat([NEXT_VALUES, NEXT_VALUES], dim=1)
    terminated = torch.cat([NO, flags(1)], dim=1)
    adv, _ = compute_gae(
        rewards, values, next_values, terminated, torch.zeros_like(terminated), GAMMA, LAMBDA
    )
    assert adv[:, 0].tolist() == pytest.approx([1.59375, 2.375, 2.5])
    assert adv[:, 1].tolist() == pytest.approx([1.25, 1.0, 2.5])


def test_discounted_returns_by_hand() -> None:
    # gamma .5, bootstrap V(s_3) = 2: G2 = 3 + .5*2 = 4 ; G1 = 2 + .5*4 = 4 ; G0 = 1 + .5*4 = 3
    ret = discounted_returns(REWARDS, NO, NO, NEXT_VALUES, GAMMA)
    assert ret[:, 0].tolist() == pytest.approx([3.0, 4.0, 4.0])
    # Terminated at t=1: G1 = 2 ; G0 = 1 + .5*2 = 2
    ret = discounted_returns(REWARDS, flags(1), NO, NEXT_VALUES, GAMMA)
    assert ret[:, 0].tolist() == pytest.approx([2.0, 2.0, 4.0])
    # Truncated at t=1 with V(final_obs) = 4: G1 = 2 + .5*4 = 4 ; G0 = 1 + .5*4 = 3
    next_values = NEXT_VALUES.clone()
    next_values[1, 0] = 4.0
    ret = discounted_returns(REWARDS, NO, flags(1), next_values, GAMMA)
    assert ret[:, 0].tolist() == pytest.approx([3.0, 4.0, 4.0])


def test_lambda_one_gae_equals_discounted_returns() -> None:
    gen = torch.Generator().manual_seed(0)
    T, N = 20, 6
    rewards = torch.randn(T, N, generator=gen, dtype=torch.float64)
    values = torch.randn(T, N, generator=gen, dtype=torch.float64)
    terminated = torch.rand(T, N, generator=gen) < 0.1
    truncated = torch.rand(T, N, generator=gen) < 0.1
    next_values = torch.randn(T, N, generator=gen, dtype=torch.float64)
    # Inside an episode the next state's value is the next row's value.
    done = terminated | truncated
    next_values[:-1] = torch.where(done[:-1], next_values[:-1], values[1:])
    _, gae_returns = compute_gae(rewards, values, next_values, terminated, truncated, 0.9, 1.0)
    expected = discounted_returns(rewards, terminated, truncated, next_values, 0.9)
    torch.testing.assert_close(gae_returns, expected)


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="same"):
        compute_gae(REWARDS, VALUES[:2], NEXT_VALUES, NO, NO, GAMMA, LAMBDA)


def test_explained_variance_by_hand() -> None:
    returns = torch.tensor([1.0, 2.0, 3.0, 4.0])  # sample variance 5/3
    values = torch.tensor([1.0, 2.0, 3.0, 2.0])  # residual 0, 0, 0, 2: sample variance 1
    assert explained_variance(values, returns).item() == pytest.approx(1 - 1 / (5 / 3))
    assert explained_variance(returns, returns).item() == 1.0
    assert explained_variance(torch.full((4,), 2.5), returns).item() == 0.0  # the mean
    # Per row of a (K, B) stack; constant returns have no figure (NaN), as in SB3.
    stacked = explained_variance(
        torch.stack([values, values]), torch.stack([returns, torch.ones(4)]), dim=1
    )
    assert stacked[0].item() == pytest.approx(0.4) and stacked[1].isnan()
    # One return has no spread: NaN, without torch's degrees-of-freedom warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert explained_variance(torch.ones(1), torch.ones(1)).isnan()
        assert explained_variance(torch.ones(3, 1), torch.ones(3, 1), dim=1).isnan().all()
