"""Behaviour cloning: the demo file format, the expert's data, and a clone that beats random."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from agents import bc
from rl.checkpoint import atomic_save

DOG = bc.DOG_ENV_ID


def _small(tmp_path: Path | None = None, **changes: object) -> bc.Config:
    values: dict[str, object] = {
        "num_expert_steps": 800,
        "epochs": 30,
        "eval_episodes": 50,
        "device": "cpu",
        "write_run": tmp_path is not None,
        "run_dir": None if tmp_path is None else str(tmp_path / "bc"),
    }
    values.update(changes)
    return dataclasses.replace(bc.Config(), **values)


# -- demo files ----------------------------------------------------------------------------------
def test_demos_round_trip(tmp_path: Path) -> None:
    obs = torch.rand(5, 111)
    actions = torch.tensor([0, 1, 5, 2, 4])
    path = bc.save_demos(tmp_path / "d" / "demo.pt", obs, actions, bc.DOG_ENV_ID)
    loaded_obs, loaded_actions = bc.load_demos(path, bc.DOG_ENV_ID)
    torch.testing.assert_close(loaded_obs, obs)
    assert loaded_actions.dtype == torch.int64 and loaded_actions.tolist() == actions.tolist()


def test_demos_written_by_rl_play_are_read(tmp_path: Path) -> None:
    # rl play writes extra keys (rewards, flags, source); the reader keeps to its three.
    payload = {
        "format": bc.DEMOS_FORMAT,
        "format_version": 1,
        "obs": torch.rand(3, 111),
        "actions": torch.tensor([1, 2, 5]),
        "rewards": torch.zeros(3),
        "terminated": torch.tensor([False, False, True]),
        "episode_ids": torch.zeros(3, dtype=torch.int64),
        "env_id": bc.DOG_ENV_ID,
        "env_kwargs": {},
        "source": "human",
    }
    atomic_save(payload, tmp_path / "human.pt")
    obs, actions = bc.load_demos(tmp_path / "human.pt")
    assert obs.shape == (3, 111) and actions.tolist() == [1, 2, 5]


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("pwned",))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"obs": torch.rand(2, 3), "env_id": "x"}, "lacks actions"),
        ({"obs": torch.rand(2, 3), "actions": torch.rand(2), "env_id": DOG}, "integer"),
        ({"obs": torch.rand(2, 3), "actions": torch.zeros(3).long(), "env_id": DOG}, "2 observ"),
        ({"obs": torch.rand(2, 3), "actions": torch.zeros(2).long(), "env_id": "x"}, "recorded"),
        ({"obs": [1.0], "actions": torch.zeros(1).long(), "env_id": DOG}, "tensors"),
        (_Evil(), "refused"),
    ],
)
def test_bad_demo_files_are_refused(tmp_path: Path, payload: object, message: str) -> None:
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(ValueError, match=message):
        bc.load_demos(path, bc.DOG_ENV_ID)


def test_truncated_and_missing_demo_files(tmp_path: Path) -> None:
    path = bc.save_demos(tmp_path / "d.pt", torch.rand(4, 111), torch.zeros(4).long(), DOG)
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(ValueError, match="truncated"):
        bc.load_demos(path)
    with pytest.raises(ValueError, match="does not exist"):
        bc.load_demos(tmp_path / "nope.pt")


# -- the expert's data ---------------------------------------------------------------------------
def test_expert_demos_are_whole_episodes_in_order() -> None:
    from envs.dog_training import expert_policy

    obs, actions = bc.collect_expert_demos(bc.DOG_ENV_ID, 100, num_envs=4, seed=0)
    assert obs.shape == (100, 111) and actions.shape == (100,)
    torch.testing.assert_close(actions, expert_policy(obs))
    # Row-major: the first 25 steps are one dog's trajectory, so it relieves itself in it.
    assert (actions[:25] == 5).any()
    again, _ = bc.collect_expert_demos(bc.DOG_ENV_ID, 100, num_envs=4, seed=0)
    torch.testing.assert_close(obs, again)


def test_no_expert_outside_dog_training() -> None:
    with pytest.raises(ValueError, match="no scripted expert"):
        bc.expert_for("sandbox/CartPole-v1")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_expert_steps": 0}, "nothing to imitate"),
        ({"epochs": 0}, "epochs"),
        ({"hidden_sizes": ()}, "hidden_sizes"),
    ],
)
def test_config_rejects_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(bc.Config(), **changes)


# -- cloning -------------------------------------------------------------------------------------
def test_clone_beats_random_and_reloads(tmp_path: Path) -> None:
    result = bc.train(_small(tmp_path))
    m = result.metrics
    assert m["bc_success"] >= m["random_success"] + 0.5
    assert m["expert_success"] >= m["bc_success"] - 0.1
    assert m["val_accuracy"] > 0.9
    ckpt = tmp_path / "bc" / "checkpoints" / "best.pt"
    reloaded = bc.load_policy(ckpt)
    obs = torch.rand(16, 111)
    torch.testing.assert_close(reloaded.act(obs), result.policy.act(obs))
    view = result.policy.explain(obs)
    torch.testing.assert_close(view.probs.sum(-1), torch.ones(16))
    assert (tmp_path / "bc" / "eval.json").is_file()


def test_clone_from_demo_file_only(tmp_path: Path) -> None:
    obs, actions = bc.collect_expert_demos(bc.DOG_ENV_ID, 300, seed=5)
    path = bc.save_demos(tmp_path / "demo.pt", obs, actions, bc.DOG_ENV_ID)
    result = bc.train(_small(num_expert_steps=0, demos=(str(path),), eval_episodes=0))
    assert result.metrics["demo_steps"] == 300 and result.global_step == 300
    with pytest.raises(ValueError, match="size"):
        bad = bc.save_demos(tmp_path / "bad.pt", obs[:, :10], actions, bc.DOG_ENV_ID)
        bc.train(_small(num_expert_steps=0, demos=(str(bad),), eval_episodes=0))


def test_same_seed_same_clone() -> None:
    cfg = _small(eval_episodes=0, num_expert_steps=200, epochs=3)
    obs = torch.rand(8, 111)
    first = bc.train(cfg).policy.explain(obs).probs
    torch.testing.assert_close(bc.train(cfg).policy.explain(obs).probs, first)


@pytest.mark.slow
def test_expert_steps_needed_sweep() -> None:
    sweep = bc.expert_steps_needed(_small(), sizes=(20, 160, 1280))
    successes = [s for _, s in sweep["curve"]]
    assert successes[-1] >= 0.9 and successes[-1] > successes[0]
    assert sweep["expert_steps_needed"] in (160, 1280)
