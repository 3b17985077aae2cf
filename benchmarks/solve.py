"""Time to solve, side by side: the sandbox's agents (and Stable-Baselines3 when installed).

Each benchmark trains once per seed and is judged the same way: the trained policy, acting
deterministically, over 100 episodes of the *evaluation* env (Gymnasium's own where one exists,
e.g. PPO trained on sandbox/CartPole-v1 is judged on Gymnasium's CartPole-v1).

* ``ppo-cartpole`` (1 CPU thread) and ``ppo-cartpole-2threads``: mean >= 475 on CartPole-v1.
* ``a2c-cartpole``, ``dqn-cartpole``: the same, when agents.a2c / agents.dqn import.
* ``ppo-pendulum``: mean >= -250 on Gymnasium's Pendulum-v1.
* ``ppo-dog``: DogTraining's solved bar (success rate and mean return) within 60 s.
* ``ppo-acrobot``: Gymnasium's Acrobot-v1 through the numpy adapter, against a random policy
  (solved at its registered threshold, -100).
* ``sb3-ppo-cartpole``: Stable-Baselines3 PPO with rl-zoo3's tuned CartPole-v1 hyperparameters,
  stopped by the same rule as ours (the training return over the last >= 5 episodes reaches
  475, then 100 deterministic episodes do at 95 % confidence, the same episodes at every check;
  the check's time counts for both), same judgement.

Wall-clock (and the process's CPU time, steadier on a shared machine) is the ``train`` call only: Python/torch imports and a warm-up run come first (the
first torch optimizer imports torch._dynamo, seconds on a small CPU), evaluation comes after.
Each benchmark runs in a fresh subprocess, so peak memory (max RSS; CUDA max allocated) is its
own. Usage::

    python benchmarks/solve.py                      # everything, CPU (and CUDA when present)
    python benchmarks/solve.py --only ppo-cartpole ppo-dog --seeds 5 --json
    python benchmarks/solve.py --only ppo-cartpole --device cuda --cold   # no warm-up
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # runnable from a clone without installing (rl.config below)
EPISODES = 100


@dataclass(frozen=True)
class Bench:
    """One row of the table: train ``algo`` on ``train_env``, judge on ``eval_env``."""

    algo: str
    train_env: str
    eval_env: str
    threshold: float
    """Solved when the deterministic mean return over 100 episodes reaches this."""
    overrides: dict[str, Any] = field(default_factory=dict)
    success_rate: float | None = None
    """Also required: this success rate (envs that report one)."""
    time_limit: float | None = None
    """Also required: training within this many seconds."""
    random_baseline: bool = False
    """Also evaluate a uniformly random policy, for comparison."""


def _dog_thresholds() -> tuple[float, float]:
    from envs import dog_training

    return dog_training.SOLVED_MEAN_RETURN, dog_training.SOLVED_SUCCESS_RATE


BENCHMARKS: dict[str, Bench | None] = {
    "ppo-cartpole": Bench("ppo", "sandbox/CartPole-v1", "CartPole-v1", 475.0, {"num_threads": 1}),
    "ppo-cartpole-2threads": Bench(
        "ppo", "sandbox/CartPole-v1", "CartPole-v1", 475.0, {"num_threads": 2}
    ),
    "a2c-cartpole": Bench("a2c", "sandbox/CartPole-v1", "CartPole-v1", 475.0),
    "dqn-cartpole": Bench("dqn", "sandbox/CartPole-v1", "CartPole-v1", 475.0),
    "ppo-pendulum": Bench("ppo", "sandbox/Pendulum-v1", "Pendulum-v1", -250.0),
    "ppo-dog": None,  # built in run_child: its bar comes from envs.dog_training
    "ppo-acrobot": Bench("ppo", "Acrobot-v1", "Acrobot-v1", -100.0, random_baseline=True),
    "sb3-ppo-cartpole": None,  # Stable-Baselines3: see run_sb3
}


def peak_memory_mb(device: str) -> dict[str, float]:
    """Max RSS of this process (and CUDA's max allocated), in MiB."""
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        import torch

        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def random_policy_return(env_id: str, seed: int) -> float:
    """Mean return of uniformly random actions over 100 episodes."""
    import gymnasium
    import torch

    from rl.evaluation import evaluate

    action_space = gymnasium.spec(env_id).make().action_space
    generator = torch.Generator().manual_seed(seed)

    def act(obs: torch.Tensor) -> torch.Tensor:
        return torch.randint(int(action_space.n), (obs.shape[0],), generator=generator)

    return evaluate(act, env_id, episodes=EPISODES, seed=seed).mean_return


def run_child(
    name: str,
    device: str,
    seeds: list[int],
    overrides: dict[str, str] | None = None,
    cold: bool = False,
) -> dict[str, Any]:
    """Run one benchmark in this (fresh) process and return its row; ``cold``: without the
    warm-up, so the first ``train`` pays for CUDA's start, lazy imports and first captures."""
    import torch

    import envs  # noqa: F401  (registers sandbox/ ids)
    from rl.config import replace_config
    from rl.evaluation import evaluate

    bench = BENCHMARKS[name]
    if name == "ppo-dog":
        mean_return, success_rate = _dog_thresholds()
        bench = Bench(
            "ppo", "sandbox/DogTraining-v0", "sandbox/DogTraining-v0", mean_return,
            success_rate=success_rate, time_limit=60.0,
        )  # fmt: skip
    if bench is None:
        return run_sb3(device, seeds)
    try:
        module = importlib.import_module(f"agents.{bench.algo}")
    except ImportError as exc:
        return {"name": name, "device": device, "skipped": f"agents.{bench.algo}: {exc}"}
    common = {"write_run": False, "progress": False, "eval_episodes": 0, "device": device}
    extra = overrides or {}
    overrides = {**bench.overrides, **extra}
    # Warm-up: imports (torch._dynamo via the optimizer), allocator and kernel caches, and on
    # CUDA a first capture of PPO's graphs (3 iterations).
    base = module.default_config(bench.train_env, **common, **overrides)
    if not cold:
        warm_steps = 3 * getattr(base, "batch_size", 1)
        if hasattr(base, "learning_starts"):  # DQN: three training rounds once the buffer fills
            warm_steps = base.learning_starts + 3 * max(base.train_frequency, base.num_envs)
        module.train(replace_config(base, {"total_timesteps": warm_steps, "target_return": None}))
    # The judge runs on the training's thread count too (train() gives the caller its own back),
    # and that is the count the row reports.
    from rl.device import resolve_device, resolve_threads

    torch.set_num_threads(resolve_threads(resolve_device(device), base.num_threads))
    per_seed = []
    for seed in seeds:
        cfg = module.default_config(bench.train_env, seed=seed, **common, **overrides)
        start, cpu_start = time.perf_counter(), time.process_time()
        result = module.train(cfg)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        evaluation = evaluate(
            result.policy.act, bench.eval_env, episodes=EPISODES, device=device, seed=1000 + seed
        )
        solved = evaluation.mean_return >= bench.threshold
        if bench.success_rate is not None:
            solved = solved and (evaluation.success_rate or 0.0) >= bench.success_rate
        if bench.time_limit is not None:
            solved = solved and wall <= bench.time_limit
        per_seed.append(
            {
                "seed": seed,
                "wall_s": wall,
                "cpu_s": cpu,
                "steps": result.global_step,
                "sps": result.global_step / wall,
                "mean_return": evaluation.mean_return,
                "success_rate": evaluation.success_rate,
                "solved": solved,
            }
        )
    row = summarize(name, device, criterion_of(bench), per_seed, torch.get_num_threads())
    if cold:
        row["cold"] = True
    if extra:
        row["overrides"] = extra
    if bench.random_baseline:
        row["random_return"] = random_policy_return(bench.eval_env, 1000)
    return row | peak_memory_mb(device)


def criterion_of(bench: Bench) -> str:
    """How ``bench`` is judged, for the table."""
    criterion = f"mean>={bench.threshold:g} on {bench.eval_env}"
    if bench.success_rate is not None:
        criterion += f", success>={bench.success_rate:g}"
    if bench.time_limit is not None:
        criterion += f", <={bench.time_limit:g}s"
    return criterion


def summarize(
    name: str, device: str, criterion: str, per_seed: list[dict[str, Any]], threads: int | None
) -> dict[str, Any]:
    return {
        "name": name,
        "device": device,
        "threads": threads if device == "cpu" else None,
        "criterion": criterion,
        "solved": sum(s["solved"] for s in per_seed),
        "seeds": len(per_seed),
        "median_wall_s": statistics.median(s["wall_s"] for s in per_seed),
        "median_cpu_s": statistics.median(s["cpu_s"] for s in per_seed),
        "median_steps": statistics.median(s["steps"] for s in per_seed),
        "median_sps": statistics.median(s["sps"] for s in per_seed),
        "median_return": statistics.median(s["mean_return"] for s in per_seed),
        "per_seed": per_seed,
    }


def run_sb3(device: str, seeds: list[int]) -> dict[str, Any]:
    """Stable-Baselines3 PPO, rl-zoo3's CartPole-v1 hyperparameters, our stopping rule."""
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.callbacks import BaseCallback
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.logger import Logger
    except ImportError as exc:
        return {"name": "sb3-ppo-cartpole", "device": device, "skipped": f"{exc}"}
    import torch

    from agents import ppo
    from agents.base import target_reached
    from rl.evaluation import STOP_CHECK_SEED_OFFSET, check_return, evaluate

    torch.set_num_threads(1)  # as ours: small MLPs are fastest on one thread
    ours = ppo.default_config("sandbox/CartPole-v1")

    class StopAtTarget(BaseCallback):
        """Our PPO's stop (agents.ppo.Config.target_return), after each rollout: the reward per
        finished episode over the last rollouts holding >= ``target_window`` episodes reaches
        ``target_return``, then ``target_check_episodes`` deterministic episodes on a fresh
        CartPole-v1 do at ``target_confidence``, the same episodes at every check of a run
        (agents.base.target_reached decides, as for ours)."""

        def _on_training_start(self) -> None:
            self.recent: list[list[float]] = []
            self.episodes, self.rewards, self.reached = 0, 0.0, False

        def _on_step(self) -> bool:
            self.rewards += float(self.locals["rewards"].sum())
            self.episodes += int(self.locals["dones"].sum())
            return not self.reached

        def _on_rollout_end(self) -> None:
            self.recent.append([self.episodes, self.rewards])
            self.episodes, self.rewards = 0, 0.0
            window = ours.target_window
            while len(self.recent) > 1 and sum(c for c, _ in self.recent[1:]) >= window:
                self.recent.pop(0)
            count = sum(c for c, _ in self.recent)

            def act(obs: torch.Tensor) -> torch.Tensor:
                actions, _ = self.model.predict(obs.cpu().numpy(), deterministic=True)
                return torch.as_tensor(actions)

            def check() -> Any:  # the same episodes at every check, as ours
                return check_return(
                    act, "CartPole-v1", episodes=ours.target_check_episodes,
                    seed=self.model.seed + STOP_CHECK_SEED_OFFSET,
                )  # fmt: skip

            reached = target_reached(
                ours.target_return,
                sum(r for _, r in self.recent) / count if count >= window else None,
                ours.target_check_episodes,
                check,
                ours.target_confidence,
            )
            self.reached = reached is not None  # stops at the next step's _on_step

    def linear(start: float):  # rl-zoo's lin_<value>: decays to 0 over training
        return lambda progress_remaining: progress_remaining * start

    def train(seed: int, steps: int) -> Any:
        env = make_vec_env("CartPole-v1", n_envs=8, seed=seed)
        model = PPO(
            "MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
            n_epochs=20, ent_coef=0.0, learning_rate=linear(0.001), clip_range=linear(0.2),
            seed=seed, device=device, verbose=0,
        )  # fmt: skip
        model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's own makes /tmp/SB3-*
        model.learn(steps, callback=StopAtTarget())
        return model

    train(0, 512)  # warm-up
    per_seed = []
    for seed in seeds:
        start, cpu_start = time.perf_counter(), time.process_time()
        model = train(seed, 100_000)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start

        def act(obs: torch.Tensor, model: Any = model) -> torch.Tensor:
            actions, _ = model.predict(obs.cpu().numpy(), deterministic=True)
            return torch.as_tensor(actions)

        evaluation = evaluate(act, "CartPole-v1", episodes=EPISODES, seed=1000 + seed)
        steps = int(model.num_timesteps)
        per_seed.append(
            {
                "seed": seed,
                "wall_s": wall,
                "cpu_s": cpu,
                "steps": steps,
                "sps": steps / wall,
                "mean_return": evaluation.mean_return,
                "success_rate": None,
                "solved": evaluation.mean_return >= 475.0,
            }
        )
    criterion = criterion_of(Bench("sb3-ppo", "CartPole-v1", "CartPole-v1", 475.0))
    row = summarize("sb3-ppo-cartpole", device, criterion, per_seed, torch.get_num_threads())
    return row | peak_memory_mb(device)


def run_in_subprocess(
    name: str,
    device: str,
    seeds: list[int],
    timeout: float,
    overrides: list[str] | None = None,
    cold: bool = False,
) -> dict[str, Any]:
    if cold and len(seeds) > 1:  # each seed the first run of its own process
        rows = [run_in_subprocess(name, device, [s], timeout, overrides, cold) for s in seeds]
        skipped = next((r for r in rows if "skipped" in r), None)
        if skipped is not None:
            return skipped
        first, per_seed = rows[0], [r["per_seed"][0] for r in rows]
        memory = {k: max(r[k] for r in rows) for k in ("peak_rss_mb", "cuda_peak_mb") if k in first}
        summary = summarize(name, device, first["criterion"], per_seed, first["threads"])
        return first | summary | memory
    command = [sys.executable, __file__, "--child", name, "--device", device]
    if cold:
        command.append("--cold")
    command += ["--seed-list", ",".join(map(str, seeds))]
    command += [f"--set={item}" for item in overrides or []]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
        )
    except subprocess.TimeoutExpired:
        return {"name": name, "device": device, "skipped": f"timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stderr)  # the child's traceback, for the log
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"name": name, "device": device, "skipped": f"failed: {tail}"}
    return json.loads(lines[-1])


def print_table(rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Time to solve ({EPISODES} deterministic evaluation episodes per seed)")
    columns = "benchmark|device|solved|median s|per-seed s|median CPU s|median steps|SPS"
    for column in (*columns.split("|"), "median return", "peak MiB", "criterion"):
        table.add_column(column)
    for row in rows:
        if "skipped" in row:
            table.add_row(row["name"], row["device"], *["-"] * 8, f"skipped: {row['skipped']}")
            continue
        device = row["device"] + (f" ({row['threads']} thr)" if row.get("threads") else "")
        device += ", cold" if row.get("cold") else ""
        per_seed = " ".join(f"{s['wall_s']:.1f}" for s in row["per_seed"])
        memory = f"{row['peak_rss_mb']:.0f}"
        if "cuda_peak_mb" in row:
            memory += f" (+{row['cuda_peak_mb']:.0f} GPU)"
        ret = f"{row['median_return']:.1f}"
        if "random_return" in row:
            ret += f" (random {row['random_return']:.1f})"
        table.add_row(
            row["name"],
            device,
            f"{row['solved']}/{row['seeds']}",
            f"{row['median_wall_s']:.2f}",
            per_seed,
            f"{row['median_cpu_s']:.2f}",
            f"{row['median_steps']:,.0f}",
            f"{row['median_sps']:,.0f}",
            ret,
            memory,
            row["criterion"],
        )
    console = Console()
    if not console.is_terminal:  # piped to a file: don't squeeze the table into 80 columns
        console = Console(width=200)
    console.print(table)
    for line in speedups(rows):
        console.print(line)


def speedups(rows: list[dict[str, Any]]) -> list[str]:
    """Ours against Stable-Baselines3 on CartPole, per device measured in this run."""
    found = {(r["name"], r["device"]): r for r in rows if "skipped" not in r}
    lines = []
    for (name, device), sb3 in found.items():
        ours = found.get(("ppo-cartpole", device))
        if name == "sb3-ppo-cartpole" and ours is not None:
            ratio = sb3["median_wall_s"] / ours["median_wall_s"]
            lines.append(
                f"PPO CartPole on {device}: median {ours['median_wall_s']:.2f} s against "
                f"Stable-Baselines3's {sb3['median_wall_s']:.2f} s: {ratio:.1f}x faster "
                f"(solved {ours['solved']}/{ours['seeds']} vs {sb3['solved']}/{sb3['seeds']})"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto (CPU + CUDA)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 1..N per benchmark")
    parser.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(BENCHMARKS))
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the rows as one JSON list (and each on stderr as it finishes)",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field of our agents (repeatable), e.g. cuda_graphs=false",
    )  # fmt: skip
    parser.add_argument(
        "--cold", action="store_true",
        help="no warm-up: each seed is the first train call of a fresh process (CUDA start-up, "
        "lazy imports and first graph captures included)",
    )  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--seed-list", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from rl.config import parse_overrides

    if args.child:
        seeds = [int(s) for s in args.seed_list.split(",")]
        overrides = parse_overrides(args.set)
        print(json.dumps(run_child(args.child, args.device, seeds, overrides, cold=args.cold)))
        return 0
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    try:
        parse_overrides(args.set)
    except ValueError as exc:
        parser.error(str(exc))
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    if args.device != "auto":
        devices = [args.device]
    rows = []
    for name in args.only or list(BENCHMARKS):
        for device in devices:
            if name == "ppo-cartpole-2threads" and device != "cpu":
                continue
            row = run_in_subprocess(
                name, device, list(range(1, args.seeds + 1)), args.timeout, args.set, args.cold
            )
            rows.append(row)
            if args.json:  # each row as it finishes (stderr): a killed run keeps them
                print(json.dumps(row), file=sys.stderr, flush=True)
            else:
                status = row.get("skipped") or (
                    f"{row['solved']}/{row['seeds']} solved, median {row['median_wall_s']:.2f} s"
                )
                print(f"{name} [{device}]: {status}", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
