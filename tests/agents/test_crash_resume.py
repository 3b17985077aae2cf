"""Crash safety: a run killed with SIGKILL and resumed ends bitwise where an uninterrupted one does.

The fast test forks a training process (it inherits the imported torch, so it starts at once),
kills it with ``kill -9`` after a few checkpoints, resumes in this process and compares weights,
optimizer state and normalisation statistics bit for bit, and TensorBoard for duplicate steps.
The slow ones go through the real entry points: ``rl train --resume-if-exists`` killed at random
moments (benchmarks/crash_resume.py), and ``torchrun --max-restarts`` bringing a 2-rank job
back after one of its workers is killed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents import ppo
from rl.checkpoint import CheckpointError, load_checkpoint
from rl.config import replace_config

ROOT = Path(__file__).resolve().parents[2]
TINY = {
    "num_envs": 4,
    "num_steps": 16,
    "num_minibatches": 2,
    "update_epochs": 2,
    "eval_episodes": 0,
    "progress": False,
    "checkpoint_every": 1,
    "num_snapshots": 2,
    "norm_obs": True,
    "norm_reward": True,
}


def tensorboard_duplicates(run_dir: Path) -> int:
    """Scalar steps TensorBoard shows more than once, over every tag."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    steps = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert steps, "no scalars logged"
    return sum(len(s) - len(set(s)) for s in steps.values())


def _train(cfg: ppo.Config) -> None:
    ppo.train(cfg)


def latest_iteration(run_dir: Path) -> int:
    try:
        return int(load_checkpoint(run_dir / "checkpoints" / "latest.pt")["iteration"])
    except CheckpointError:  # not written yet
        return -1


def test_kill_9_then_resume_is_bitwise_the_uninterrupted_run(tmp_path: Path) -> None:
    cfg = ppo.default_config("sandbox/CartPole-v1", **TINY, total_timesteps=24 * 64)
    whole = ppo.train(replace_config(cfg, {"run_dir": str(tmp_path / "whole")}))

    cut = tmp_path / "cut"
    child = multiprocessing.get_context("fork").Process(
        target=_train, args=(replace_config(cfg, {"run_dir": str(cut)}),)
    )
    child.start()
    deadline = time.monotonic() + 60
    while latest_iteration(cut) < 3 and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)  # kill -9: no cleanup, no flush, no atexit
    child.join()
    assert child.exitcode == -signal.SIGKILL, "training ended before it could be killed"
    killed_at = latest_iteration(cut)
    assert 3 <= killed_at < 24
    for path in (cut / "checkpoints").glob("*.pt"):
        load_checkpoint(path)  # every checkpoint readable after the kill

    resumed = ppo.train(cfg, resume=cut)
    assert resumed.global_step == whole.global_step
    end = load_checkpoint(cut / "checkpoints" / "latest.pt")
    reference = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")
    for key in ("model", "obs_rms"):
        for name, value in reference[key].items():
            assert torch.equal(end[key][name], value), f"{key}.{name} differs"
    assert torch.equal(end["return_rms"]["returns"], reference["return_rms"]["returns"])
    for a, b in zip(
        end["optimizer"]["state"].values(), reference["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["step"], b["step"])
    assert tensorboard_duplicates(cut) == 0
    del whole


def test_resume_if_exists_starts_fresh_then_continues(tmp_path: Path) -> None:
    from rl.cli import main

    run_dir = tmp_path / "run"
    common = [
        "train", "--env", "sandbox/CartPole-v1", "--seed", "2", "--device", "cpu",
        "--run-dir", str(run_dir), "--resume-if-exists", "--no-progress",
        "--set", "num_envs=4", "--set", "num_steps=16", "--set", "eval_episodes=0",
        "--set", "num_minibatches=2", "--set", "update_epochs=1",
    ]  # fmt: skip
    assert main([*common, "--total-timesteps", "128"]) == 0  # no checkpoint: a fresh run
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"] == 128
    # The same command again: the run is complete, so it resumes and finishes at once.
    assert main([*common, "--total-timesteps", "128"]) == 0
    assert load_checkpoint(run_dir / "checkpoints" / "latest.pt")["global_step"] == 128
    assert tensorboard_duplicates(run_dir) == 0
    assert main(["train", "--resume-if-exists"]) == 2  # needs --run-dir: a one-line error


@pytest.mark.slow
def test_random_kills_of_rl_train_resume_bitwise() -> None:
    spec = importlib.util.spec_from_file_location(
        "crash_resume", ROOT / "benchmarks/crash_resume.py"
    )
    assert spec is not None and spec.loader is not None
    harness = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(harness)
    # Exit 0: no unreadable checkpoint, nothing lost beyond the interval, every trial bitwise.
    assert harness.main(["--trials", "3", "--total-timesteps", str(256 * 12), "--json"]) == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _torchrun(run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", *extra,
        "-m", "rl", "train", "--distributed", "--env", "sandbox/CartPole-v1", "--seed", "4",
        "--device", "cpu", "--total-timesteps", str(24 * 2 * 64), "--run-dir", str(run_dir),
        "--resume-if-exists", "--no-progress", "--set", "num_envs=4", "--set", "num_steps=16",
        "--set", "eval_episodes=0", "--set", "checkpoint_every=1", "--set", "norm_obs=true",
    ]  # fmt: skip
    env = {**os.environ, "RL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _kill_group(job: subprocess.Popen[bytes]) -> None:
    """Kill a torchrun job and its workers if still running (a failed or timed-out test must
    not leave them holding ports and CPU for the tests after it). torchrun starts its workers
    in sessions of their own, so they are found through /proc, not the process group."""
    if job.poll() is None:
        pids, frontier = [], [job.pid]
        while frontier:
            pid = frontier.pop()
            pids.append(pid)
            frontier.extend(_children(pid))
        for pid in reversed(pids):  # workers first, torchrun last
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        job.wait()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds torchrun's workers through /proc")
def test_torchrun_max_restarts_brings_a_killed_worker_back_bitwise(tmp_path: Path) -> None:
    reference = _torchrun(tmp_path / "reference")
    try:
        out, _ = reference.communicate(timeout=300)
    finally:
        _kill_group(reference)
    assert reference.returncode == 0, out.decode()[-3000:]

    job = _torchrun(tmp_path / "elastic", "--max-restarts", "2")
    try:
        deadline = time.monotonic() + 240
        while latest_iteration(tmp_path / "elastic") < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = _children(job.pid)
        assert workers, "torchrun has no workers"
        os.kill(workers[-1], signal.SIGKILL)
        out, _ = job.communicate(timeout=300)
    finally:
        _kill_group(job)
    assert job.returncode == 0, out.decode()[-3000:]
    end = load_checkpoint(tmp_path / "elastic" / "checkpoints" / "latest.pt")
    expected = load_checkpoint(tmp_path / "reference" / "checkpoints" / "latest.pt")
    for name, value in expected["model"].items():
        assert torch.equal(end["model"][name], value), name
    assert end["world_size"] == 2
    assert tensorboard_duplicates(tmp_path / "elastic") == 0
