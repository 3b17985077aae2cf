"""Transfer and self-supervised pretraining: the pieces fast, the races slow."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from agents import ppo
from agents import representation as rep
from rl.checkpoint import load_checkpoint
from rl.runs import TrainingRun


def _small(tmp_path: Path, **changes: object) -> rep.Config:
    values: dict[str, object] = {
        "device": "cpu",
        "run_dir": str(tmp_path / "cmp"),
        "eval_episodes": 20,
    }
    values.update(changes)
    return dataclasses.replace(rep.Config(), **values)


def test_unlabelled_transitions_follow_each_dog() -> None:
    obs, actions, next_obs, spaces = rep.collect_unlabelled(rep.DOG_ENV_ID, 400, num_envs=4, seed=0)
    assert obs.shape == next_obs.shape == (400, 111)
    assert actions.shape == (400,) and int(actions.min()) >= 0 and int(actions.max()) < 6
    assert spaces["action_n"] == 6
    # Time-major rows: step t of dog i is row t * 4 + i. Within an episode the successor is the
    # next row's observation; where an episode ended it is the final one, not the reset state.
    same = (next_obs[:-4] == obs[4:]).all(dim=1)
    assert 0.8 < float(same.float().mean()) < 1.0


def test_forward_model_encoder_fits_ppo_torso(tmp_path: Path) -> None:
    cfg = ppo.default_config(rep.DOG_ENV_ID)
    model = rep.ForwardModel(111, 6, cfg.hidden_sizes)
    assert model(torch.rand(5, 117)).shape == (5, 111)
    spaces = rep._spaces(rep.Config())
    path = rep.torso_checkpoint(model.encoder, cfg, spaces, tmp_path / "torso.pt")
    state = load_checkpoint(path)["model"]
    for net in ("actor", "critic"):
        for index in (0, 2):  # the two hidden Linear layers (tanh between)
            torch.testing.assert_close(state[f"{net}.{index}.weight"], model.encoder[index].weight)
            torch.testing.assert_close(state[f"{net}.{index}.bias"], model.encoder[index].bias)
    assert state["actor.4.weight"].shape == (6, 64)  # the output layer keeps PPO's own init
    agent = ppo.ActorCritic(spaces, cfg.hidden_sizes, cfg.activation)
    agent.load_state_dict(state)  # a PPO network loads it as is


def test_pretrained_encoder_predicts_the_next_observation(tmp_path: Path) -> None:
    cfg = _small(tmp_path, unlabelled_steps=4000, pretrain_epochs=10)
    model, metrics = rep.pretrain_encoder(cfg, tmp_path / "encoder", (64, 64))
    assert isinstance(model.encoder[0], torch.nn.Linear)
    assert metrics["transitions"] == 4000
    assert metrics["r2"] > 0.25  # "nothing changes" or "the mean change" score R² <= 0
    assert (tmp_path / "encoder" / "checkpoints" / "best.pt").is_file()


def test_steps_to_threshold_reads_the_logged_curve(tmp_path: Path) -> None:
    run = TrainingRun(tmp_path / "run", {}, total_timesteps=40, progress=False)
    for step, value in ((10, -1.0), (20, 0.5), (30, 1.2), (40, 0.9)):
        run.log({"charts/episodic_return": value}, step)
    run.close()
    curve = rep.learning_curve(tmp_path / "run")
    assert curve == [
        [10.0, -1.0],
        [20.0, 0.5],
        [30.0, pytest.approx(1.2)],
        [40.0, pytest.approx(0.9)],
    ]
    assert rep.steps_to_threshold(curve, 1.0) == 30
    assert rep.steps_to_threshold(curve, 2.0) is None
    assert rep.learning_curve(tmp_path / "run", "charts/nothing") == []


def test_ppo_config_and_bad_values(tmp_path: Path) -> None:
    cfg = _small(tmp_path, ppo_overrides={"learning_rate": 5e-4})
    run_cfg = rep.ppo_config(cfg, cfg.target_env_kwargs, 8192, tmp_path, target_return=1.0)
    assert run_cfg.learning_rate == 5e-4 and run_cfg.target_return == 1.0
    assert run_cfg.env_kwargs["layout_offset"] == 1000 and run_cfg.total_timesteps == 8192
    with pytest.raises(ValueError, match="max_timesteps"):
        dataclasses.replace(rep.Config(), max_timesteps=0)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"pretrain_learning_rate": -1.0}, ValueError, "pretrain_learning_rate must be a finite"),
        ({"pretrain_learning_rate": math.inf}, ValueError, "pretrain_learning_rate must be"),
        ({"pretrain_learning_rate": "0.1"}, ValueError, "pretrain_learning_rate must be a number"),
        ({"eval_episodes": -1}, ValueError, "eval_episodes must be an integer >= 0"),
        ({"ppo_overrides": {"nosuch": 1}}, ValueError, "ppo_overrides: .*nosuch"),
        ({"target_env_kwargs": None}, ValueError, "target_env_kwargs must be a dict"),
        (
            {"target_env_kwargs": {"bogus": 1}},
            ValueError,
            r"target_env_kwargs: sandbox/DogTraining-v0 takes no argument 'bogus'; its "
            r"arguments are .*layout",
        ),
        ({"source_env_kwargs": {"bogus": 1}}, ValueError, r"source_env_kwargs: .*'bogus'"),
        (
            {"ppo_overrides": {"env_id": "x"}},
            ValueError,
            r"ppo_overrides cannot set 'env_id': .* set env_id instead",
        ),
        ({"ppo_overrides": {"total_timesteps": 9}}, ValueError, "set source_timesteps or max_"),
        ({"ppo_overrides": {"seed": 3}}, ValueError, "ppo_overrides cannot set 'seed'"),
        ({"ppo_overrides": {"init_from": "a.pt"}}, ValueError, "starting weights"),
        ({"eval_episodes": 10**30}, ValueError, "eval_episodes must be at most 1,000,000"),
        ({"unlabelled_steps": 10**30}, ValueError, "unlabelled_steps must be at most 10,000,000"),
    ],
)
def test_config_names_the_bad_field_at_construction(
    changes: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        rep.Config(**changes)


def test_the_dog_houses_are_defaults_of_the_dog_env_only() -> None:
    for cfg in (
        rep.default_config(env_id="sandbox/CartPole-v1"),
        dataclasses.replace(rep.Config(), env_id="CartPole-v1"),
    ):
        assert cfg.source_env_kwargs == {} and cfg.target_env_kwargs == {}
        assert ppo.default_config(cfg.env_id, **cfg.ppo_overrides).env_id == cfg.env_id
    assert rep.Config().target_env_kwargs["layout_offset"] == 1000


class _Stop(Exception):
    """Stands for the PPO runs: the note comes before any of them."""


def test_budgets_rounded_to_whole_iterations_are_said_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = _small(tmp_path, source_timesteps=512, max_timesteps=512)
    budgets = {"source_timesteps": 512, "max_timesteps": 512}
    assert rep.planned_steps(cfg, budgets) == {"source_timesteps": 4096, "max_timesteps": 4096}
    note = capsys.readouterr().err
    assert note.count("\n") == 1 and "whole iterations of 4,096 steps (64 envs x 64 steps)" in note
    assert "source_timesteps 512 becomes 4,096, max_timesteps 512 becomes 4,096" in note
    assert rep.planned_steps(cfg, {"max_timesteps": 8192}) == {"max_timesteps": 8192}
    assert capsys.readouterr().err == ""  # whole iterations already: nothing to say

    def stop(run_cfg: ppo.Config) -> None:
        raise _Stop

    monkeypatch.setattr(ppo, "train", stop)
    with pytest.raises(_Stop):
        rep.transfer(cfg)
    assert capsys.readouterr().err.count("whole iterations") == 1


def test_pieces_reject_bad_sizes() -> None:
    with pytest.raises(ValueError, match="num_steps must be an integer >= 1, got -5"):
        rep.collect_unlabelled(rep.DOG_ENV_ID, -5)
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        rep.collect_unlabelled(rep.DOG_ENV_ID, 10, num_envs=0)
    with pytest.raises(ValueError, match=r"hidden_sizes must be layer widths >= 1"):
        rep.ForwardModel(111, 6, (0,))
    with pytest.raises(ValueError, match="num_actions"):
        rep.ForwardModel(111, 0, (64,))


@pytest.mark.slow
def test_transfer_beats_scratch(tmp_path: Path) -> None:
    result = rep.transfer(_small(tmp_path, source_timesteps=100_000, max_timesteps=100_000))
    assert result["max_steps"] == result["source_steps"] == 98_304  # 24 iterations of 4,096
    scratch = result["steps_to_threshold_scratch"]
    assert result["steps_to_threshold_transfer"] is not None
    assert scratch is None or result["steps_to_threshold_transfer"] < scratch
    assert Path(result["plot"]).is_file()


@pytest.mark.slow
def test_pretrain_reports_its_effect(tmp_path: Path) -> None:
    result = rep.pretrain(_small(tmp_path, max_timesteps=100_000, unlabelled_steps=5000))
    assert result["encoder"]["r2"] > 0.3
    assert {"steps_to_threshold_pretrained", "steps_to_threshold_scratch", "speedup"} <= set(result)
    assert Path(result["plot"]).is_file()


def test_a_learner_that_stopped_at_the_target_reached_it_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Seed 2's pretrained learner stopped at the target (its window at 1.0 and the check
    # passed) while its logged points stayed at 0.99: the race said "n/a", never reached.
    from agents.base import TrainResult

    def train(cfg):
        stopped = cfg.init_from is not None
        return TrainResult(
            policy=None, global_step=57_344, run_dir=None,
            metrics={"target_reached_return": 1.0} if stopped else {},
        )  # fmt: skip

    monkeypatch.setattr(rep.ppo, "train", train)
    monkeypatch.setattr(rep, "learning_curve", lambda run: [[4096.0, 0.5], [57_344.0, 0.99]])
    monkeypatch.setattr(rep, "plot_curves", lambda *args, **kwargs: None)
    out = rep.race(rep.Config(), tmp_path, {"pretrained": "x.pt", "scratch": None}, "race")
    assert out["pretrained"]["steps_to_threshold"] == 57_344
    assert out["scratch"]["steps_to_threshold"] is None  # budget spent, curve below the bar
