"""Run folders: layout, snapshot schedule, checkpoint lookup, TensorBoard purge on resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import held_by_another_process

from rl.checkpoint import CheckpointError, save_checkpoint
from rl.runs import (
    EpisodeTracker,
    RunInUse,
    TrainingRun,
    an_interrupted_first_save,
    find_checkpoint,
    list_snapshots,
    load_resume_checkpoint,
    make_new_dir,
    read_json,
    refuse_another_run_in,
    run_name,
)


def test_run_name_is_filesystem_safe() -> None:
    name = run_name("sandbox/DogTraining-v0", "ppo", 3)
    assert name.startswith("sandbox-DogTraining-v0__ppo__3__")
    assert "/" not in name


def test_a_new_folder_never_reuses_one_that_exists(tmp_path: Path) -> None:
    made = [make_new_dir(tmp_path / "runs", "run") for _ in range(3)]
    assert [p.name for p in made] == ["run", "run-2", "run-3"]
    assert all(p.is_dir() and not any(p.iterdir()) for p in made)


def test_resume_refusals_say_what_to_resume_instead(tmp_path: Path) -> None:
    (tmp_path / "cp__ppo-seeds__0-1_K2__t").mkdir()
    (tmp_path / "cp__ppo-seeds__0-1_K2__t" / "multiseed.pt").write_bytes(b"")
    for seed in (0, 1):
        (tmp_path / f"cp__ppo__{seed}__t" / "checkpoints").mkdir(parents=True)
        (tmp_path / f"cp__ppo__{seed}__t" / "checkpoints" / "latest.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"give its group folder: --resume .*ppo-seeds"):
        load_resume_checkpoint(tmp_path)
    (tmp_path / "early").mkdir()
    (tmp_path / "early" / "config.json").write_text("{}")  # killed before its first checkpoint
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint: train it"):
        load_resume_checkpoint(tmp_path / "early")


def test_a_resume_refuses_a_latest_pt_copied_in_from_another_run(tmp_path: Path) -> None:
    ppo = {"env_id": "CartPole-v1", "env_kwargs": {}, "seed": 1, "clip_coef": 0.2}
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    # What the folder's training wrote, then resumed (killed before its next checkpoint) with
    # a larger total, its numbers rewritten as floats and a field a trainer adjusts: all fine.
    rewritten = {**ppo, "total_timesteps": 2000.0, "target_return": 200.0, "vf_coef": 0.25}
    (run / "config.json").write_text(json.dumps(rewritten))
    latest = run / "checkpoints" / "latest.pt"
    config = {**ppo, "total_timesteps": 1000, "target_return": 200, "vf_coef": 0.5}
    save_checkpoint({"model": {}, "algo": "ppo", "config": config}, latest)
    assert load_resume_checkpoint(run)["config"]["total_timesteps"] == 1000
    sibling = {**config, "seed": 3, "env_kwargs": {"layout": "random"}}
    save_checkpoint({"model": {}, "algo": "ppo", "config": sibling}, latest)
    with pytest.raises(
        CheckpointError,
        match=r"not written by the training in .*: it trained with env_kwargs=\{'layout': "
        r"'random'\}, seed=3, config\.json says env_kwargs=\{\}, seed=1; was it copied in",
    ):
        load_resume_checkpoint(run)
    dqn = {"env_id": "CartPole-v1", "seed": 1, "buffer_size": 10, "total_timesteps": 1000}
    save_checkpoint({"model": {}, "algo": "dqn", "config": dqn}, latest)
    with pytest.raises(CheckpointError, match="another algorithm's \\(it is dqn's run\\)"):
        load_resume_checkpoint(run)


def test_layout_snapshots_and_best(tmp_path: Path) -> None:
    run = TrainingRun(
        tmp_path / "run", {"lr": 1.0}, total_timesteps=100, num_snapshots=4, progress=False
    )
    payload = {"model": {"w": torch.zeros(1)}}
    returns = [1.0, 5.0, 3.0, 7.0, 2.0, 0.0]
    for step, ret in zip(range(0, 120, 20), returns, strict=True):
        run.log({"charts/episodic_return": ret}, step)
        run.save(payload, step, mean_return=ret, snapshot=run.snapshot_due(step))
    run.close()
    steps = [s for s, _ in list_snapshots(tmp_path / "run")]
    # Thresholds at 0, 25, 50, 75, 100 % of 100 steps, each taken by the first save past it.
    assert steps == [0, 40, 60, 80, 100]
    assert read_json(tmp_path / "run" / "config.json") == {"lr": 1.0}
    assert list((tmp_path / "run").glob("events.out.tfevents.*"))
    best = torch.load(find_checkpoint(tmp_path / "run", which="best"), weights_only=True)
    assert best["best_return"] == 7.0 and best["global_step"] == 60
    # A run stands for the weights training ended with.
    assert find_checkpoint(tmp_path / "run").name == "latest.pt"
    with pytest.raises(ValueError, match="'latest' or 'best'"):
        find_checkpoint(tmp_path / "run", which="final")
    assert load_resume_checkpoint(tmp_path / "run")["global_step"] == 100


def test_a_bar_stopped_before_the_plan_ends_finished_and_says_so(tmp_path: Path) -> None:
    run = TrainingRun(tmp_path / "run", {}, total_timesteps=1000, progress=True)
    run.update_progress(300, "return 42.0")
    (task,) = run._progress.tasks
    run.close()
    assert task.finished and task.completed == 300
    assert task.fields["status"] == "return 42.0 | stopped early"


def test_find_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        find_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        find_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{}")  # a training that has not saved yet
    with pytest.raises(CheckpointError, match="no checkpoint yet: its training is still start"):
        find_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    for step in (0, 40):  # latest.pt and best.pt lost, snapshots left
        (tmp_path / "checkpoints" / f"step_{step:09d}.pt").write_bytes(b"x")
    with pytest.raises(CheckpointError, match=r"only step_\*\.pt snapshots; .*step_000000040"):
        find_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match=r"no checkpoints/latest\.pt"):
        load_resume_checkpoint(tmp_path)


def test_a_folder_of_runs_names_some_of_them(tmp_path: Path) -> None:
    """``rl eval runs`` or ``rl watch runs/lesson``: the runs inside are what to give."""
    for name in ("lesson/coached", "lesson/treats", "other"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        for file in ("latest.pt", "best.pt"):
            save_checkpoint({"model": {}}, tmp_path / name / "checkpoints" / file)
    with pytest.raises(CheckpointError, match=r"lesson is a folder of runs, not one run; give "):
        find_checkpoint(tmp_path / "lesson")
    with pytest.raises(CheckpointError, match=r"e\.g\. \S+coached, \S+treats, \S+other$"):
        find_checkpoint(tmp_path)
    # A supervised comparison writes its config.json beside its runs (source/, transfer/, ...).
    (tmp_path / "lesson" / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match=r"lesson is a folder of runs"):
        find_checkpoint(tmp_path / "lesson")
    with pytest.raises(CheckpointError, match=r"does not exist: did you mean '\S+coached'\?"):
        find_checkpoint(tmp_path / "lesson" / "coachd")  # rl eval


def test_a_finished_run_whose_checkpoints_were_deleted_is_still_a_run(tmp_path: Path) -> None:
    """Its eval.json and curves are kept: a new run there would hide them (purge from 0)."""
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "eval.json").write_text("{}")
    with pytest.raises(ValueError, match="already holds a run"):
        refuse_another_run_in(tmp_path)


def test_non_writer_rank_writes_nothing(tmp_path: Path) -> None:
    run = TrainingRun(tmp_path / "r1", {}, total_timesteps=10, writer=False, progress=False)
    run.log({"x": 1.0}, 0)
    assert run.save({"model": {}}, 0, mean_return=1.0, snapshot=True) is None
    run.close()
    assert not (tmp_path / "r1").exists()


def test_every_rank_moves_through_the_snapshot_schedule(tmp_path: Path) -> None:
    # Saving is a collective in a distributed run: ranks must agree on when a snapshot is due.
    runs = [
        TrainingRun(tmp_path / "r", {}, total_timesteps=100, num_snapshots=4, writer=writer,
                    progress=False)
        for writer in (True, False)
    ]  # fmt: skip
    for step in range(0, 120, 20):
        due = [run.snapshot_due(step) for run in runs]
        assert due[0] == due[1], (step, due)
        for run in runs:
            run.save({"model": {}}, step, snapshot=due[0])
    for run in runs:
        run.close()


def test_purge_step_drops_later_events(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = TrainingRun(tmp_path / "run", {}, total_timesteps=10, progress=False)
    for step in range(10):
        run.log({"charts/x": float(step)}, step)
    run.close()
    resumed = TrainingRun(tmp_path / "run", {}, total_timesteps=10, purge_step=5, progress=False)
    for step in range(5, 10):
        resumed.log({"charts/x": 100.0 + step}, step)
    resumed.close()
    acc = EventAccumulator(str(tmp_path / "run"))
    acc.Reload()
    events = acc.Scalars("charts/x")
    assert [e.step for e in events] == list(range(10))
    assert [e.value for e in events][5:] == [105.0, 106.0, 107.0, 108.0, 109.0]


def test_episode_tracker_sums_finished_rows_only() -> None:
    tracker = EpisodeTracker(torch.device("cpu"))
    assert tracker.summary() is None
    done = torch.tensor([True, False, True])
    tracker.record(
        {
            "_episode": done,
            "episode": {
                "r": torch.tensor([1.0, 100.0, 3.0]),
                "l": torch.tensor([10, 99, 30]),
                "successes": torch.tensor([1.0, 5.0, 0.0]),
                "attempts": torch.tensor([1.0, 5.0, 2.0]),
            },
        }
    )
    stats = tracker.summary()
    assert stats == {
        "episodes": 2.0,
        "episodic_return": 2.0,
        "episodic_length": 20.0,
        "success_rate": pytest.approx(1 / 3),
    }
    assert tracker.summary() is None


def test_a_first_ctrl_c_asks_training_to_stop_a_second_interrupts() -> None:
    import os
    import signal

    from rl.runs import stop_on_interrupt, stop_requested

    before = signal.getsignal(signal.SIGINT)
    with stop_on_interrupt():
        assert not stop_requested()
        os.kill(os.getpid(), signal.SIGINT)
        assert stop_requested()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert not stop_requested() and signal.getsignal(signal.SIGINT) is before


def test_a_second_training_into_a_folder_being_written_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    with held_by_another_process(folder) as holder:  # as a live `rl train` holds it
        (folder / "checkpoints").mkdir()
        (folder / "checkpoints" / ".latest.pt.0123abcd.tmp").write_bytes(b"half a write")
        with pytest.raises(
            RunInUse, match=rf"is being written by another training \(pid {holder.pid}\)"
        ):
            TrainingRun(folder, {"seed": 2}, total_timesteps=10, progress=False)
        assert not (folder / "config.json").exists()  # the second wrote nothing
    # Free again; a killed write's temporary file goes when the next training takes the folder.
    run = TrainingRun(folder, {"seed": 1}, total_timesteps=10, progress=False)
    run.close()
    assert not list(folder.glob("checkpoints/.*.tmp"))


def test_one_process_may_hold_its_run_folder_around_its_training_run(tmp_path: Path) -> None:
    from rl.runs import run_folder_lock

    folder = tmp_path / "run"
    with run_folder_lock(folder):  # as rl train holds it from before reading the checkpoint
        TrainingRun(folder, {}, total_timesteps=10, progress=False).close()
        TrainingRun(folder, {}, total_timesteps=10, progress=False).close()


def test_far_more_snapshots_than_saves_take_one_per_save_at_once(tmp_path: Path) -> None:
    # The schedule jumps to the next 1/K mark rather than counting the marks passed: with
    # K = 10**18 counting would not end.
    run = TrainingRun(
        tmp_path / "run", {}, total_timesteps=100, num_snapshots=10**18, progress=False
    )
    for step in (0, 50, 100):
        run.save({"model": {}}, step, snapshot=run.snapshot_due(step))
    run.restore_schedule(100, None)
    assert not run.snapshot_due(100)
    run.close()
    assert [s for s, _ in list_snapshots(tmp_path / "run")] == [0, 50, 100]


def test_latest_is_written_last_and_a_resume_skips_the_marks_it_covers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rl import runs

    run = TrainingRun(tmp_path / "run", {}, total_timesteps=1000, num_snapshots=10, progress=False)
    written: list[str] = []
    real = runs.save_checkpoint
    monkeypatch.setattr(
        runs,
        "save_checkpoint",
        lambda payload, path: written.append(Path(path).name) or real(payload, path),
    )
    run.save({"model": {}}, 0, mean_return=1.0, snapshot=run.snapshot_due(0))
    # A kill between two of these files leaves latest.pt at the step before: the resume
    # repeats this save. Written first, latest.pt would say step 0 with no best.pt beside it.
    assert written == ["best.pt", "step_000000000.pt", "latest.pt"]
    run.close()
    # Resumed from a checkpoint exactly at the mark of 200 steps: marks 0, 1 and 2 are taken.
    resumed = TrainingRun(
        tmp_path / "run", {}, total_timesteps=1000, num_snapshots=10, progress=False, purge_step=201
    )
    resumed.restore_schedule(200, None)
    assert not resumed.snapshot_due(256) and resumed.snapshot_due(300)
    resumed.close()


def test_episode_charts_and_the_progress_words() -> None:
    charts, status = EpisodeTracker.charts([2, 10.0, 30.0, 1, 2])
    assert charts == {
        "charts/episodic_return": 5.0,
        "charts/episodic_length": 15.0,
        "charts/success_rate": 0.5,
    }
    assert status == "return 5.0 | success 50%"
    charts, status = EpisodeTracker.charts([4, -2.0, 8.0, 0, 0])  # no attempts: no rate
    assert charts == {"charts/episodic_return": -0.5, "charts/episodic_length": 2.0}
    assert status == "return -0.5"
    assert EpisodeTracker.charts([0, 0.0, 0.0, 0, 0]) == ({}, "")


def test_a_failed_json_write_keeps_the_old_file_and_leaves_no_temporary_one(
    tmp_path: Path,
) -> None:
    from rl.runs import write_json

    path = write_json(tmp_path / "eval.json", {"mean_return": 1.0})
    with pytest.raises(TypeError):
        write_json(path, {"mean_return": object()})  # fails halfway through the dump
    assert json.loads(path.read_text()) == {"mean_return": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]


class Killed(BaseException):
    """A kill -9 between two files of a save, as far as the folder can tell."""


def test_a_kill_during_the_first_save_leaves_a_folder_a_new_run_starts_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every agent saves first at step 0, the snapshot before latest.pt: killed between them,
    the folder held only an untrained snapshot and could be neither resumed nor (until now)
    trained into, so ``--resume-if-exists`` was stuck. A new run starts there."""
    from rl import runs

    folder = tmp_path / "run"
    run = TrainingRun(folder, {}, total_timesteps=1000, progress=False)
    real = runs.save_checkpoint

    def killed_before_latest(payload: dict, path: Path) -> Path:
        if Path(path).name == "latest.pt":
            raise Killed
        return real(payload, path)

    monkeypatch.setattr(runs, "save_checkpoint", killed_before_latest)
    with pytest.raises(Killed):
        run.save({"model": {}}, 0, snapshot=run.snapshot_due(0))
    run.close()
    monkeypatch.undo()
    assert [p.name for p in (folder / "checkpoints").glob("*.pt")] == ["step_000000000.pt"]
    assert an_interrupted_first_save(folder)
    with pytest.raises(CheckpointError, match=r"stopped during its first checkpoint .*afresh"):
        load_resume_checkpoint(folder)
    with pytest.raises(CheckpointError, match=r"no trained checkpoint: .*train it again"):
        find_checkpoint(folder)  # rl eval, rl watch
    refuse_another_run_in(folder)  # no refusal
    fresh = TrainingRun(folder, {}, total_timesteps=1000, progress=False)
    fresh.save({"model": {}}, 0, snapshot=fresh.snapshot_due(0))
    fresh.close()
    assert load_resume_checkpoint(folder)["global_step"] == 0


@pytest.mark.parametrize(
    "files",
    [
        ["best.pt"],  # a run whose latest.pt and snapshots were deleted
        ["best.pt", "step_000000000.pt"],
        ["step_000008192.pt"],  # one later snapshot left
        ["step_000000000.pt", "replay_buffer.pt"],
        ["step_000000000.pt", "step_000004096.pt"],
    ],
)
def test_a_folder_holding_more_than_an_untrained_snapshot_is_still_a_run(
    tmp_path: Path, files: list[str]
) -> None:
    """Without latest.pt, anything beyond the step-0 snapshot is a run's to keep: refused."""
    (tmp_path / "checkpoints").mkdir()
    for name in files:
        save_checkpoint({"model": {}}, tmp_path / "checkpoints" / name)
    assert not an_interrupted_first_save(tmp_path)
    with pytest.raises(ValueError, match="already holds a run"):
        refuse_another_run_in(tmp_path)


def test_a_new_run_over_an_attempt_without_checkpoints_drops_its_events(tmp_path: Path) -> None:
    """An attempt stopped before its first checkpoint logged steps 0-2; the run trained there
    afresh logs them again, and TensorBoard shows each step once (the new file purges from 0)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    for value in (1.0, 2.0):
        run = TrainingRun(tmp_path / "run", {}, total_timesteps=3, progress=False)
        for step in range(3):
            run.log({"x": value}, step)
        run.close()
    events = EventAccumulator(str(tmp_path / "run"), size_guidance={"scalars": 0})
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("x")] == [(0, 2.0), (1, 2.0), (2, 2.0)]
