"""`rl train` and `rl eval`: run layout, JSON output, safe checkpoint loading, one-line errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import held_by_another_process

from rl.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from rl.cli import main
from rl.cli.train_cmd import resume_hint, split_overrides
from rl.evaluation import solved_thresholds
from rl.runs import TrainingDiverged

TINY_TRAIN = [
    "--env", "sandbox/CartPole-v1", "--total-timesteps", "256", "--num-envs", "4",
    "--no-progress", "--set", "num_steps=32", "--set", "eval_episodes=4",
]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("runs") / "cartpole"
    assert main(["train", *TINY_TRAIN, "--run-dir", str(path)]) == 0
    # What train printed, before later tests' `rl eval` write their own eval.json.
    shutil.copy(path / "eval.json", path.parent / "train_eval.json")
    return path


@pytest.fixture
def copy(run_dir: Path, tmp_path: Path) -> Path:
    """A copy of the module's trained run, for a test that changes it (resumes, evals)."""
    path = tmp_path / "copy"
    shutil.copytree(run_dir, path)
    return path


def one_error_line(capsys: pytest.CaptureFixture[str], command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"rl {command}: error: ")
    assert "Traceback" not in err
    return err


def test_train_writes_the_run_layout(run_dir: Path) -> None:
    assert (run_dir / "config.json").is_file()
    assert json.loads((run_dir / "config.json").read_text())["env_id"] == "sandbox/CartPole-v1"
    assert list(run_dir.glob("events.out.tfevents.*"))
    checkpoints = run_dir / "checkpoints"
    assert (checkpoints / "latest.pt").is_file() and (checkpoints / "best.pt").is_file()
    snapshots = sorted(p.name for p in checkpoints.glob("step_*.pt"))
    assert snapshots[0] == "step_000000000.pt" and snapshots[-1] == "step_000000256.pt"
    assert (run_dir / "eval.json").is_file()
    # What train wrote (a later test's `rl eval` of this run may have replaced eval.json).
    evaluation = json.loads((run_dir.parent / "train_eval.json").read_text())
    assert evaluation["episodes"] == 4


def scalar_steps(run: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_train_logs_the_tensorboard_tags(run_dir: Path) -> None:
    steps = scalar_steps(run_dir)
    for tag in (
        "charts/episodic_return", "charts/episodic_length", "charts/SPS",
        "charts/learning_rate", "losses/value_loss", "losses/policy_loss", "losses/entropy",
        "losses/approx_kl", "losses/clipfrac", "losses/explained_variance",
    ):  # fmt: skip
        assert tag in steps, tag
    assert steps["charts/SPS"] == [128, 256]


def test_eval_json_prints_one_object(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["eval", str(copy), "--json", "--episodes", "5"]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("mean_return", "std_return", "episodes", "mean_length", "env_id", "checkpoint"):
        assert key in data, key
    assert data["episodes"] == 5 and data["checkpoint"].endswith("latest.pt")
    assert json.loads((copy / "eval.json").read_text())["episodes"] == 5


def test_eval_of_a_run_repeats_the_evaluation_train_printed(
    run_dir: Path, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trained = json.loads((run_dir.parent / "train_eval.json").read_text())
    # A best.pt that acts otherwise: the run must stand for latest.pt, which train evaluated.
    best = torch.load(copy / "checkpoints" / "best.pt", weights_only=True)
    best["model"] = {k: torch.zeros_like(v) for k, v in best["model"].items()}
    torch.save(best, copy / "checkpoints" / "best.pt")
    capsys.readouterr()
    assert main(["eval", str(copy), "--json", "--episodes", str(trained["episodes"])]) == 0
    data = json.loads(capsys.readouterr().out)
    for key in ("mean_return", "std_return", "min_return", "max_return", "mean_length"):
        assert data[key] == trained[key], key


def test_eval_on_gymnasiums_env_with_the_same_spaces(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    latest = run_dir / "checkpoints" / "latest.pt"
    assert main(["eval", str(latest), "--env", "CartPole-v1", "--episodes", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["env_id"] == "CartPole-v1" and data["trained_env_id"] == "sandbox/CartPole-v1"
    # Another env's result is printed, never written over the run's own eval.json.
    before = (run_dir / "eval.json").read_text()
    assert main(["eval", str(run_dir), "--env", "CartPole-v1", "--episodes", "2"]) == 0
    assert (run_dir / "eval.json").read_text() == before


def test_eval_refuses_an_env_with_other_spaces(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--env", "Pendulum-v1"]) == 2
    assert "does not match" in one_error_line(capsys, "eval")


class _Payload:
    """Unpickling this would create ``marker``: the attack a weights-only load refuses."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_eval_refuses_a_malicious_pickle(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    marker = tmp_path / "pwned.txt"
    evil = tmp_path / "evil.pt"
    torch.save({"format": FORMAT, "algo": "ppo", "model": _Payload(marker)}, evil)
    assert not marker.exists()
    assert main(["eval", str(evil)]) == 2
    assert not marker.exists(), "the payload ran"
    assert "refused" in one_error_line(capsys, "eval")


def test_eval_reports_a_truncated_checkpoint(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = (run_dir / "checkpoints" / "latest.pt").read_bytes()
    broken = tmp_path / "broken.pt"
    broken.write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    assert main(["eval", str(broken)]) == 2
    assert "truncated" in one_error_line(capsys, "eval")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    assert main(["eval", str(foreign)]) == 2
    assert "not an RL Sandbox checkpoint" in one_error_line(capsys, "eval")


def test_resume_continues_a_run(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--resume", str(copy), "--total-timesteps", "384", "--no-progress"])
    assert code == 0
    latest = torch.load(copy / "checkpoints" / "latest.pt", weights_only=True)
    assert latest["global_step"] == 384 and latest["iteration"] == 3
    assert scalar_steps(copy)["charts/SPS"] == [128, 256, 384]  # no step logged twice
    assert "Resuming PPO" in capsys.readouterr().out


def test_resuming_a_finished_run_says_how_to_train_on(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--resume", str(copy), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "Trained 0 steps" in out and "pass at least 384 to train on" in out  # 4 x 32 more
    assert main(["train", "--resume", str(copy), "--total-timesteps", "384", "--no-progress"]) == 0
    assert "Trained 128 steps" in capsys.readouterr().out


def test_a_run_saved_before_target_confidence_resumes_on_its_own_rule(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A checkpoint without ``target_confidence`` stopped on the check's mean (0.5): a resume
    keeps that rule (a resume continues the same run: ``--set`` may not change it)."""
    latest = copy / "checkpoints" / "latest.pt"
    checkpoint = torch.load(latest, weights_only=True)
    del checkpoint["config"]["target_confidence"]
    save_checkpoint(checkpoint, latest)
    assert main(["train", "--resume", str(copy), "--total-timesteps", "384", "--no-progress"]) == 0
    assert json.loads((copy / "config.json").read_text())["target_confidence"] == 0.5
    capsys.readouterr()
    more = ["--total-timesteps", "512", "--no-progress", "--set", "target_confidence=0.9"]
    assert main(["train", "--resume", str(copy), *more]) == 2
    assert "a different target_confidence" in one_error_line(capsys, "train")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--num-envs", "0"], "--num-envs"),
        (["train", "--env", "NoSuchEnv-v0"], "unknown environment"),
        (["train", "--env", "sandbox/DogTrainin-v0"], "did you mean 'sandbox/DogTraining-v0'?"),
        (["train", "--set", "learning_rat=1"], "did you mean 'learning_rate'?"),
        (["train", "--set", "buffer_size=100"], "buffer_size is a field of DQN, not of PPO"),
        (["train", "--seeds", "0-1", "--set", "buffer_size=1"], "--seeds trains PPO only: drop"),
        (["train", "--seeds", "5-3"], "the range 5-3 goes down"),
        (["train", "--set", """reward_scheme={"on_sofa": -1"""], "not valid JSON"),
        (["watch", "sandbox/DogTrainin-v0"], "did you mean 'sandbox/DogTraining-v0'?"),
        (["train", "--set", "no_such_key=1"], "reward_scheme"),
        (["train", "--set", "learning_rate=fast"], "learning_rate"),
        (["train", "--set", "reward_scheme=bribes"], "reward_scheme"),
        (["train", "--set", "novalue"], "KEY=VALUE"),
        (["train", "--device", "tpu"], "device"),
        (["train", "--resume", "."], "no checkpoints/latest.pt"),
        (["eval", "no/such/run"], "does not exist"),
        (["eval", ".", "--episodes", "0"], "--episodes"),
        (["train", "--seed", "3", "--set", "seed=4"], "--seed and --set seed=4 both set seed"),
        (["train", "--num-envs", "8", "--set", "num_envs=8"], "both set num_envs; give one"),
        (["train", "--no-progress", "--set", "progress=maybe"], "both set progress"),
        (["train", "--run-dir", "a", "--set", "run_dir=b"], "both set run_dir"),
        (["train", "--set", "env_id=sandbox/CartPole-v1"], "pass --env instead"),
        (["train", "--set", "device=tpu"], "unknown device 'tpu'"),
        (["train", "--set", "init_from=no/such/run"], "no/such/run does not exist"),
        (["train", "--set", "init_from="], "init_from is empty: give a checkpoint or run folder"),
        (["train", "--set", "num_steps=1e30"], "num_steps must be an integer below 2**63"),
        (["check", "sandbox/CartPole-v1", "--max-steps", "0"], "--max-steps must be >= 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in one_error_line(capsys, argv[0])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--distributed"], "--distributed needs torchrun's environment"),
        (["--algo", "dqn", "--env", "sandbox/Pendulum-v1"], "DQN needs a Discrete action space"),
        (["--set", "num_threads=100000"], "num_threads must be between 1 and"),
    ],
)
def test_refused_before_the_header_says_training_started(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *argv, "--set", "write_run=false"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Training" not in captured.out


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_absent_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--device", "cuda"]) == 2
    assert "CUDA is not available" in one_error_line(capsys, "train")


def test_set_splits_config_fields_from_env_arguments() -> None:
    from agents.ppo import Config

    fields, env_kwargs = split_overrides(
        ["learning_rate=3e-4", "reward_scheme=treats", "layout=random", "num_layouts=10"],
        Config,
        "sandbox/DogTraining-v0",
    )
    assert fields == {"learning_rate": "3e-4"}
    assert env_kwargs == {"reward_scheme": "treats", "layout": "random", "num_layouts": 10}


def test_solved_thresholds() -> None:
    from envs import dog_training

    assert solved_thresholds("sandbox/DogTraining-v0") == {
        "success_rate": dog_training.SOLVED_SUCCESS_RATE,
        "mean_return": dog_training.SOLVED_MEAN_RETURN,
    }
    # A return bar is in its scheme's units: the dog's applies under "coached" only.
    for scheme in ("scolding_only", "treats", {"relief_outdoors": 2.0}):
        assert solved_thresholds("sandbox/DogTraining-v0", {"reward_scheme": scheme}) == {
            "success_rate": dog_training.SOLVED_SUCCESS_RATE
        }
    assert "mean_return" in solved_thresholds(
        "sandbox/DogTraining-v0", {"reward_scheme": "coached", "layout": "random"}
    )
    assert solved_thresholds("CartPole-v1") == {"mean_return": 475.0}
    assert solved_thresholds("sandbox/CartPole-v1") == {"mean_return": 475.0}


def test_train_says_when_it_stopped_at_the_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Any finished episode passes a target of 1: the first iteration's check stops the run.
    argv = [*TINY_TRAIN, "--set", "target_return=1", "--set", "target_window=1"]
    assert (
        main(["train", *argv, "--set", "target_check_episodes=3", "--run-dir", str(tmp_path / "a")])
        == 0
    )
    out = capsys.readouterr().out
    assert "Trained 128 steps" in out
    assert "Stopped early at the target return 1: 3 deterministic episodes averaged" in out


def test_train_capture_video_records_each_snapshot(tmp_path: Path) -> None:
    from rl.cli import main as rl_main

    run_dir = tmp_path / "cv"
    code = rl_main(
        [
            "train", "--env", "sandbox/CartPole-v1", "--total-timesteps", "2048",
            "--run-dir", str(run_dir), "--capture-video", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    gifs = sorted((run_dir / "videos").glob("step_*.gif"))
    snapshots = sorted((run_dir / "checkpoints").glob("step_*.pt"))
    assert gifs and [g.stem for g in gifs] == [s.stem for s in snapshots]


def test_train_capture_video_records_each_seeds_snapshots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--env", "sandbox/CartPole-v1", "--seeds", "0-1", "--total-timesteps", "2048"]
    assert main([*argv, "--run-dir", str(tmp_path), "--capture-video", "--no-progress"]) == 0
    seeds = sorted(tmp_path.glob("*__ppo__*[!n]"))
    assert len(seeds) == 2 and capsys.readouterr().out.count("episode videos in") == 2
    for run_dir in seeds:
        gifs = sorted((run_dir / "videos").glob("step_*.gif"))
        snapshots = sorted((run_dir / "checkpoints").glob("step_*.pt"))
        assert gifs and [g.stem for g in gifs] == [s.stem for s in snapshots]


def test_the_ctrl_c_hint_names_the_step_training_continues_from(tmp_path: Path) -> None:
    from rl.checkpoint import save_checkpoint
    from rl.cli.train_cmd import resume_hint

    latest = save_checkpoint({"model": {}, "global_step": 30720}, tmp_path / "latest.pt")
    hint = resume_hint(latest, "runs/x")
    assert "step 30,720" in hint and hint.endswith("rl train --resume runs/x")


@pytest.mark.parametrize("seed", ["-1", "1e30", str(2**63), "2.5"])
@pytest.mark.parametrize(
    "command",
    [["train"], ["eval", "RUN"], ["watch", "RUN"], ["record", "RUN", "--out", "x.gif"],
     ["play", "sandbox/CartPole-v1"], ["check", "sandbox/CartPole-v1"],
     ["supervised", "regression"]],
)  # fmt: skip
def test_every_seed_flag_takes_what_every_seed_consumer_takes(
    command: list[str], seed: str, run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = [str(run_dir) if word == "RUN" else word for word in command]
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--seed", seed])
    assert exit_info.value.code == 2
    name = " ".join(command[:2]) if command[0] == "supervised" else command[0]
    message = one_error_line(capsys, name)
    assert "argument --seed: expected an integer" in message and repr(seed) in message


def test_the_header_counts_the_steps_each_algorithm_will_train() -> None:
    from agents import dqn, ppo
    from rl.cli.train_cmd import planned_steps

    # PPO: whole iterations of num_envs x num_steps; DQN: vector steps of num_envs (its
    # batch_size is the replay minibatch, not an iteration).
    cfg = ppo.default_config("sandbox/CartPole-v1", total_timesteps=3000, num_envs=32)
    assert planned_steps(cfg).startswith(f"{cfg.num_iterations * cfg.batch_size:,} steps (")
    cfg = dqn.default_config("CartPole-v1", total_timesteps=2000, num_envs=4)
    assert planned_steps(cfg) == "2,000 steps"


def test_train_refuses_a_folder_that_holds_a_run(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert main(["train", *TINY_TRAIN, "--seed", "2", "--run-dir", str(run_dir)]) == 2
    err = one_error_line(capsys, "train")
    assert "already holds a run" in err and f"--resume {run_dir}" in err
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("text", ["3e3", "3_000", "3000"])
def test_step_counts_may_be_written_as_people_write_them(text: str) -> None:
    from rl.cli.train_cmd import whole_number

    assert whole_number(text) == 3000


def test_a_folder_of_runs_is_not_a_run_to_resume(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--resume", str(run_dir.parent)]) == 2
    assert "is a folder of runs" in one_error_line(capsys, "train")
    assert not (run_dir.parent / ".lock").exists()  # nothing left in a folder that is no run


def test_the_ctrl_c_hint_of_a_distributed_run_says_to_rerun_torchrun(tmp_path: Path) -> None:
    from rl.checkpoint import save_checkpoint
    from rl.cli.train_cmd import resume_hint

    latest = save_checkpoint({"model": {}, "global_step": 8}, tmp_path / "latest.pt")
    hint = resume_hint(latest, "runs/x", distributed=True)
    assert hint.endswith("the same torchrun command with --resume runs/x")


@pytest.mark.parametrize(
    "argv",
    [["train", "--env", ""], ["train", "--resume", ""], ["eval", "RUN", "--env", ""],
     ["plot", "", "--out", "x.png"], ["supervised", "regression", "--runs-dir", ""],
     ["check", "sandbox/CartPole-v1", "--import", ""]],
)  # fmt: skip
def test_an_empty_value_is_a_slip_not_the_default(
    argv: list[str], run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([str(run_dir) if word == "RUN" else word for word in argv])
    assert exit_info.value.code == 2
    assert "expected a value, got an empty string" in capsys.readouterr().err


def test_an_unknown_argument_points_at_the_commands_help(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["train", "junk"])
    err = capsys.readouterr().err
    assert "unrecognized arguments: junk" in err and "`rl train --help`" in err


def test_a_resume_stays_in_its_folder_and_never_trains_backwards(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = (copy / "config.json").read_text()
    capsys.readouterr()
    assert main(["train", "--resume", str(copy), "--run-dir", str(tmp_path / "other")]) == 2
    assert "continues that run in its own folder" in one_error_line(capsys, "train")
    assert main(["train", "--resume", str(copy), "--total-timesteps", "128"]) == 2
    assert "it has trained 256 steps, more than --total-timesteps 128" in one_error_line(
        capsys, "train"
    )
    assert (copy / "config.json").read_text() == config and not (tmp_path / "other").exists()


def test_a_distributed_resume_counts_its_iterations_in_every_ranks_steps(
    copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # 2 ranks of 4 envs x 32 steps: 256 steps an iteration, so a total of 600 is 2 iterations
    # (512 steps), fewer than the 1,024 the checkpoint says were trained.
    latest = copy / "checkpoints" / "latest.pt"
    save_checkpoint({**load_checkpoint(latest), "global_step": 1024}, latest)
    # torchrun's environment for rank 0 of 2: refused before any process group is made.
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", "29500")
    capsys.readouterr()
    argv = ["train", "--resume", str(copy), "--distributed", "--total-timesteps", "600"]
    assert main(argv) == 2
    assert "it has trained 1,024 steps, more than --total-timesteps 600" in one_error_line(
        capsys, "train"
    )


def test_a_run_folder_that_cannot_be_made_is_said_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    assert main(["train", *TINY_TRAIN, "--run-dir", str(afile)]) == 2
    assert f"the run folder {afile} is a file; expected a folder" in one_error_line(capsys, "train")
    assert main(["train", *TINY_TRAIN, "--run-dir", str(afile / "run")]) == 2
    assert "cannot make the run folder" in one_error_line(capsys, "train")


def test_eval_of_a_runs_checkpoints_folder_writes_the_runs_eval_json(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (copy / "eval.json").unlink()
    assert main(["eval", str(copy / "checkpoints"), "--episodes", "2"]) == 0
    assert (copy / "eval.json").is_file() and not (copy / "checkpoints" / "eval.json").exists()


def test_eval_of_a_checkpoint_without_an_algorithm_says_so(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
    del checkpoint["algo"]
    torch.save(checkpoint, tmp_path / "x.pt")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "x.pt")]) == 2
    assert "does not say which algorithm wrote it" in one_error_line(capsys, "eval")


def test_an_os_error_is_one_line(monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from rl.cli import eval_cmd

    def full_disk(args: object) -> int:
        raise OSError(28, "No space left on device", "runs/x/eval.json")

    monkeypatch.setattr(eval_cmd, "run", full_disk)
    assert main(["eval", "anything"]) == 1
    assert one_error_line(capsys, "eval").endswith("runs/x/eval.json: No space left on device")


def test_a_folder_killed_before_its_first_checkpoint_starts_afresh(tmp_path: Path) -> None:
    # What a kill between config.json and the step-0 checkpoint leaves: torchrun's restart
    # (--resume-if-exists) must not be stuck between "already holds a run" and "nothing saved".
    folder = tmp_path / "run"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text('{"seed": 1}')
    assert main(["train", *TINY_TRAIN, "--run-dir", str(folder), "--resume-if-exists"]) == 0
    assert (folder / "checkpoints" / "latest.pt").is_file()


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_a_run_stopped_at_its_target_trains_no_further_when_resumed(
    algo: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A resume after a crash in the final evaluation must end where the run ended.
    run = tmp_path / algo
    settings = ["--set", "target_return=1", "--set", "target_check_episodes=0"]
    argv = ["--env", "sandbox/CartPole-v1", "--no-progress", "--set", "eval_episodes=2"]
    assert main(["train", "--algo", algo, *argv, *settings, "--run-dir", str(run)]) == 0
    before = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert before["target_reached"] is not None
    more = str(4 * before["global_step"])
    assert main(["train", "--resume", str(run), "--total-timesteps", more, "--no-progress"]) == 0
    after = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert after["global_step"] == before["global_step"]
    for key, tensor in before["model"].items():
        assert torch.equal(after["model"][key], tensor), key
    assert "Trained 0 steps" in capsys.readouterr().out


def test_a_resume_says_what_it_refuses_before_it_says_resuming(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--seed", "5"]) == 2
    captured = capsys.readouterr()
    assert "Resuming" not in captured.out and "different seed" in captured.err
    assert main(["train", "--resume", str(run_dir), "--set", "sutton_barto_reward=true"]) == 2
    assert "a run's env arguments are fixed" in one_error_line(capsys, "train")


def test_a_quick_eval_keeps_the_runs_larger_evaluation(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (copy / "eval.json").read_text()
    episodes = json.loads(before)["episodes"]
    assert main(["eval", str(copy), "--episodes", str(episodes - 1)]) == 0
    assert (copy / "eval.json").read_text() == before
    assert "eval.json kept: it holds an evaluation of more episodes" in capsys.readouterr().out
    # Another seed's evaluation is printed only: eval.json stays what rl train printed.
    assert main(["eval", str(copy), "--episodes", str(episodes + 1), "--seed", "7"]) == 0
    assert (copy / "eval.json").read_text() == before
    assert "not saved: eval.json holds an evaluation with seed 1, this used 7" in (
        capsys.readouterr().out
    )
    assert main(["eval", str(copy), "--episodes", str(episodes + 1)]) == 0
    assert json.loads((copy / "eval.json").read_text())["episodes"] == episodes + 1


def test_a_run_shorter_than_one_iteration_resumes(tmp_path: Path) -> None:
    # --total-timesteps 1,000 trains one whole iteration of 1,024 steps: not "more than 1,000".
    run = tmp_path / "short"
    argv = ["--env", "sandbox/CartPole-v1", "--no-progress", "--set", "eval_episodes=2"]
    assert main(["train", *argv, "--total-timesteps", "1000", "--run-dir", str(run)]) == 0
    assert main(["train", "--resume", str(run), "--no-progress"]) == 0
    assert main(["train", *argv, "--total-timesteps", "1000", "--run-dir", str(run),
                 "--resume-if-exists"]) == 0  # fmt: skip


def test_a_restart_may_repeat_the_runs_own_env_arguments(tmp_path: Path) -> None:
    run = tmp_path / "dog"
    argv = ["--total-timesteps", "2048", "--no-progress", "--set", "eval_episodes=2",
            "--set", "reward_scheme=treats", "--run-dir", str(run), "--resume-if-exists"]  # fmt: skip
    assert main(["train", *argv]) == 0
    assert main(["train", *argv]) == 0  # torchrun's restart repeats the command as it was


def test_a_resume_waits_for_nothing_and_reads_nothing_while_another_writes(
    copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with held_by_another_process(copy):
        capsys.readouterr()
        assert main(["train", "--resume", str(copy), "--total-timesteps", "512"]) == 2
        captured = capsys.readouterr()
        assert "is being written by another training" in captured.err
        assert "Resuming" not in captured.out


def test_a_file_system_without_locks_trains_unlocked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert main(["train", *TINY_TRAIN, "--run-dir", str(tmp_path / "run")]) == 0
    assert "cannot lock" in capsys.readouterr().err


def test_tensorboard_is_pointed_at_a_folder_of_runs_or_at_the_run(tmp_path: Path) -> None:
    from rl.cli.train_cmd import logdir_for

    lesson = tmp_path / "lesson"
    for scheme in ("treats", "coached"):
        (lesson / scheme).mkdir(parents=True)
        (lesson / scheme / "config.json").write_text("{}")
    assert logdir_for(lesson / "coached") == lesson  # the schemes' curves side by side
    assert logdir_for(tmp_path / "alone") == tmp_path / "alone"  # not the whole of tmp_path
    assert logdir_for(Path("runs") / "x") == Path("runs")


def test_a_resume_on_another_thread_count_says_it_is_not_bit_for_bit(
    copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("RL_NUM_THREADS", raising=False)
    assert torch.load(copy / "checkpoints" / "latest.pt", weights_only=True)["torch_threads"] == 1
    capsys.readouterr()
    argv = ["train", "--resume", str(copy), "--total-timesteps", "384", "--no-progress"]
    assert main([*argv, "--set", "num_threads=2"]) == 0
    assert "trained on 1 CPU thread(s), this resume uses 2" in capsys.readouterr().err
    assert main([*argv[:-2], "512", "--no-progress"]) == 0  # its config now says 2: no note
    assert "CPU thread" not in capsys.readouterr().err


def test_a_training_that_fails_before_writing_leaves_no_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = ["train", *TINY_TRAIN, "--set", "init_from=no/such/run"]
    (tmp_path / "kept").mkdir()
    for run in (tmp_path / "never", tmp_path / "made" / "for" / "it", tmp_path / "kept" / "run"):
        assert main([*bad, "--run-dir", str(run)]) == 2
        assert "no/such/run does not exist" in one_error_line(capsys, "train")
    monkeypatch.chdir(tmp_path)
    assert main(bad) == 2  # the default run folder, under runs/
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert not any((tmp_path / "kept").iterdir())


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (TrainingDiverged("PPO diverged at iteration 1"), "PPO diverged at iteration 1"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory"), "error: out of memory"),
    ],
)
def test_a_failed_training_says_a_resume_cannot_change_its_settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: Exception,
    says: str,
) -> None:
    """After its step-0 checkpoint the folder holds a run: a fix needs a new --run-dir."""
    from agents import ppo

    def fail(cfg: Any, resume: Any = None) -> None:
        raise failure

    monkeypatch.setattr(ppo, "train", fail)
    assert main(["train", *TINY_TRAIN, "--run-dir", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert says in err and "new --run-dir" in err


def test_an_env_argument_given_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    twice = ["--set", 'env_kwargs={"reward_scheme": "treats"}', "--set", "reward_scheme=coached"]
    assert main(["train", *twice, "--set", "write_run=false"]) == 2
    assert "reward_scheme given twice: in --set env_kwargs" in one_error_line(capsys, "train")
    assert main(["train", "--set", "layout=random", "--set", "layout=default"]) == 2
    assert "--set layout is given twice ('random', then 'default')" in one_error_line(
        capsys, "train"
    )


def test_trainings_named_by_the_clock_in_the_same_second_get_a_folder_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import rl.runs

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rl.runs, "run_name", lambda *args: "same-second")  # a parallel sweep
    for _ in range(2):
        assert main(["train", *TINY_TRAIN]) == 0
    capsys.readouterr()
    runs = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert runs == ["same-second", "same-second-2"]
    assert all((tmp_path / "runs" / r / "checkpoints" / "latest.pt").is_file() for r in runs)


def test_only_rank_0_checks_the_run_folder_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rank 0 makes <name>-2 when <name> holds a run; rank 1, which writes nothing, names the
    folder by its own clock and must not refuse the job over <name>."""
    import rl.runs
    from agents import ppo

    class Trained(Exception):
        pass

    def train(cfg: Any, resume: Any = None) -> None:
        raise Trained(cfg.run_dir)

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(rl.runs, "run_name", lambda *args: "same-second")
    (tmp_path / "runs" / "same-second" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "same-second" / "checkpoints" / "latest.pt").write_bytes(b"")
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "localhost"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setattr(ppo, "train", train)
    with pytest.raises(Trained):
        main(["train", *TINY_TRAIN, "--distributed"])


def test_a_run_stopped_by_ctrl_c_is_summarised_and_exits_130(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from agents import ppo

    monkeypatch.setattr(ppo, "stop_requested", lambda: True)  # Ctrl-C in the first iteration
    run = tmp_path / "run"
    assert main(["train", *TINY_TRAIN, "--run-dir", str(run)]) == 130
    out = capsys.readouterr().out
    assert "Stopped at your request (Ctrl-C), checkpointed at step 128" in out
    assert "Evaluation (4 deterministic episodes)" in out
    assert (run / "checkpoints" / "latest.pt").is_file()


def test_train_and_eval_write_one_eval_json_naming_the_checkpoint_within_the_run(
    run_dir: Path, copy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What train wrote (other tests' rl eval may have replaced the run's eval.json since).
    trained = json.loads((run_dir.parent / "train_eval.json").read_text())
    assert trained["checkpoint"] == "checkpoints/latest.pt" and trained["algo"] == "ppo"
    assert trained["solved_thresholds"] == {"mean_return": 475.0}
    (copy / "eval.json").unlink()
    capsys.readouterr()
    assert main(["eval", str(copy), "--episodes", str(trained["episodes"])]) == 0
    assert f"saved in {copy / 'eval.json'}" in capsys.readouterr().out
    evaluated = json.loads((copy / "eval.json").read_text())
    assert evaluated == trained  # the same evaluation, the same record


def test_torchrun_without_distributed_and_a_plain_resume_of_a_distributed_run_say_what_to_run(
    copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    with monkeypatch.context() as env:
        env.setenv("WORLD_SIZE", "2")
        assert main(["train", *TINY_TRAIN, "--run-dir", str(copy.parent / "new")]) == 2
        assert "launched by torchrun with 2 ranks but without --distributed" in one_error_line(
            capsys, "train"
        )
    latest = copy / "checkpoints" / "latest.pt"
    saved = load_checkpoint(latest)
    config = {**saved["config"], "distributed": True}
    save_checkpoint({**saved, "config": config, "world_size": 2}, latest)
    assert main(["train", "--resume", str(copy), "--total-timesteps", "512"]) == 2
    assert (
        f"trained over 2 ranks: continue it with torchrun --nproc-per-node 2 -m rl train "
        f"--distributed --resume {copy}" in one_error_line(capsys, "train")
    )


def test_the_resume_hint_after_resume_if_exists_is_the_same_command(copy: Path) -> None:
    latest = copy / "checkpoints" / "latest.pt"
    hint = resume_hint(latest, copy, distributed=True, if_exists=True)
    assert hint.endswith("the same command (--resume-if-exists continues the run)")
    assert "step 256" in hint
    assert resume_hint(latest, copy).endswith(f"rl train --resume {copy}")


def test_eval_of_a_run_it_cannot_write_into_still_evaluates(
    copy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rl.cli import CLIError, eval_cmd

    def read_only(path: Path, what: str) -> None:
        raise CLIError(f"cannot write {what} {path}: Read-only file system")

    monkeypatch.setattr(eval_cmd, "check_writable", read_only)
    before = (copy / "eval.json").read_text()
    capsys.readouterr()
    assert main(["eval", str(copy), "--episodes", "3"]) == 0
    out = capsys.readouterr().out
    assert "mean return" in out and "not saved: cannot write the run's evaluation" in out
    assert (copy / "eval.json").read_text() == before


def test_env_values_read_python_bools_as_bools() -> None:
    # "False" as text is truthy: an env argument given False must not be switched on.
    from rl.cli import parse_env_value

    for text, value in (("False", False), ("TRUE", True), ("false", False), ("None", None)):
        assert parse_env_value(text) is value
    assert parse_env_value("0.5") == 0.5 and parse_env_value("treats") == "treats"
    assert parse_env_value('{"a": [1, 2]}') == {"a": [1, 2]}


def test_a_time_limit_is_an_env_argument_of_rl_train_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # rl watch took --set max_episode_steps=N; rl train refused it as "unknown".
    run_dir = tmp_path / "run"
    argv = ["train", "--env", "CartPole-v1", "--num-envs", "4", "--total-timesteps", "256"]
    argv += ["--no-progress", "--run-dir", str(run_dir), "--set", "max_episode_steps=20"]
    assert main([*argv, "--set", "eval_episodes=3", "--set", "num_steps=32"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["env_kwargs"] == {"max_episode_steps": 20}
    out = capsys.readouterr().out
    assert "mean return" in out and "solved at" not in out  # 475 needs 500 steps
    assert solved_thresholds("CartPole-v1", {"max_episode_steps": 20}) == {}
    assert solved_thresholds("CartPole-v1", {"max_episode_steps": 500}) == {"mean_return": 475.0}


def test_env_problems_are_one_line_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import gymnasium

    # A bad value that only the env's step trips on: a traceback after the header before.
    argv = ["train", "--env", "Pendulum-v1", "--total-timesteps", "256", "--no-progress"]
    assert main([*argv, "--run-dir", str(tmp_path / "g"), "--set", "g=abc"]) == 2
    err = one_error_line(capsys, "train")
    assert "Pendulum-v1 with {'g': 'abc'} fails in its first step: TypeError" in err
    assert not (tmp_path / "g").exists()
    # An env whose module needs a package that is not installed: a ModuleNotFoundError before.
    (tmp_path / "needs_missing.py").write_text("import not_a_real_package_xyz  # noqa\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    gymnasium.register("zoo/NeedsMissing-v0", entry_point="needs_missing:Env")
    try:
        assert (
            main(["train", "--env", "zoo/NeedsMissing-v0", "--run-dir", str(tmp_path / "m")]) == 1
        )
    finally:
        del gymnasium.registry["zoo/NeedsMissing-v0"]
    err = one_error_line(capsys, "train")
    assert "No module named 'not_a_real_package_xyz'" in err and "not installed" in err
    # Actions from 1, which no agent takes: refused after the "Training ..." header before.
    (tmp_path / "starts_at_one.py").write_text(
        "import gymnasium, numpy as np\n"
        "class Env(gymnasium.Env):\n"
        "    observation_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)\n"
        "    action_space = gymnasium.spaces.Discrete(3, start=1)\n"
        "    def reset(self, *, seed=None, options=None):\n"
        "        return np.zeros(2, np.float32), {}\n"
        "    def step(self, action):\n"
        "        return np.zeros(2, np.float32), 0.0, True, False, {}\n"
        "gymnasium.register('zoo/StartsAtOne-v0', entry_point=Env, max_episode_steps=10)\n"
    )
    assert (
        main(
            ["train", "--env", "starts_at_one:zoo/StartsAtOne-v0", "--run-dir", str(tmp_path / "s")]
        )
        == 2
    )
    captured = capsys.readouterr()
    assert captured.out == "" and "Discrete(3, start=1) must start at 0" in captured.err
    del gymnasium.registry["zoo/StartsAtOne-v0"]
