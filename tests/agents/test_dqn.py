"""DQN: replay buffer, transition storage, smoke training, checkpoints, determinism, exact
resume (with and without the saved buffer), Box rejection, divergence, and (slow) learning."""

from __future__ import annotations

import copy
import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from agents import dqn
from rl.checkpoint import load_checkpoint
from rl.config import replace_config
from rl.evaluation import EvalResult, Evaluator
from rl.runs import TrainingDiverged, TrainingRun, list_snapshots, read_json
from rl.vector import make_vector_env

CARTPOLE = "sandbox/CartPole-v1"


# A check whose 100 episodes average 6 with a spread (95 at 26, 5 at -374): above a target of 1
# on its mean (confidence 0.5), below it at 95 % (6 - 1.645 * 87.6 / 10 = -8.4).
SPREAD = EvalResult("sandbox/CartPole-v1", [26.0] * 95 + [-374.0] * 5, [1] * 100)


def tiny(env_id: str = CARTPOLE, **overrides: Any) -> dqn.Config:
    """A second's worth of training: 800 steps of 4 envs, learning from step 200."""
    base: dict[str, Any] = {
        "total_timesteps": 800,
        "num_envs": 4,
        "buffer_size": 1_000,
        "learning_starts": 200,
        "batch_size": 32,
        "train_frequency": 4,
        "gradient_steps": 1,
        "target_network_frequency": 100,
        "hidden_sizes": (32, 32),
        "device": "cpu",
        "eval_episodes": 0,
        "progress": False,
        "log_every": 50,
        "checkpoint_every": 50,
        "target_return": None,
        "anneal_lr": False,
    }
    return dqn.default_config(env_id, **{**base, **overrides})


def weights(policy: dqn.DQNPolicy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.q_network.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def batch(start: int, n: int, obs_dim: int = 2) -> dqn.Transitions:
    """``n`` transitions numbered ``start..start+n-1`` (the number in every field)."""
    ids = torch.arange(start, start + n)
    obs = ids.float().unsqueeze(-1).repeat(1, obs_dim)
    return dqn.Transitions(obs, ids, ids.float(), obs + 0.5, ids % 2 == 0)


# -- replay buffer --------------------------------------------------------------------------------
def test_buffer_wraps_around_overwriting_the_oldest() -> None:
    buffer = dqn.ReplayBuffer(5, (2,), torch.device("cpu"))
    buffer.add(batch(0, 3))
    assert (buffer.pos, buffer.size) == (3, 3)
    buffer.add(batch(3, 3))  # rows 3, 4 then wraps to row 0
    assert (buffer.pos, buffer.size) == (1, 5)
    assert buffer.data.actions.tolist() == [5, 1, 2, 3, 4]
    assert buffer.data.obs[:, 0].tolist() == [5.0, 1.0, 2.0, 3.0, 4.0]
    assert buffer.data.next_obs[0].tolist() == [5.5, 5.5]
    assert buffer.data.terminated.tolist() == [False, False, True, False, True]
    buffer.add(batch(6, 5))  # exactly the capacity: every row replaced, in ring order
    assert buffer.data.actions.tolist() == [10, 6, 7, 8, 9] and buffer.pos == 1
    with pytest.raises(ValueError, match="cannot add 6"):
        buffer.add(batch(0, 6))


def test_sampling_is_uniform_over_filled_rows_on_the_device_and_seeded() -> None:
    device = torch.device("cpu")
    buffer = dqn.ReplayBuffer(100, (2,), device)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(4, torch.Generator(device=device))
    buffer.add(batch(0, 10))
    draws = [buffer.sample(512, torch.Generator(device=device).manual_seed(7)) for _ in range(2)]
    assert torch.equal(draws[0].actions, draws[1].actions)  # same generator seed, same rows
    sample = draws[0]
    assert sample.obs.device == device and sample.obs.shape == (512, 2)
    assert set(sample.actions.tolist()) == set(range(10))  # only filled rows, each of them
    # Every field of a sampled row comes from the same transition.
    assert torch.equal(sample.obs[:, 0], sample.actions.float())
    assert torch.equal(sample.next_obs[:, 0], sample.actions.float() + 0.5)
    assert torch.equal(sample.terminated, sample.actions % 2 == 0)


@pytest.mark.gpu
def test_buffer_lives_and_samples_on_cuda() -> None:
    device = torch.device("cuda")
    buffer = dqn.ReplayBuffer(16, (2,), device)
    buffer.add(dqn.Transitions(*(t.to(device) for t in batch(0, 12))))
    sample = buffer.sample(8, torch.Generator(device=device).manual_seed(0))
    assert all(t.device.type == "cuda" for t in (*buffer.data, *sample))


def test_buffer_state_round_trips() -> None:
    device = torch.device("cpu")
    buffer = dqn.ReplayBuffer(8, (2,), device)
    buffer.add(batch(0, 5))
    state = buffer.state_dict()
    assert state["obs"].shape == (5, 2)  # only the filled rows are saved
    copy = dqn.ReplayBuffer(8, (2,), device)
    copy.load_state_dict(state)
    assert (copy.pos, copy.size) == (5, 5)
    for mine, theirs in zip(buffer.data, copy.data, strict=True):
        assert torch.equal(mine, theirs)
    with pytest.raises(ValueError, match="same buffer_size"):
        dqn.ReplayBuffer(9, (2,), device).load_state_dict(state)


def test_final_obs_is_stored_for_rows_that_ended() -> None:
    env = make_vector_env(CARTPOLE, 16, "cpu")
    obs, _ = env.reset(seed=0)
    buffer = dqn.ReplayBuffer(10_000, (4,), torch.device("cpu"))
    pushes = torch.zeros(16, dtype=torch.long)  # always push left: every cart falls soon
    ended_rows = 0
    for _ in range(60):
        next_obs, rewards, terminated, truncated, info = env.step(pushes)
        start = buffer.pos
        dqn.store_transitions(buffer, obs, pushes, rewards, terminated, info)
        done = terminated | truncated
        stored = buffer.data.next_obs[start : start + 16]
        assert torch.equal(stored[done], info["final_obs"][done])
        assert torch.equal(stored[~done], next_obs[~done])
        assert torch.equal(buffer.data.terminated[start : start + 16], terminated)
        ended_rows += int(done.sum())
        obs = next_obs
    env.close()
    assert ended_rows > 0
    # A stored final observation is the failing state itself, not a fresh reset state.
    fell = buffer.data.terminated[: buffer.size]
    assert bool((buffer.data.next_obs[: buffer.size][fell][:, 2].abs() > 0.2).all())


def test_truncated_transitions_still_bootstrap() -> None:
    net = dqn.QNetwork({"obs_shape": [2], "action_kind": "discrete", "action_n": 2}, (8,), "relu")
    cfg = tiny(gamma=0.5, double_dqn=False)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.net[-1].bias.copy_(torch.tensor([1.0, 3.0]))  # Q(s, .) = (1, 3) everywhere
    obs = torch.zeros(2, 2)
    sample = dqn.Transitions(
        obs, torch.tensor([0, 0]), torch.tensor([1.0, 1.0]), obs, torch.tensor([True, False])
    )
    # Terminated: target 1; truncated (not terminated): 1 + 0.5 * max Q = 2.5; Q(s, 0) = 1.
    loss, stats = dqn.dqn_loss(net, net, sample, cfg)
    assert loss.item() == pytest.approx(0.5 * (0.0 + 1.5 - 0.5))  # Huber: 0 and |1.5| - 0.5
    assert stats[1].item() == pytest.approx(1.0)


def test_epsilon_schedule() -> None:
    assert dqn.linear_schedule(1.0, 0.05, 100, 0) == 1.0
    assert dqn.linear_schedule(1.0, 0.05, 100, 50) == pytest.approx(0.525)
    assert dqn.linear_schedule(1.0, 0.05, 100, 1_000) == 0.05
    assert dqn.linear_schedule(1.0, 0.05, 0, 0) == 0.05
    assert dqn.crossings(8, 4, 10) == 0 and dqn.crossings(12, 4, 10) == 1
    assert dqn.crossings(40, 40, 10) == 4


def test_soft_target_update_steps_once_per_multiple_crossed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    online, target = torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)  # any two alike modules
    twice = copy.deepcopy(target)
    with torch.no_grad():
        dqn.update_target(online, twice, 0.3)
        dqn.update_target(online, twice, 0.3)
        dqn.update_target(online, target, 0.3, times=2)
        for a, b in zip(twice.parameters(), target.parameters(), strict=True):
            torch.testing.assert_close(a, b)
    # 8 envs and a target update due every 4 env steps: two Polyak steps per vector step.
    due: list[int] = []
    real = dqn.update_target
    monkeypatch.setattr(
        dqn, "update_target", lambda q, t, tau, times=1: (due.append(times), real(q, t, tau, times))
    )
    dqn.train(tiny(num_envs=8, target_network_frequency=4, tau=0.5, write_run=False))
    assert due and set(due) == {2}


# -- training -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        (CARTPOLE, {}),
        (CARTPOLE, {"double_dqn": False, "tau": 0.1, "gradient_steps": 2, "anneal_lr": True}),
        ("CartPole-v1", {"num_envs": 1, "total_timesteps": 400}),  # Gymnasium's numpy env
    ],
)
def test_smoke_train_has_finite_losses(
    tmp_path: Path, env_id: str, overrides: dict[str, Any]
) -> None:
    cfg = tiny(env_id, run_dir=str(tmp_path / "run"), eval_episodes=2, **overrides)
    result = dqn.train(cfg)
    assert result.global_step == cfg.num_iterations * cfg.num_envs
    losses = {k: v for k, v in result.metrics.items() if k.startswith("losses/")}
    assert set(losses) == {f"losses/{name}" for name in dqn.LOSS_NAMES}
    assert all(math.isfinite(v) for v in losses.values()), losses
    run = Path(result.run_dir)
    assert read_json(run / "eval.json")["episodes"] == 2
    assert list(run.glob("events.out.tfevents.*"))
    assert (run / "checkpoints" / dqn.BUFFER_FILE).is_file()


def test_box_actions_are_refused_with_advice() -> None:
    with pytest.raises(ValueError, match=r"DQN needs a Discrete action space.*ppo or a2c"):
        dqn.train(tiny("sandbox/Pendulum-v1", write_run=False))


def test_checkpoint_reloads_with_identical_actions(tmp_path: Path) -> None:
    result = dqn.train(tiny(run_dir=str(tmp_path / "run")))
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    raw = torch.load(path, weights_only=True)  # tensors and plain values only
    expected = {"algo", "model", "target_model", "optimizer", "config", "env_id", "iteration"}
    assert expected | {"global_step", "rng", "generator", "env_state", "spaces"} <= raw.keys()
    assert "buffer" not in raw  # kept out of snapshots and best.pt: beside latest.pt instead
    saved_buffer = torch.load(path.parent / dqn.BUFFER_FILE, weights_only=True)
    assert saved_buffer["global_step"] == raw["global_step"] == result.global_step
    policy = dqn.load_policy(load_checkpoint(path), "cpu")
    obs = torch.randn(64, 4)
    assert torch.equal(policy.act(obs), result.policy.act(obs))
    view = policy.explain(obs)
    assert view.q_values.shape == (64, 2)
    assert torch.equal(view.value, view.q_values.max(-1).values)
    assert torch.equal(view.probs.argmax(-1), policy.act(obs))  # greedy one-hot
    assert torch.equal(view.probs.sum(-1), torch.ones(64))
    with pytest.raises(ValueError, match="not a DQN one"):
        dqn.load_policy({"algo": "ppo", "model": {}})


def test_same_seed_same_weights_other_seed_differs() -> None:
    first = weights(dqn.train(tiny(write_run=False, seed=3)).policy)
    second = weights(dqn.train(tiny(write_run=False, seed=3)).policy)
    other = weights(dqn.train(tiny(write_run=False, seed=4)).policy)
    assert_same_weights(first, second)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_resume_with_saved_buffer_continues_exactly(tmp_path: Path) -> None:
    # A constant epsilon: the decay's length scales with total_timesteps, which differs here.
    flat = {"start_e": 0.3, "end_e": 0.3}
    straight = dqn.train(tiny(write_run=False, **flat))
    dqn.train(tiny(run_dir=str(tmp_path / "run"), total_timesteps=400, **flat))
    resumed = dqn.train(tiny(run_dir=str(tmp_path / "run"), **flat), resume=tmp_path / "run")
    assert resumed.global_step == straight.global_step == 800
    assert_same_weights(weights(resumed.policy), weights(straight.policy))


def test_a_kill_between_the_buffer_and_latest_pt_still_resumes_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    flat = {"start_e": 0.3, "end_e": 0.3}
    straight = dqn.train(tiny(write_run=False, **flat))
    run_dir = tmp_path / "run"
    dqn.train(tiny(run_dir=str(run_dir), total_timesteps=400, **flat))
    # The next save wrote its buffer, then the process died before latest.pt.
    real_save = TrainingRun.save

    def killed_after_the_buffer(self: TrainingRun, *args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(TrainingRun, "save", killed_after_the_buffer)
    with pytest.raises(KeyboardInterrupt):
        dqn.train(tiny(run_dir=str(run_dir), **flat), resume=run_dir)
    monkeypatch.setattr(TrainingRun, "save", real_save)
    ahead = torch.load(run_dir / "checkpoints" / dqn.BUFFER_FILE, weights_only=True)
    assert ahead["global_step"] > 400  # a buffer ahead of latest.pt, as the kill left it
    resumed = dqn.train(tiny(run_dir=str(run_dir), **flat), resume=run_dir)
    assert_same_weights(weights(resumed.policy), weights(straight.policy))
    assert "note: no saved replay buffer" not in capsys.readouterr().err
    assert not (run_dir / "checkpoints" / dqn.PREVIOUS_BUFFER_FILE).exists()


def test_resume_without_saved_buffer_refills_then_learns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tiny(run_dir=str(tmp_path / "run"), save_buffer_max_mb=0.0, total_timesteps=400)
    first = dqn.train(cfg)
    assert not (tmp_path / "run" / "checkpoints" / dqn.BUFFER_FILE).exists()
    assert "is over save_buffer_max_mb (0), so checkpoints leave it out" in capsys.readouterr().err
    resumed = dqn.train(dataclasses.replace(cfg, total_timesteps=800), resume=tmp_path / "run")
    assert "no saved replay buffer matches step 400 (none was saved)" in (capsys.readouterr().err)
    assert resumed.global_step == 800
    # It refilled learning_starts transitions (50 vector steps), then trained again.
    assert any(not torch.equal(a, b) for a, b in zip(
        weights(first.policy).values(), weights(resumed.policy).values(), strict=True
    ))  # fmt: skip
    assert math.isfinite(resumed.metrics["losses/td_loss"])


def test_non_finite_loss_raises_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_loss = dqn.dqn_loss
    calls = {"n": 0}

    def poisoned(*args: Any) -> Any:
        calls["n"] += 1
        loss, stats = real_loss(*args)
        # Learning starts at vector step 50 (200 transitions), one gradient step per vector
        # step: gradient step 60 is in vector step 109, after the checkpoint at step 100.
        if calls["n"] >= 60:
            return loss * math.nan, stats * math.nan
        return loss, stats

    monkeypatch.setattr(dqn, "dqn_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="iteration 109"):
        dqn.train(tiny(run_dir=str(tmp_path / "run")))
    latest = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert latest["iteration"] == 100
    assert all(bool(t.isfinite().all()) for t in latest["model"].values())


def test_bad_config_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="learning_starts must lie in"):
        dqn.Config(buffer_size=100, learning_starts=1_000)
    with pytest.raises(ValueError, match="tau must lie in"):
        dqn.Config(tau=0.0)
    for env_id in ("sandbox/DogTraining-v0", "CartPole-v1", "Acrobot-v1"):
        assert dqn.default_config(env_id).env_id == env_id
    with pytest.raises(SystemExit) as exc:
        dqn.main(["--help"])
    assert exc.value.code == 0
    assert "--target-network-frequency" in capsys.readouterr().out


def test_its_own_command_refuses_to_resume_another_algorithms_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents import ppo

    cfg = ppo.default_config(CARTPOLE, total_timesteps=256, num_envs=4, num_steps=64)
    ppo.train(
        dataclasses.replace(cfg, run_dir=str(tmp_path / "run"), eval_episodes=0, progress=False)
    )
    assert dqn.main(["--resume", str(tmp_path / "run")]) != 0
    assert "is a ppo run, not a dqn one: continue it with python -m agents.ppo" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        *(
            ({name: value}, rf"{name} must be a finite number > 0, got {value}")
            for name in ("learning_rate", "max_grad_norm")
            for value in (math.inf, math.nan)
        ),
        *(
            (
                {"save_buffer_max_mb": v},
                rf"save_buffer_max_mb must be a finite number >= 0, got {v}",
            )
            for v in (math.nan, math.inf, -1.0)
        ),
        *(
            ({"target_return": v}, r"target_return must be a finite number, or None")
            for v in (math.nan, math.inf, -math.inf)
        ),
        *(
            ({name: math.nan}, rf"{name} must lie in \[0, 1\], got nan")
            for name in ("gamma", "start_e", "end_e", "exploration_fraction")
        ),
        ({"tau": math.nan}, r"tau must lie in \(0, 1\], got nan"),
        ({"eval_episodes": 10**30}, r"eval_episodes must be at most 1,000,000"),
        ({"target_check_episodes": 10**30}, r"target_check_episodes must be at most 1,000,000"),
        *(
            ({"target_confidence": v}, r"target_confidence must be a number in \[0.5, 1\)")
            for v in (1.0, 0.4, math.nan)
        ),
        ({"batch_size": 10**30}, r"batch_size \(1,000,000,000,.*\) must be at most buffer_size"),
        ({"batch_size": 10_001}, r"batch_size \(10,001\) must be at most buffer_size \(10,000\)"),
        ({"buffer_size": 10**30}, r"buffer_size must be at most 100,000,000 transitions"),
        ({"train_frequency": 10**30}, r"train_frequency .* must be at most total_timesteps"),
        ({"gradient_steps": 10**30}, r"gradient_steps must be at most 10,000 per training round"),
    ],
)
def test_config_refuses_values_without_meaning(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(dqn.Config(), **changes)


def test_config_keeps_the_meaningful_edges() -> None:
    cfg = dataclasses.replace(
        dqn.Config(), save_buffer_max_mb=0.0, batch_size=10_000, train_frequency=500_000,
        gradient_steps=dqn.MAX_GRADIENT_STEPS, target_return=None, eval_episodes=1_000_000,
    )  # fmt: skip
    assert cfg.save_buffer_max_mb == 0.0  # 0: the buffer is never saved (see save_buffer)


def test_a_log_window_longer_than_the_run_is_the_run() -> None:
    # log_every beyond the run: one log point, at the end (its loss trace is the run's length).
    result = dqn.train(tiny(log_every=10**30, write_run=False))
    assert result.global_step == 800 and math.isfinite(result.metrics["losses/td_loss"])


def test_more_snapshots_than_steps_take_one_per_log_point(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny(run_dir=str(run_dir), log_every=50, checkpoint_every=10**30, num_snapshots=10**18)
    assert dqn.train(cfg).global_step == 800
    assert [step for step, _ in list_snapshots(run_dir)] == [0, 200, 400, 600, 800]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_default_config_solves_cartpole(seed: int) -> None:
    cfg = dqn.default_config("CartPole-v1", seed=seed, write_run=False, progress=False)
    result = dqn.train(cfg)
    assert result.evaluation is not None
    assert result.evaluation.mean_return >= 475, result.evaluation.summary()


def test_early_stop_needs_the_greedy_check_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # Any finished episode passes a target of 1, so the window stops the run at its first log
    # point; a failing greedy check keeps it training to the end.
    stopped = dqn.train(tiny(target_return=1.0, write_run=False))
    assert stopped.global_step < 800
    calls = []

    def failing(evaluator: Any, seed: int) -> EvalResult:
        calls.append((evaluator, seed))
        return EvalResult(evaluator.env_id, [0.0], [1])

    monkeypatch.setattr(Evaluator, "check", failing)
    assert dqn.train(tiny(target_return=1.0, write_run=False)).global_step == 800
    assert calls and len({id(evaluator) for evaluator, _ in calls}) == 1  # one for the run
    monkeypatch.undo()
    assert (
        dqn.train(tiny(target_return=1.0, target_check_episodes=0, write_run=False)).global_step
        < 800
    )


def test_the_check_passes_at_the_configured_confidence(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check stops a run deciding on its mean and not one asking 95 %."""
    monkeypatch.setattr(Evaluator, "check", lambda evaluator, seed: SPREAD)
    cfg = tiny(target_return=1.0, target_check_episodes=100, write_run=False)
    assert dqn.train(replace_config(cfg, {"target_confidence": 0.5})).global_step < 800
    assert dqn.train(cfg).global_step == 800


def test_greedy_checks_leave_the_run_as_it_was(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run whose checks all run and fail ends bitwise where a run without checks does, its
    network in train mode."""
    plain = dqn.train(tiny(write_run=False))
    real_check, returns, modes = Evaluator.check, [], []

    def failing(evaluator: Any, seed: int) -> EvalResult:
        returns.append(real_check(evaluator, seed))
        return EvalResult(evaluator.env_id, [-math.inf], [1])  # fails at any confidence

    monkeypatch.setattr(Evaluator, "check", failing)
    original = dqn.update

    def update(q_network: Any, *args: Any) -> Any:
        modes.append(q_network.training)
        return original(q_network, *args)

    monkeypatch.setattr(dqn, "update", update)
    checked = dqn.train(tiny(target_return=1.0, write_run=False))
    assert len(returns) >= 2 and all(r.mean_return >= 1.0 for r in returns)
    assert all(modes)  # trained in train mode, checks or not
    for mine, theirs in zip(
        plain.policy.q_network.parameters(), checked.policy.q_network.parameters(), strict=True
    ):
        assert torch.equal(mine, theirs)


def test_a_run_that_would_never_train_is_refused_before_it_starts() -> None:
    # It trained nothing and reported a random network's evaluation; the check lives in
    # train(), not Config, so runs saved before it still load and resume.
    for changes in (
        {"total_timesteps": 2_000, "learning_starts": 5_000, "buffer_size": 10_000},
        {"total_timesteps": 101, "learning_starts": 100, "train_frequency": 16, "num_envs": 1},
        {"total_timesteps": 103, "learning_starts": 101, "train_frequency": 10, "num_envs": 4},
    ):
        cfg = dataclasses.replace(tiny(write_run=False), **changes)
        with pytest.raises(ValueError, match=r"would end before its first training round"):
            dqn.train(cfg)
    cfg = dataclasses.replace(tiny(write_run=False), total_timesteps=112, learning_starts=100)
    cfg = dataclasses.replace(cfg, train_frequency=16, num_envs=1)
    assert dqn.first_training_round(cfg) == 112  # trains at its last step: allowed
    assert dqn.first_training_round(dataclasses.replace(cfg, num_envs=4)) == 112
