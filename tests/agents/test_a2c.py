"""A2C: smoke training, checkpoints, determinism, exact resume, divergence, and (slow) learning."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from agents import a2c
from rl.checkpoint import load_checkpoint
from rl.config import replace_config
from rl.evaluation import EvalResult, Evaluator
from rl.runs import TrainingDiverged, list_snapshots, read_json

CARTPOLE = "sandbox/CartPole-v1"


# A check whose 100 episodes average 6 with a spread (95 at 26, 5 at -374): above a target of 1
# on its mean (confidence 0.5), below it at 95 % (6 - 1.645 * 87.6 / 10 = -8.4).
SPREAD = EvalResult("sandbox/CartPole-v1", [26.0] * 95 + [-374.0] * 5, [1] * 100)


def tiny(env_id: str = CARTPOLE, **overrides: Any) -> a2c.Config:
    """A few seconds' worth of training: 24 iterations of 8 envs x 8 steps, CPU, no eval."""
    base: dict[str, Any] = {
        "total_timesteps": 1_536,
        "num_envs": 8,
        "num_steps": 8,
        "device": "cpu",
        "eval_episodes": 0,
        "progress": False,
        "log_every": 4,
        "checkpoint_every": 4,
        "target_return": None,
        "anneal_lr": False,
    }
    return a2c.default_config(env_id, **{**base, **overrides})


def weights(policy: a2c.A2CPolicy) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in policy.agent.state_dict().items()}


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    ("env_id", "overrides"),
    [
        (CARTPOLE, {}),
        (CARTPOLE, {"shared_network": True, "gae_lambda": 0.95, "norm_adv": True}),
        (CARTPOLE, {"optimizer": "adam", "norm_obs": True, "anneal_lr": True}),
        ("sandbox/Pendulum-v1", {}),
        ("CartPole-v1", {"num_envs": 2, "total_timesteps": 256}),  # numpy env via the adapter
    ],
)
def test_smoke_train_has_finite_losses(
    tmp_path: Path, env_id: str, overrides: dict[str, Any]
) -> None:
    cfg = tiny(env_id, run_dir=str(tmp_path / "run"), eval_episodes=2, **overrides)
    result = a2c.train(cfg)
    assert result.global_step == cfg.num_iterations * cfg.batch_size
    losses = {k: v for k, v in result.metrics.items() if k.startswith("losses/")}
    assert set(losses) == {f"losses/{name}" for name in a2c.LOSS_NAMES}
    assert all(math.isfinite(v) for v in losses.values()), losses
    assert result.evaluation is not None and result.evaluation.episodes == 2
    run = Path(result.run_dir)
    assert (run / "checkpoints" / "latest.pt").is_file()
    assert list(run.glob("events.out.tfevents.*"))
    assert read_json(run / "eval.json")["episodes"] == 2
    assert list_snapshots(run)[0][0] == 0  # the untrained "before" policy


def test_checkpoint_reloads_with_identical_actions(tmp_path: Path) -> None:
    result = a2c.train(tiny(run_dir=str(tmp_path / "run")))
    path = tmp_path / "run" / "checkpoints" / "latest.pt"
    raw = torch.load(path, weights_only=True)  # tensors and plain values only
    expected = {"algo", "model", "optimizer", "config", "env_id", "global_step", "iteration"}
    assert expected | {"rng", "env_state", "spaces", "next_obs"} <= raw.keys()
    assert raw["algo"] == "a2c" and raw["global_step"] == result.global_step
    policy = a2c.load_policy(load_checkpoint(path), "cpu")
    obs = torch.randn(64, 4)
    assert torch.equal(policy.act(obs), result.policy.act(obs))
    view, original = policy.explain(obs), result.policy.explain(obs)
    assert torch.equal(view.probs, original.probs) and torch.equal(view.value, original.value)
    assert view.probs.shape == (64, 2) and view.value.shape == (64,)
    assert torch.allclose(view.probs.sum(-1), torch.ones(64))
    # A path works as well as a dict.
    assert torch.equal(a2c.load_policy(path).act(obs), result.policy.act(obs))


def test_gaussian_policy_acts_within_bounds() -> None:
    result = a2c.train(tiny("sandbox/Pendulum-v1", write_run=False))
    obs = torch.randn(32, 3) * 5
    for deterministic in (True, False):
        actions = result.policy.act(obs, deterministic=deterministic)
        assert actions.shape == (32, 1)
        assert bool(((actions >= -2.0) & (actions <= 2.0)).all())
    view = result.policy.explain(obs)
    assert view.mean.shape == (32, 1) and view.std.shape == (32, 1) and view.probs is None


def test_same_seed_same_weights_other_seed_differs() -> None:
    first = weights(a2c.train(tiny(write_run=False, seed=3)).policy)
    second = weights(a2c.train(tiny(write_run=False, seed=3)).policy)
    other = weights(a2c.train(tiny(write_run=False, seed=4)).policy)
    assert_same_weights(first, second)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    straight = a2c.train(tiny(write_run=False, total_timesteps=1_536))
    half = tiny(run_dir=str(tmp_path / "run"), total_timesteps=768)
    a2c.train(half)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")["iteration"] == 12
    resumed = a2c.train(
        tiny(run_dir=str(tmp_path / "run"), total_timesteps=1_536), resume=tmp_path / "run"
    )
    assert resumed.global_step == straight.global_step == 1_536
    # Sandbox envs save their state and every RNG is restored: the same run, bit for bit.
    assert_same_weights(weights(resumed.policy), weights(straight.policy))


def test_resume_refuses_changed_hyperparameters(tmp_path: Path) -> None:
    a2c.train(tiny(run_dir=str(tmp_path / "run"), total_timesteps=128))
    with pytest.raises(ValueError, match="learning_rate"):
        a2c.train(tiny(learning_rate=0.1), resume=tmp_path / "run")


def test_non_finite_loss_raises_and_keeps_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real_loss = a2c.a2c_loss

    def poisoned(agent: a2c.ActorCritic, storage: a2c.Rollout, cfg: a2c.Config) -> Any:
        calls["n"] += 1
        loss, stats = real_loss(agent, storage, cfg)
        if calls["n"] >= 10:  # iteration 10: after the checkpoint at iteration 8
            return loss * math.nan, stats * math.nan
        return loss, stats

    monkeypatch.setattr(a2c, "a2c_loss", poisoned)
    with pytest.raises(TrainingDiverged, match="iteration 10"):
        a2c.train(tiny(run_dir=str(tmp_path / "run")))
    latest = load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")
    assert latest["iteration"] == 8
    assert all(bool(t.isfinite().all()) for t in latest["model"].values())


def test_bad_config_and_wrong_checkpoint_are_clear_errors() -> None:
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1"):
        a2c.Config(num_steps=0)
    with pytest.raises(ValueError, match="optimizer"):
        a2c.Config(optimizer="sgd")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not an A2C one"):
        a2c.load_policy({"algo": "ppo", "model": {}})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        *(
            ({name: value}, rf"{name} must be a finite number > 0, got {value}")
            for name in ("learning_rate", "max_grad_norm", "clip_obs", "optimizer_eps")
            for value in (math.inf, math.nan)
        ),
        *(
            ({name: value}, rf"{name} must be a finite number >= 0, got {value}")
            for name in ("ent_coef", "vf_coef")
            for value in (-1.0, math.inf, math.nan)
        ),
        ({"init_log_std": math.inf}, r"init_log_std must be a finite number, got inf"),
        *(
            ({"target_return": v}, r"target_return must be a finite number, or None")
            for v in (math.nan, math.inf, -math.inf)
        ),
        *(
            ({name: math.nan}, rf"{name} must lie in \[0, 1\], got nan")
            for name in ("gamma", "gae_lambda", "rmsprop_alpha")
        ),
        ({"eval_episodes": 10**30}, r"eval_episodes must be at most 1,000,000"),
        ({"target_check_episodes": 10**30}, r"target_check_episodes must be at most 1,000,000"),
        *(
            ({"target_confidence": v}, r"target_confidence must be a number in \[0.5, 1\)")
            for v in (1.0, 0.4, math.nan)
        ),
    ],
)
def test_config_refuses_values_without_meaning(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(a2c.Config(), **changes)


def test_more_snapshots_than_iterations_take_one_per_iteration(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    cfg = tiny(run_dir=str(run_dir), total_timesteps=192, log_every=1, num_snapshots=10**18)
    assert a2c.train(cfg).global_step == 192  # 3 iterations of 64
    assert [step for step, _ in list_snapshots(run_dir)] == [0, 64, 128, 192]


def test_presets_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    for env_id in ("sandbox/DogTraining-v0", "CartPole-v1", "Acrobot-v1", "Pendulum-v1"):
        assert a2c.default_config(env_id).env_id == env_id
    assert a2c.default_config("CartPole-v1", learning_rate="3e-4").learning_rate == 3e-4
    with pytest.raises(SystemExit) as exc:
        a2c.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--gae-lambda" in out and "n-step returns" in out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_default_config_solves_cartpole(seed: int) -> None:
    cfg = a2c.default_config("CartPole-v1", seed=seed, write_run=False, progress=False)
    result = a2c.train(cfg)
    assert result.evaluation is not None
    assert result.evaluation.mean_return >= 475, result.evaluation.summary()


def test_the_check_passes_at_the_configured_confidence(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same check stops a run deciding on its mean and not one asking 95 %."""
    monkeypatch.setattr(Evaluator, "check", lambda evaluator, seed: SPREAD)
    cfg = tiny(write_run=False, target_return=1.0, target_check_episodes=100)
    assert a2c.train(replace_config(cfg, {"target_confidence": 0.5})).global_step == 4 * 64
    assert a2c.train(cfg).global_step == 1_536


def test_early_stop_needs_the_deterministic_check_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # A target of 1 passes the first log window; a failing check trains to the end, and a
    # check that runs and fails leaves the run where a run without a target ends.
    cfg = tiny(write_run=False, target_return=1.0, target_check_episodes=3)
    assert a2c.train(cfg).global_step == 4 * 64
    plain = a2c.train(tiny(write_run=False))
    real_check, returns = Evaluator.check, []

    def failing(evaluator: Any, seed: int) -> EvalResult:
        returns.append(real_check(evaluator, seed))
        return EvalResult(evaluator.env_id, [-math.inf], [1])  # fails at any confidence

    monkeypatch.setattr(Evaluator, "check", failing)
    checked = a2c.train(cfg)
    assert checked.global_step == 1_536 and len(returns) == 6
    assert_same_weights(weights(plain.policy), weights(checked.policy))


@pytest.mark.parametrize("module", ["a2c", "dqn"])
def test_a_mean_return_of_exactly_zero_reaches_a_target_of_zero(module, monkeypatch) -> None:
    """A perfect ``scolding_only`` dog scores exactly 0: a target of 0 must stop it (0.0 is
    falsy, which once read as "no episodes yet")."""
    from agents import dqn

    algo = {"a2c": a2c, "dqn": dqn}[module]
    real = algo._log_window

    def zero_return(*args: Any, **kwargs: Any) -> dict[str, float]:
        metrics = real(*args, **kwargs)
        metrics["charts/episodic_return"] = 0.0
        return metrics

    monkeypatch.setattr(algo, "_log_window", zero_return)
    sizes = (
        {"num_envs": 2, "num_steps": 5, "log_every": 1}
        if module == "a2c"
        else {"num_envs": 2, "learning_starts": 10, "buffer_size": 100, "batch_size": 8,
              "log_every": 5, "train_frequency": 2}
    )  # fmt: skip
    cfg = algo.default_config(
        "sandbox/CartPole-v1", total_timesteps=200, target_return=0.0, target_check_episodes=0,
        eval_episodes=0, progress=False, write_run=False, **sizes,
    )  # fmt: skip
    result = algo.train(cfg)
    assert result.metrics.get("target_reached_return") == 0.0
    assert result.global_step < 200


def test_value_loss_is_sb3s_mean_squared_error() -> None:
    """SB3's A2C minimises ``vf_coef * F.mse_loss(returns, values)``, with no extra 1/2."""
    from rl.runs import EpisodeTracker
    from rl.vector import make_vector_env

    cfg = a2c.default_config("sandbox/CartPole-v1", num_envs=3, num_steps=5)
    env = make_vector_env("sandbox/CartPole-v1", 3)
    spaces = {"obs_shape": [4], "action_kind": "discrete", "action_n": 2}
    torch.manual_seed(0)
    agent = a2c.ActorCritic(spaces, (8,), "tanh")
    storage = a2c.make_rollout(cfg, spaces, "cpu")
    next_obs, _ = env.reset(seed=0)
    a2c.collect_rollout(env, agent, storage, next_obs, EpisodeTracker(torch.device("cpu")))
    _, stats = a2c.a2c_loss(agent, storage, cfg)
    with torch.no_grad():
        values = agent.get_value(storage.obs.flatten(0, 1)).view(5, 3)
        next_values = agent.get_value(storage.final_obs.flatten(0, 1)).view(5, 3)
    _, returns = a2c.compute_advantages(storage, values, next_values, cfg)
    expected = torch.nn.functional.mse_loss(values, returns)
    torch.testing.assert_close(stats[a2c.LOSS_NAMES.index("value_loss")], expected)


def test_a_checkpoint_from_before_the_mse_value_loss_resumes_at_the_weight_it_had(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Its value loss was 0.5 * MSE under the same vf_coef: the resume halves vf_coef, says so,
    and its later checkpoints are marked (a second resume changes nothing)."""
    run = tmp_path / "run"
    a2c.train(tiny(run_dir=str(run), total_timesteps=256))
    latest = run / "checkpoints" / "latest.pt"
    old = torch.load(latest, weights_only=True)
    del old["value_loss"]
    torch.save(old, latest)
    a2c.train(tiny(run_dir=str(run), total_timesteps=512), resume=run)
    assert "vf_coef 0.25 (half the saved value)" in capsys.readouterr().err
    resumed = torch.load(latest, weights_only=True)
    assert resumed["value_loss"] == "mse" and resumed["config"]["vf_coef"] == 0.25
    a2c.train(tiny(run_dir=str(run), total_timesteps=768, vf_coef=0.25), resume=run)
    assert "half the saved value" not in capsys.readouterr().err


def test_a_log_windows_explained_variance_averages_the_iterations_that_have_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real, defined = a2c.update, []

    def every_other_undefined(*args: Any) -> torch.Tensor:
        stats = real(*args).clone()
        if args[-1] % 2:  # the iteration: odd ones had constant returns
            stats[-1] = math.nan
        else:
            defined.append(float(stats[-1]))
        return stats

    monkeypatch.setattr(a2c, "update", every_other_undefined)
    cfg = tiny(log_every=4, total_timesteps=4 * 4 * 5, write_run=False)  # one window of 4
    result = a2c.train(dataclasses.replace(cfg, num_envs=4, num_steps=5))
    assert len(defined) == 2
    assert result.metrics["losses/explained_variance"] == pytest.approx(sum(defined) / 2)
