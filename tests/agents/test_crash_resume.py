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
import re
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


def _launch(*args: str) -> subprocess.Popen[bytes]:
    """``torchrun`` with 2 ranks on this machine (the c10d rendezvous, as ``--standalone``)."""
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc-per-node", "2",
        "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", *args,
    ]  # fmt: skip
    env = {**os.environ, "RL_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def _torchrun(run_dir: Path, *extra: str) -> subprocess.Popen[bytes]:
    return _launch(
        *extra, "-m", "rl", "train", "--distributed", "--env", "sandbox/CartPole-v1", "--seed",
        "4", "--device", "cpu", "--total-timesteps", str(24 * 2 * 64), "--run-dir", str(run_dir),
        "--resume-if-exists", "--no-progress", "--set", "num_envs=4", "--set", "num_steps=16",
        "--set", "eval_episodes=0", "--set", "checkpoint_every=1", "--set", "norm_obs=true",
    )  # fmt: skip


def _output(job: subprocess.Popen[bytes], timeout: float) -> str:
    """The job's output once it ends. A job still running after ``timeout`` seconds is killed,
    and its output so far (where it hung) is returned, so the assertion that follows shows it."""
    try:
        out, _ = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(job)
        out, _ = job.communicate()
        out += f"\n[killed: still running after {timeout:.0f} s]".encode()
    return out.decode(errors="replace")


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
        out = _output(reference, timeout=300)
    finally:
        _kill_group(reference)
    assert reference.returncode == 0, out[-3000:]

    job = _torchrun(tmp_path / "elastic", "--max-restarts", "2")
    try:
        deadline = time.monotonic() + 240
        while latest_iteration(tmp_path / "elastic") < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        workers = _children(job.pid)
        assert workers, "torchrun has no workers"
        os.kill(workers[-1], signal.SIGKILL)
        out = _output(job, timeout=300)
    finally:
        _kill_group(job)
    assert job.returncode == 0, out[-3000:]
    end = load_checkpoint(tmp_path / "elastic" / "checkpoints" / "latest.pt")
    expected = load_checkpoint(tmp_path / "reference" / "checkpoints" / "latest.pt")
    for name, value in expected["model"].items():
        assert torch.equal(end["model"][name], value), name
    assert end["world_size"] == 2
    assert tensorboard_duplicates(tmp_path / "elastic") == 0


# A worker that makes every restarted round's rendezvous race: one rank joins 3 s late, so its
# peer reads the store first. Rounds 0 and 1 end with rank 1 killed, round 2 ends normally.
LATE_JOINER = """
import os, signal, time
import torch
import torch.distributed as dist
from rl import distributed

restart, rank = int(os.environ["TORCHELASTIC_RESTART_COUNT"]), int(os.environ["RANK"])
if restart > 0 and rank == restart % 2:
    time.sleep(3)
info = distributed.init("cpu")
total = torch.tensor([rank + 1.0])
dist.all_reduce(total)
os.write(1, f"restart {restart} rank {rank} sum {total.item():g}\\n".encode())  # one write
if restart < 2:
    dist.barrier()  # both ranks' rendezvous keys are in the store now
    if rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(120)  # rank 0: torchrun stops it
distributed.teardown(info)
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds torchrun's workers through /proc")
def test_torchrun_restarted_rounds_rendezvous_afresh(tmp_path: Path) -> None:
    """Every restarted round's process group comes up at its first try, whichever rank is late.

    torchrun's agent keeps the workers' TCPStore across restarts, and ``env://`` adds no
    per-round prefix, so the dead round's Gloo addresses were still there: a rank that got to
    ``init_process_group`` first connected to its dead peer ("connectFullMesh ... Connection
    refused") or both ranks waited for each other (30 min). That made the test above fail or
    hang about half the time; here the late rank makes it near certain without
    ``rl.distributed``'s per-round store (a failed round leaves a ``restart`` line missing).
    """
    script = tmp_path / "late_joiner.py"
    script.write_text(LATE_JOINER)
    job = _launch("--max-restarts", "2", str(script))
    try:
        out = _output(job, timeout=120)
    finally:
        _kill_group(job)
    rounds = set(re.findall(r"restart \d+ rank \d+ sum \d+", out))
    expected = {f"restart {r} rank {k} sum 3" for r in range(3) for k in range(2)}
    assert job.returncode == 0 and rounds == expected, out[-3000:]


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_ctrl_c_stops_after_the_iteration_checkpointed_and_resumes_bitwise(
    algo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    module = importlib.import_module(f"agents.{algo}")
    tiny = {
        "ppo": {**TINY, "checkpoint_every": 1000},
        "a2c": {"num_envs": 4, "num_steps": 5, "log_every": 2, "checkpoint_every": 1000},
        "dqn": {"num_envs": 4, "learning_starts": 16, "log_every": 4, "checkpoint_every": 1000},
    }[algo]
    settings = {"eval_episodes": 0, "progress": False, "target_return": None, **tiny}
    cfg = module.default_config("sandbox/CartPole-v1", **settings, total_timesteps=960)
    whole = module.train(replace_config(cfg, {"run_dir": str(tmp_path / "whole")}))

    asked = iter([False, False, True])  # Ctrl-C during the third check: stop there
    monkeypatch.setattr(module, "stop_requested", lambda: next(asked, True))
    cut = tmp_path / "cut"
    stopped = module.train(replace_config(cfg, {"run_dir": str(cut)}))
    assert stopped.metrics.get("stopped_on_request") is True
    assert 0 < stopped.global_step < whole.global_step
    saved = load_checkpoint(cut / "checkpoints" / "latest.pt")
    assert saved["global_step"] == stopped.global_step  # nothing trained is lost

    monkeypatch.undo()
    resumed = module.train(cfg, resume=cut)
    assert resumed.global_step == whole.global_step
    assert "stopped_on_request" not in resumed.metrics
    end = load_checkpoint(cut / "checkpoints" / "latest.pt")
    reference = load_checkpoint(tmp_path / "whole" / "checkpoints" / "latest.pt")
    for name, value in reference["model"].items():
        assert torch.equal(end["model"][name], value), name
