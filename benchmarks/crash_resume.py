"""Crash safety, measured: ``kill -9`` a short ``rl train`` at random moments, resume, compare.

One uninterrupted reference run first. Then each trial trains the same config in a fresh run
folder with ``--resume-if-exists`` (the command an elastic restart re-runs), SIGKILLs it at a
random moment (1 to ``--max-kills`` times; anywhere from interpreter start-up to the last
iteration, so some kills land before the first checkpoint or mid-write), restarts the same
command until it finishes, and compares the final ``latest.pt`` (weights, optimizer state,
normalisation statistics) bitwise with the reference.

Reported, per the crash-safety goals:

* kills tried;
* unreadable checkpoints: every ``*.pt`` in the run folder is read with
  :func:`rl.checkpoint.load_checkpoint` right after each kill (goal 0);
* updates lost beyond the checkpoint interval: iterations finished before the kill (a progress
  file the worker appends to at each logged iteration) minus the checkpoint's iteration, less
  ``checkpoint_every`` (goal 0);
* final weights bitwise equal to the reference (goal: every trial);
* TensorBoard steps logged twice after the resumes (goal 0).

Usage::

    python benchmarks/crash_resume.py                 # 20 trials, PPO on sandbox/CartPole-v1
    python benchmarks/crash_resume.py --trials 5 --algo a2c --checkpoint-every 3 --json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROGRESS_FILE = "progress.txt"


def worker(argv: list[str]) -> int:
    """``rl train ARGV``, appending each logged global step to ``RUN_DIR/progress.txt``.

    The progress file is how the harness knows how far training got before the kill; it is
    written (and flushed) before that iteration's checkpoint decision.
    """
    from rl.cli import main
    from rl.runs import TrainingRun

    original = TrainingRun.log

    def log(self: TrainingRun, metrics: dict[str, float], global_step: int) -> None:
        original(self, metrics, global_step)
        if self.is_writer:
            with open(self.run_dir / PROGRESS_FILE, "a") as handle:
                handle.write(f"{global_step}\n")

    TrainingRun.log = log  # type: ignore[method-assign]
    return int(main(["train", *argv]) or 0)


def train_args(args: argparse.Namespace, run_dir: Path) -> list[str]:
    settings = [
        "num_envs=8",
        "num_steps=32",
        "num_snapshots=3",
        "eval_episodes=0",
        f"checkpoint_every={args.checkpoint_every}",
    ]
    if args.algo == "ppo":
        settings += ["norm_obs=true", "norm_reward=true", "update_epochs=2"]
    else:
        settings += ["norm_obs=true", "log_every=1"]
    out = [
        "--algo", args.algo, "--env", args.env, "--seed", "3", "--device", "cpu",
        "--total-timesteps", str(args.total_timesteps), "--run-dir", str(run_dir),
        "--resume-if-exists", "--no-progress",
    ]  # fmt: skip
    for item in settings:
        out += ["--set", item]
    return out


def launch(args: argparse.Namespace, run_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", *train_args(args, run_dir)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def final_state(run_dir: Path) -> dict[str, Any]:
    from rl.checkpoint import load_checkpoint

    ckpt = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    return {k: ckpt.get(k) for k in ("model", "optimizer", "obs_rms", "return_rms", "iteration")}


def bitwise_equal(a: Any, b: Any) -> bool:
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and bool(torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8)))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(bitwise_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(bitwise_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def inspect_after_kill(run_dir: Path) -> tuple[int, int, int | None, int]:
    """(checkpoint files read, unreadable ones, latest.pt's global step, last logged step)."""
    from rl.checkpoint import CheckpointError, load_checkpoint

    read, unreadable, latest_step = 0, 0, None
    for path in sorted((run_dir / "checkpoints").glob("*.pt")):
        read += 1
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError as exc:
            unreadable += 1
            print(f"  UNREADABLE {path.name}: {exc}", file=sys.stderr)
            continue
        if path.name == "latest.pt":
            latest_step = int(ckpt["global_step"])
    progress = run_dir / PROGRESS_FILE
    lines = progress.read_text().split() if progress.is_file() else []
    return read, unreadable, latest_step, int(lines[-1]) if lines else 0


def duplicate_tb_steps(run_dir: Path) -> int:
    """Steps TensorBoard shows more than once for any tag (after purge_step is applied)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    acc.Reload()
    duplicates = 0
    for tag in acc.Tags()["scalars"]:
        steps = [event.step for event in acc.Scalars(tag)]
        duplicates += len(steps) - len(set(steps))
    return duplicates


def run_to_end(args: argparse.Namespace, run_dir: Path) -> float:
    start = time.perf_counter()
    proc = launch(args, run_dir)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"training failed ({proc.returncode}):\n{err.decode()[-2000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20, help="runs killed and resumed")
    parser.add_argument("--max-kills", type=int, default=2, help="kills per trial: 1..this")
    parser.add_argument("--algo", choices=("ppo", "a2c"), default="ppo")
    parser.add_argument("--env", default="sandbox/CartPole-v1")
    parser.add_argument("--total-timesteps", type=int, default=256 * 20)
    parser.add_argument("--checkpoint-every", type=int, default=2, help="K, in iterations")
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    batch = 8 * 32
    with tempfile.TemporaryDirectory(prefix="crash_resume_") as tmp:
        reference_dir = Path(tmp) / "reference"
        duration = run_to_end(args, reference_dir)
        reference = final_state(reference_dir)
        figures = {
            "algo": args.algo,
            "env": args.env,
            "iterations": int(reference["iteration"]),
            "checkpoint_every": args.checkpoint_every,
            "trials": args.trials,
            "kills": 0,
            "kills_before_first_checkpoint": 0,
            "checkpoints_read": 0,
            "unreadable_checkpoints": 0,
            "updates_lost_max": 0,
            "updates_lost_beyond_interval": 0,
            "bitwise_matches": 0,
            "tensorboard_duplicate_steps": 0,
            "reference_seconds": round(duration, 2),
        }
        for trial in range(args.trials):
            run_dir = Path(tmp) / f"trial{trial}"
            for _ in range(rng.randint(1, args.max_kills)):
                proc = launch(args, run_dir)
                time.sleep(rng.uniform(0.0, duration))
                if proc.poll() is not None:  # finished before the kill moment
                    break
                proc.kill()  # SIGKILL: no handler, no flush, no atexit
                proc.wait()
                figures["kills"] += 1
                read, bad, ckpt_step, done_step = inspect_after_kill(run_dir)
                figures["checkpoints_read"] += read
                figures["unreadable_checkpoints"] += bad
                if ckpt_step is None:
                    figures["kills_before_first_checkpoint"] += 1
                    ckpt_step = 0
                lost = max(0, done_step - ckpt_step) // batch
                figures["updates_lost_max"] = max(figures["updates_lost_max"], lost)
                figures["updates_lost_beyond_interval"] += max(0, lost - args.checkpoint_every)
            run_to_end(args, run_dir)
            match = bitwise_equal(final_state(run_dir), reference)
            figures["bitwise_matches"] += int(match)
            figures["tensorboard_duplicate_steps"] += duplicate_tb_steps(run_dir)
            if not args.json:
                print(f"trial {trial}: {'match' if match else 'MISMATCH'}", flush=True)
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:32s} {value}")
    ok = (
        figures["unreadable_checkpoints"] == 0
        and figures["updates_lost_beyond_interval"] == 0
        and figures["bitwise_matches"] == args.trials
        and figures["tensorboard_duplicate_steps"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        sys.path.insert(0, str(ROOT))
        raise SystemExit(worker(sys.argv[2:]))
    raise SystemExit(main())
