"""Behaviour cloning: the demo file format, the expert's data, and a clone that beats random."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from agents import bc
from rl.checkpoint import atomic_save
from rl.vector import make_vector_env

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
    assert bc.load_demo_episodes(tmp_path / "human.pt")[2].tolist() == [0, 0, 0]


def test_episode_ids_must_name_one_episode_per_step(tmp_path: Path) -> None:
    obs, actions = torch.rand(10, 111), torch.zeros(10, dtype=torch.long)
    with pytest.raises(ValueError, match=r"'episode_ids' must be a \(10,\) integer tensor"):
        bc.save_demos(tmp_path / "d.pt", obs, actions, bc.DOG_ENV_ID, episode_ids=[0, 1, 2])
    atomic_save(
        {"obs": obs, "actions": actions, "env_id": bc.DOG_ENV_ID, "episode_ids": torch.ones(10)},
        tmp_path / "float.pt",
    )
    with pytest.raises(ValueError, match=r"float.pt: 'episode_ids' must be .* got \(10,\) tor"):
        bc.load_demos(tmp_path / "float.pt")


def test_held_out_steps_are_whole_episodes_of_the_expert_and_of_each_file(
    tmp_path: Path,
) -> None:
    obs, actions, _ = bc.collect_expert_demos(bc.DOG_ENV_ID, 40, seed=1)
    with_ids = bc.save_demos(
        tmp_path / "ids.pt", obs, actions, bc.DOG_ENV_ID, episode_ids=torch.arange(40) // 20 + 7
    )
    without = bc.save_demos(tmp_path / "none.pt", obs, actions, bc.DOG_ENV_ID)
    cfg = _small(num_expert_steps=40, demos=(str(with_ids), str(without)))
    spaces = bc._spaces(cfg.env_id, cfg.env_kwargs)
    _, _, episodes, demo_steps = bc.gather_dataset(cfg, torch.device("cpu"), spaces)
    expert = bc.collect_expert_demos(bc.DOG_ENV_ID, 40, seed=cfg.seed)[2]
    count = int(expert.max()) + 1
    assert demo_steps == 80
    assert torch.equal(episodes[:40], expert)  # the expert's own episodes first
    assert torch.equal(episodes[40:80], torch.arange(40) // 20 + count)  # the file's, apart
    assert torch.equal(episodes[80:], torch.full((40,), count + 2))  # no ids: one episode


def test_cloning_holds_out_the_gathered_episodes(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real_fit = bc.fit

    def fit(*args: object, **kwargs: object) -> object:
        seen.append(kwargs.get("groups"))
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(bc, "fit", fit)
    cfg = _small(num_expert_steps=200, epochs=2, eval_episodes=0)
    bc.train(cfg)
    expert = bc.collect_expert_demos(bc.DOG_ENV_ID, 200, seed=cfg.seed, env_kwargs=cfg.env_kwargs)[
        2
    ]
    assert len(seen) == 1 and torch.equal(seen[0], expert)


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


def test_demos_without_steps_are_refused(tmp_path: Path) -> None:
    empty_obs, empty_actions = torch.zeros(0, 111), torch.zeros(0, dtype=torch.long)
    with pytest.raises(ValueError, match="no steps"):
        bc.save_demos(tmp_path / "empty.pt", empty_obs, empty_actions, DOG)
    assert not (tmp_path / "empty.pt").exists()
    # A file written some other way is refused when read, before any cloning.
    torch.save({"obs": empty_obs, "actions": empty_actions, "env_id": DOG}, tmp_path / "e.pt")
    with pytest.raises(ValueError, match="no steps"):
        bc.load_demos(tmp_path / "e.pt", DOG)
    spaces = bc._spaces(DOG, {})
    for steps in (0, 1):
        with pytest.raises(ValueError, match="at least 2 demonstrated steps"):
            bc.clone(
                _small(eval_episodes=0), torch.zeros(steps, 111),
                torch.zeros(steps, dtype=torch.long), spaces,
            )  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a torch file at all", "is not a torch file; expected a .pt file written by"),
        (b"", r"is empty \(0 bytes\)"),
    ],
)
def test_files_that_are_not_torch_files_say_so(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "demos.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        bc.load_demos(path)
    assert "refused" not in str(info.value) and "()" not in str(info.value)


def test_numpy_and_other_archives_are_told_apart(tmp_path: Path) -> None:
    import numpy as np

    np.savez(tmp_path / "demos.npz", obs=np.zeros((3, 111)), actions=np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match=r"NumPy \.npz archive.*a \.pt file.*torch\.from_numpy"):
        bc.load_demos(tmp_path / "demos.npz")
    import zipfile

    with zipfile.ZipFile(tmp_path / "other.pt", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match="zip archive but not a torch file"):
        bc.load_demos(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="is a folder"):
        bc.load_demos(tmp_path)
    # NumPy arrays inside a torch file: refused (unsafe to unpickle), with the fix named.
    torch.save(
        {"obs": np.zeros((3, 111)), "actions": np.zeros(3), "env_id": DOG}, tmp_path / "n.pt"
    )
    with pytest.raises(ValueError, match=r"refused.*torch\.from_numpy"):
        bc.load_demos(tmp_path / "n.pt")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"format_version": "1"}, r"malformed: 'format_version' must be an integer >= 1, got '1'"),
        ({"format_version": 2}, "newer than"),
        ({"format": "rl-sandbox-checkpoint"}, "not a demonstration file: its format marker"),
        ({"env_id": 3}, "'env_id' must be a string"),
    ],
)
def test_malformed_demo_files_are_refused_clearly(
    tmp_path: Path, extra: dict, message: str
) -> None:
    payload = {"obs": torch.rand(3, 111), "actions": torch.zeros(3).long(), "env_id": DOG}
    torch.save({**payload, **extra}, tmp_path / "d.pt")
    with pytest.raises(ValueError, match=message):
        bc.load_demos(tmp_path / "d.pt")


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

    obs, actions, episodes = bc.collect_expert_demos(bc.DOG_ENV_ID, 100, num_envs=4, seed=0)
    assert obs.shape == (100, 111) and actions.shape == (100,)
    torch.testing.assert_close(actions, expert_policy(obs))
    # Row-major: the first 25 steps are one dog's trajectory, so it relieves itself in it.
    assert (actions[:25] == 5).any()
    again, _, _ = bc.collect_expert_demos(bc.DOG_ENV_ID, 100, num_envs=4, seed=0)
    torch.testing.assert_close(obs, again)
    # Episode ids: 0, 1, ... in order, a new one after each step that ended an episode.
    env = make_vector_env(bc.DOG_ENV_ID, 4, "cpu")
    step_obs, _ = env.reset(seed=0)
    ended = []
    for _ in range(25):
        step_obs, _, terminated, truncated, _ = env.step(expert_policy(step_obs))
        ended.append(terminated | truncated)
    env.close()
    ended = torch.stack(ended).T.flatten()  # row-major, as the demos
    starts = torch.cat([torch.tensor([False]), ended[:-1]])
    starts[25::25] = True  # each dog's trajectory starts an episode
    assert episodes[0] == 0 and torch.equal(episodes.diff(), starts[1:].long())
    assert int(episodes.max()) >= 4  # the dogs finished episodes in 25 steps


def test_no_expert_outside_dog_training() -> None:
    with pytest.raises(ValueError, match="no scripted expert"):
        bc.expert_for("sandbox/CartPole-v1")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_expert_steps": 0}, "nothing to imitate"),
        ({"epochs": 0}, "epochs"),
        ({"hidden_sizes": ()}, "hidden_sizes=64,64"),
        ({"activation": "gelu"}, "activation must be 'tanh' or 'relu'"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"num_expert_steps": 1.5}, "num_expert_steps must be an integer"),
        ({"learning_rate": math.inf}, "learning_rate"),
        ({"eval_episodes": 10**30}, "eval_episodes must be at most 1,000,000"),
        ({"num_expert_steps": 10**30}, "num_expert_steps must be at most 10,000,000"),
        (
            {"eval_env_kwargs": {"bogus": 1}},
            r"eval_env_kwargs: sandbox/DogTraining-v0 takes no argument 'bogus'; its "
            r"arguments are .*reward_scheme, layout, num_layouts",
        ),
        ({"env_kwargs": {"layout": "random", "bogus": 1}}, r"env_kwargs: .* no argument 'bogus'"),
        ({"env_kwargs": {"device": "cpu"}}, r"env_kwargs: .* no argument 'device'"),
        ({"env_id": "sandbox/NoSuchEnv-v0"}, "unknown environment"),
    ],
)
def test_config_rejects_bad_values(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(bc.Config(), **changes)


@pytest.mark.parametrize("env_id", ["sandbox/CartPole-v1", "CartPole-v1"])
def test_the_dog_houses_are_defaults_of_the_dog_env_only(env_id: str) -> None:
    for cfg in (bc.default_config(env_id), dataclasses.replace(bc.Config(), env_id=env_id)):
        assert cfg.env_kwargs == {} and cfg.eval_env_kwargs is None
    # Given ones are kept (and checked against the env's own arguments).
    cfg = bc.default_config(env_id, env_kwargs={"sutton_barto_reward": True}, eval_env_kwargs={})
    assert cfg.env_kwargs == {"sutton_barto_reward": True} and cfg.eval_env_kwargs == {}
    with pytest.raises(ValueError, match=f"env_kwargs: {env_id} takes no argument 'layout'"):
        bc.default_config(env_id, env_kwargs={"layout": "random"})
    assert bc.default_config(env_id, env_kwargs={"max_episode_steps": 50}).env_kwargs
    dog = bc.default_config(DOG)
    assert dog.env_kwargs == {"layout": "random", "num_layouts": 100}
    assert dog.eval_env_kwargs == {"layout": "random", "num_layouts": 100, "layout_offset": 1000}


def test_clone_in_another_env_from_demos(tmp_path: Path) -> None:
    # CartPole has no scripted expert: a clean error, not the dog's houses handed to CartPole.
    with pytest.raises(ValueError, match="no scripted expert"):
        bc.train(bc.default_config("sandbox/CartPole-v1", write_run=False, device="cpu"))
    obs, actions = torch.rand(64, 4) - 0.5, torch.randint(0, 2, (64,))
    path = bc.save_demos(tmp_path / "pole.pt", obs, actions, "sandbox/CartPole-v1")
    cfg = bc.default_config(
        "sandbox/CartPole-v1", num_expert_steps=0, demos=(str(path),), epochs=2, eval_episodes=2,
        write_run=False, device="cpu",
    )  # fmt: skip
    result = bc.train(cfg)
    assert result.evaluation is not None and result.evaluation.episodes == 2


def test_config_reads_one_demo_path_as_one_file(tmp_path: Path) -> None:
    assert bc.Config(demos="demos.pt", num_expert_steps=0).demos == ("demos.pt",)
    assert bc.Config(demos=tmp_path / "d.pt").demos == (str(tmp_path / "d.pt"),)
    assert bc.Config(demos=["a.pt", Path("b.pt")]).demos == ("a.pt", "b.pt")
    with pytest.raises(TypeError, match="file paths"):
        bc.Config(demos=(3,))  # type: ignore[arg-type]
    # The missing file is named whole, not letter by letter.
    with pytest.raises(ValueError, match=r"demonstration file nope\.pt does not exist"):
        bc.train(_small(demos="nope.pt", num_expert_steps=0, eval_episodes=0))


def test_expert_demos_reject_bad_counts() -> None:
    with pytest.raises(ValueError, match="num_envs must be an integer >= 1"):
        bc.collect_expert_demos(DOG, 10, num_envs=0)


# -- cloning -------------------------------------------------------------------------------------
def test_clone_beats_random_and_reloads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
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
    assert view.value.isnan().all()  # no critic: the HUD says so, rather than showing 0
    assert (tmp_path / "bc" / "eval.json").is_file()
    # rl eval of the run prints its evaluation but keeps BC's comparison with the expert.
    from rl.cli import main

    before = (tmp_path / "bc" / "eval.json").read_text()
    assert main(["eval", str(tmp_path / "bc"), "--episodes", "60"]) == 0
    assert (tmp_path / "bc" / "eval.json").read_text() == before
    out = capsys.readouterr().out
    assert "eval.json kept: it holds more than an evaluation (bc_return" in out
    assert "(bc, epoch " in out  # a fit's checkpoint is of its best epoch, not of env steps
    saved = torch.load(tmp_path / "bc" / "checkpoints" / "latest.pt", weights_only=True)
    assert "optimizer" not in saved  # it would be the last epoch's state, not the best one's


def test_rl_eval_of_a_clone_without_evaluation_writes_one_beside_the_fit_metrics(
    tmp_path: Path,
) -> None:
    from rl.cli import main

    bc.train(_small(tmp_path, num_expert_steps=200, epochs=2, eval_episodes=0))
    for episodes in (3, 4):  # the second replaces the first's evaluation, as for any run
        assert main(["eval", str(tmp_path / "bc"), "--episodes", str(episodes)]) == 0
        saved = json.loads((tmp_path / "bc" / "eval.json").read_text())
        assert saved["episodes"] == episodes and "confusion_matrix" in saved


def test_clone_from_demo_file_only(tmp_path: Path) -> None:
    obs, actions, _ = bc.collect_expert_demos(bc.DOG_ENV_ID, 300, seed=5)
    path = bc.save_demos(tmp_path / "demo.pt", obs, actions, bc.DOG_ENV_ID)
    result = bc.train(_small(num_expert_steps=0, demos=(str(path),), eval_episodes=0))
    assert result.metrics["demo_steps"] == 300 and result.global_step == 300
    with pytest.raises(ValueError, match=r"bad.pt: observations of shape \(10,\)"):
        bad = bc.save_demos(tmp_path / "bad.pt", obs[:, :10], actions, bc.DOG_ENV_ID)
        bc.train(_small(num_expert_steps=0, demos=(str(bad),), eval_episodes=0))
    # The same size in another shape is another observation, not a flattening to accept.
    folded = tmp_path / "fold.pt"  # written by hand: save_demos flattens what it is given
    raw = torch.load(path, weights_only=True)
    torch.save({**raw, "obs": raw["obs"].view(-1, 3, 37)}, folded)
    with pytest.raises(ValueError, match=r"shape \(3, 37\)"):
        bc.train(_small(num_expert_steps=0, demos=(str(folded),), eval_episodes=0))
    wrong = actions.clone()
    wrong[0] = 9
    with pytest.raises(ValueError, match=r"off.pt: actions from \d+ to 9, but the env's lie in"):
        off = bc.save_demos(tmp_path / "off.pt", obs, wrong, bc.DOG_ENV_ID)
        bc.train(_small(num_expert_steps=0, demos=(str(off),), eval_episodes=0))
    # One file twice: its steps would land on both sides of the held-out split.
    with pytest.raises(ValueError, match="given twice"):
        bc.train(_small(num_expert_steps=0, demos=(str(path), str(tmp_path / "." / "demo.pt"))))


def test_same_seed_same_clone() -> None:
    cfg = _small(eval_episodes=0, num_expert_steps=200, epochs=3)
    obs = torch.rand(8, 111)
    first = bc.train(cfg).policy.explain(obs).probs
    torch.testing.assert_close(bc.train(cfg).policy.explain(obs).probs, first)


def test_cli_with_demos_names_the_demonstrator_and_skips_the_expert_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from rl.cli import main

    obs, actions, _ = bc.collect_expert_demos(DOG, 200, seed=5)
    path = bc.save_demos(tmp_path / "me.pt", obs, actions, DOG)
    argv = [
        "supervised", "bc", "--demos", str(path), "--expert-steps", "0", "--runs-dir",
        str(tmp_path), "--set", "epochs=2", "--set", "eval_episodes=2", "--device", "cpu",
    ]  # fmt: skip
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["teacher"] == "demonstrations" and result["demo_steps"] == 200
    assert "sweep" not in result and "expert_steps_needed" not in result
    from rl.cli.supervised_cmd import summary

    text = summary(result)
    assert "agreement with the demonstrator" in text and "the expert on held-out" not in text
    assert "no expert-steps sweep" in text


def test_summary_names_each_teacher() -> None:
    from rl.cli.supervised_cmd import summary

    base = {
        "task": "bc", "bc_success": 1.0, "expert_success": 1.0, "random_success": 0.0,
        "val_accuracy": 0.9, "expert_steps": 2000, "demo_steps": 0,
    }  # fmt: skip
    expert = summary({**base, "teacher": "expert", "target_success": 0.9,
                      "expert_steps_needed": 640, "sweep": [[320, 0.75], [640, 0.97]]})  # fmt: skip
    assert "agreement with the expert" in expert
    assert "scripted-expert steps needed for 90.0% success: 640" in expert
    both = summary({**base, "teacher": "expert+demonstrations", "demo_steps": 50})
    assert "2,000 scripted-expert steps and 50 demonstrated steps" in both
    assert "agreement with its teachers" in both


@pytest.mark.slow
def test_expert_steps_needed_sweep() -> None:
    sweep = bc.expert_steps_needed(_small(), sizes=(20, 160, 1280))
    successes = [s for _, s in sweep["curve"]]
    assert successes[-1] >= 0.9 and successes[-1] > successes[0]
    assert sweep["expert_steps_needed"] in (160, 1280)


@pytest.mark.parametrize(
    ("module", "argv", "message"),
    [
        ("bc", ["--epochs", "-1"], "epochs must be an integer >= 1, got -1"),
        ("bc", ["--demos", "nowhere.pt", "--num-expert-steps", "0"], "nowhere.pt does not exist"),
        ("representation", ["pretrain", "--unlabelled-steps", "1"], "unlabelled_steps must be"),
        ("bc", ["--run-dir", ""], "run_dir is empty"),  # (it wrote under ./runs)
        ("representation", ["transfer", "--run-dir", " "], "run_dir is empty"),
    ],
)
def test_python_m_agents_says_what_was_wrong_in_one_line(
    module: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib

    assert importlib.import_module(f"agents.{module}").main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"python -m agents.{module}: error: ") and message in err
    assert "Traceback" not in err
