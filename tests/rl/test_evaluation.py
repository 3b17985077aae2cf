"""rl.evaluation: a kept Evaluator gives each call what a fresh evaluation gives.

On CUDA its later calls replay a graph (tests/agents/test_ppo_graphs.py, ``gpu``-marked). Here,
on the CPU, the graph is emulated with the same fixed buffers (the env pointed back at the
captured carried tensors, observations in and out of one static tensor), which checks what a
kept evaluator adds: each call's reset copied into those buffers, the bookkeeping zeroed, the
replays from the first step on, and a new capture when a watched tensor moves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

import envs  # noqa: F401  (registers the sandbox ids)
from agents.base import target_reached
from rl import evaluation
from rl.evaluation import EvalResult, require_confidence


@pytest.fixture(autouse=True)
def no_cuda_sync_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's sync debug mode is CUDA's; a CPU step never syncs."""

    @contextmanager
    def none_recorded() -> Iterator[list[str]]:
        yield []

    monkeypatch.setattr(evaluation, "host_syncs_recorded", none_recorded)


class EmulatedGraphs(evaluation.Evaluator):
    """An Evaluator whose 'graph' replays its steps eagerly on the captured buffers."""

    captures = 0

    def _start(self, dev: torch.device) -> None:
        super()._start(dev)
        self._graphable = True

    def _capture(self, obs: torch.Tensor) -> torch.Tensor:
        core = self._core
        static_obs = obs.clone()
        carry = core.static_carried()

        def replay() -> None:
            core.load_carried(carry)  # a graph reads the captured memory, whatever the env holds
            out = static_obs
            for _ in range(evaluation.CHECK_EVERY):
                out = self._step(out)
            static_obs.copy_(out)
            core.copy_carried_into(carry)

        self.captures += 1
        self._replay, self._static_obs, self._carry = replay, static_obs, carry
        self._watched = self._pointers()
        return static_obs


def balancer(weights: torch.Tensor) -> Any:
    def act(obs: torch.Tensor) -> torch.Tensor:
        push = (obs[:, 2] + 0.5 * obs[:, 3]) * 50  # episodes long enough to replay
        return (obs @ weights + torch.stack([-push, push], 1)).argmax(-1)

    return act


def test_a_kept_evaluator_equals_fresh_evaluations() -> None:
    torch.manual_seed(0)
    weights = torch.randn(4, 2)
    act = balancer(weights)
    kept = EmulatedGraphs(act, "sandbox/CartPole-v1", episodes=12, watch=lambda: [weights])
    lengths = []
    for seed in (1, 2, 3):
        got = kept(seed)
        want = evaluation.evaluate(act, "sandbox/CartPole-v1", episodes=12, seed=seed)
        assert got.returns == want.returns and got.lengths == want.lengths
        lengths += want.lengths
        weights.mul_(-1.5)  # changed in place between calls, as an optimizer does
    assert kept.captures == 1 and kept.replays > 10
    assert max(lengths) > 2 * evaluation.CHECK_EVERY  # later calls replayed from their start
    kept.close()


def test_a_moved_watched_tensor_is_captured_again() -> None:
    holder = {"weights": torch.randn(4, 2)}

    def act(obs: torch.Tensor) -> torch.Tensor:
        return balancer(holder["weights"])(obs)

    kept = EmulatedGraphs(act, "sandbox/CartPole-v1", episodes=8, watch=lambda: [holder["weights"]])
    kept(1)
    kept(2)
    assert kept.captures == 1
    holder["weights"] = holder["weights"] * 2  # other memory: a graph would read stale values
    got = kept(3)
    assert kept.captures == 2
    assert (
        got.returns == evaluation.evaluate(act, "sandbox/CartPole-v1", episodes=8, seed=3).returns
    )


def test_success_counts_survive_calls_that_only_replay() -> None:
    """DogTraining reports successes: a call that never steps eagerly still counts them."""

    def act(obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0], dtype=torch.long)  # always the first action

    kept = EmulatedGraphs(act, "sandbox/DogTraining-v0", episodes=4)
    first, second = kept(1), kept(2)
    want = evaluation.evaluate(act, "sandbox/DogTraining-v0", episodes=4, seed=2)
    assert first.attempts is not None and second.attempts == want.attempts
    assert second.successes == want.successes and second.returns == want.returns


def test_bad_episodes_are_refused() -> None:
    with pytest.raises(ValueError, match="episodes must be an integer >= 1"):
        evaluation.Evaluator(lambda obs: obs, "sandbox/CartPole-v1", episodes=0)


def test_rows_that_count_end_the_call_and_are_the_ones_summarised() -> None:
    """A mask of rows (multi-seed's check: the agents whose window passed) ends the call when
    those rows' episodes have ended, and summarises them only; the other rows step along."""
    weights = torch.zeros(4, 2)
    good, bad = balancer(weights), lambda obs: torch.zeros(obs.shape[0], dtype=torch.long)

    def act(obs: torch.Tensor) -> torch.Tensor:  # rows 0-5 balance, rows 6-11 fall at once
        return torch.cat([good(obs[:6]), bad(obs[6:])])

    kept = EmulatedGraphs(act, "sandbox/CartPole-v1", episodes=12)
    full = kept(4)
    full_steps = kept.last_steps
    rows = torch.zeros(12, dtype=torch.bool)
    rows[6:] = True
    part = kept(4, rows=rows)
    assert part.returns == full.returns[6:] and part.lengths == full.lengths[6:]
    assert kept.last_steps < full_steps and max(part.lengths) <= kept.last_steps
    for wrong, message in (
        (torch.ones(11, dtype=torch.bool), "shape"),
        (torch.ones(12), "bool mask"),
        (torch.zeros(12, dtype=torch.bool), "no row"),
    ):
        with pytest.raises(ValueError, match=message):
            kept(4, rows=wrong)


def test_split_gives_each_block_of_episodes_its_own_success_rate() -> None:
    result = evaluation.EvalResult(
        "sandbox/DogTraining-v0", [1.0, 0.0, -1.0, 1.0], [5, 6, 7, 8],
        successes=1.0, attempts=4.0,
        episode_successes=[1.0, 0.0, 0.0, 0.0], episode_attempts=[1.0, 1.0, 1.0, 1.0],
    )  # fmt: skip
    first, second = result.split(2)
    assert (first.returns, first.lengths, first.success_rate) == ([1.0, 0.0], [5, 6], 0.5)
    assert (second.returns, second.success_rate) == ([-1.0, 1.0], 0.0)
    plain = evaluation.EvalResult("CartPole-v1", [1.0, 2.0, 3.0], [1, 2, 3]).split(3)
    assert [r.returns for r in plain] == [[1.0], [2.0], [3.0]]
    assert all(r.success_rate is None for r in plain)
    for parts in (0, 3):
        with pytest.raises(ValueError, match=f"cannot split 4 episodes into {parts}"):
            result.split(parts)


def test_episodes_that_never_end_are_a_value_error_naming_the_time_limit() -> None:
    # A RuntimeError with no hint before: rl train and rl eval printed its traceback.
    from rl.evaluation import EpisodesUnfinished

    act = lambda obs: torch.zeros(obs.shape[0], 1)  # noqa: E731 (200-step episodes, 64 allowed)
    with pytest.raises(EpisodesUnfinished, match=r"stopped after 64 steps .*time limit") as info:
        evaluation.evaluate(act, "sandbox/Pendulum-v1", episodes=2, max_steps=64)
    assert isinstance(info.value, ValueError)


def test_lower_bound_is_the_mean_less_z_standard_errors() -> None:
    """95 episodes of 500 and 5 of 100: mean 480, sample std sqrt(760,000 / 99), so at 95 %
    the bound is 480 - 1.64485 * 87.617 / 10 = 465.588; 0.5 gives the mean, and one episode or
    equal returns have no spread to take off."""
    result = EvalResult("CartPole-v1", [500.0] * 95 + [100.0] * 5, [500] * 95 + [100] * 5)
    assert result.lower_bound(0.95) == pytest.approx(465.588, abs=1e-3)
    assert result.lower_bound(0.5) == pytest.approx(480.0)
    assert EvalResult("CartPole-v1", [321.0], [321]).lower_bound(0.99) == 321.0
    assert EvalResult("CartPole-v1", [500.0] * 3, [500] * 3).lower_bound(0.99) == 500.0


def test_the_stop_check_passes_on_its_bound_and_gives_its_mean() -> None:
    """A check averaging 480 clears a target of 475 on its mean, not at 95 % confidence."""
    checked = EvalResult("CartPole-v1", [500.0] * 95 + [100.0] * 5, [500] * 95 + [100] * 5)
    assert target_reached(475.0, 480.0, 100, lambda: checked, confidence=0.5) == 480.0
    assert target_reached(475.0, 480.0, 100, lambda: checked, confidence=0.95) is None
    assert target_reached(465.0, 480.0, 100, lambda: checked, confidence=0.95) == 480.0
    # The window decides first, and without check episodes alone.
    assert target_reached(475.0, 474.0, 100, lambda: checked) is None
    assert target_reached(475.0, 476.0, 0, lambda: checked) == 476.0


def test_a_confidence_outside_half_to_one_is_refused() -> None:
    for value in (0.49, 1.0, math.nan, True, "0.9"):
        with pytest.raises(ValueError, match=r"must be a number in \[0.5, 1\)"):
            require_confidence("target_confidence", value)
    require_confidence("target_confidence", 0.5)


def test_a_non_finite_return_reaches_no_target() -> None:
    """An env that returns inf or NaN gives a check that fails, not a crash in the bound."""
    for bad in (math.inf, -math.inf, math.nan):
        bound = EvalResult("CartPole-v1", [bad, 1.0], [1, 1]).lower_bound(0.95)
        assert not bound >= 0.0
