"""K-seed PPO on CartPole: wall-clock for 1, 8 and 64 seeds trained together in one process.

Each K trains seeds ``0 .. K-1`` with agents.multiseed (PPO's CartPole preset per agent: N = 32
rows each, T = 32, up to 100k steps; an agent stops once its training window reaches 475 and
100 deterministic episodes of a fresh env confirm it; the run ends when all have). Wall-clock
is the ``train`` call without the final evaluation, after a three-iteration warm-up; the best
of ``--repeats`` runs is kept. ``checks`` / ``check s``: how many of those confirmations ran
(at most one per iteration, of every agent whose window passed, batched by
``MultiSeedConfig.check_gap``) and their share of the wall-clock. Each agent is then judged by
100 deterministic episodes of sandbox/CartPole-v1 (solved: mean >= 475). The goal (issue 6):
64 seeds in less than 5x the time of one seed, on one GPU. "x 1 seed" divides by the median of
the K = 1 rows: ``--one-seed-runs R`` runs one seed R times (seeds 0 .. R-1), since one seed's
time to solve varies about 3x from seed to seed.

Usage::

    python benchmarks/multiseed.py                          # CPU, K = 1, 8, 64
    python benchmarks/multiseed.py --device cuda --seeds 1,8,64 --json
    python benchmarks/multiseed.py --quick                  # K = 1, 8; 20 eval episodes
    python benchmarks/multiseed.py --seeds 1,64 --one-seed-runs 5 --check-gap 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from agents import multiseed as ms
from agents import ppo
from rl.config import replace_config
from rl.device import resolve_device, resolve_threads

ENV_ID = "sandbox/CartPole-v1"
SOLVED = 475.0


def run(
    num_seeds: int,
    device: str,
    repeats: int,
    episodes: int,
    iterations: int | None = None,
    cuda_graphs: bool = True,
    check_gap: int | None = None,
    first_seed: int = 0,
) -> dict[str, Any]:
    """Train seeds ``first_seed .. first_seed + num_seeds - 1`` together ``repeats`` times;
    the fastest run's row.

    ``iterations``: train exactly that many iterations, no target stop and no evaluation (the
    cost per iteration, where a whole run would take too long).
    """
    base = ppo.default_config(
        ENV_ID, device=device, write_run=False, progress=False, cuda_graphs=cuda_graphs
    )
    if iterations is not None:
        steps = iterations * base.batch_size
        base = replace_config(base, {"total_timesteps": steps, "target_return": None})
        episodes = 0
    cfg = ms.MultiSeedConfig(
        ppo=base, seeds=tuple(range(first_seed, first_seed + num_seeds)), write_runs=False,
        eval_episodes=episodes, solved_return=SOLVED, progress=False, check_gap=check_gap,
    )  # fmt: skip
    # The thread count training uses (train() gives the caller its own back), for the report.
    torch.set_num_threads(resolve_threads(resolve_device(device), base.num_threads))
    # Warm-up: kernel and allocator caches, lazy imports, a first capture of the CUDA graphs
    # (three iterations, no evaluation).
    warm = replace_config(base, {"total_timesteps": 3 * base.batch_size, "target_return": None})
    ms.train(dataclasses.replace(cfg, ppo=warm, eval_episodes=0))
    best = None
    for _ in range(repeats):
        result = ms.train(cfg)
        if best is None or result.summary["train_seconds"] < best.summary["train_seconds"]:
            best = result
    s = best.summary
    steps = sum(row["global_step"] for row in best.per_seed)
    return {
        "mode": "fixed-iterations" if iterations is not None else "to-solve",
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "threads": torch.get_num_threads(),
        "seeds": num_seeds,
        "first_seed": first_seed,
        "wall_s": s["train_seconds"],
        "iterations": s["iterations"],
        "env_steps": steps,
        "sps": steps / s["train_seconds"],
        "iteration_s": s["train_seconds"] / s["iterations"],
        "cuda_graphs": cuda_graphs,
        "graphed_iterations": s["graphed_iterations"],
        "reached_target": s["reached_target"],
        "checks": s["target_checks"],
        "check_gap": s["target_check_gap"],
        "checked_agents": s["target_checked_agents"],
        "check_s": s["target_check_seconds"],
        "solve_rate": s.get("solve_rate"),
        "eval_mean_return": s.get("eval_mean_return"),
        "eval_std_return": s.get("eval_std_return"),
        "eval_min_return": s.get("eval_min_return"),
        "repeats": repeats,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="1,8,64", help="comma list of seed counts K")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1, help="runs per K; the fastest is kept")
    parser.add_argument("--episodes", type=int, default=100, help="eval episodes per seed")
    parser.add_argument("--quick", action="store_true", help="K = 1, 8; 20 eval episodes")
    parser.add_argument(
        "--iterations", type=int, help="train exactly I iterations per K (cost per iteration)"
    )
    parser.add_argument(
        "--no-cuda-graphs", action="store_true", help="step every iteration eagerly on CUDA"
    )
    parser.add_argument(
        "--check-gap", type=int, help="MultiSeedConfig.check_gap (default: the device's own)"
    )
    parser.add_argument(
        "--one-seed-runs", type=int, default=1, metavar="R",
        help="K = 1 runs R times, seeds 0 .. R-1: 'x 1 seed' divides by their median",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="one JSON row per line")
    args = parser.parse_args(argv)
    counts = [int(k) for k in args.seeds.split(",")]
    if args.quick:
        counts, args.episodes = [k for k in counts if k <= 8] or counts[:1], 20
    if args.one_seed_runs < 1:
        parser.error(f"--one-seed-runs must be >= 1, got {args.one_seed_runs}")
    if args.one_seed_runs > 1 and 1 not in counts:
        parser.error("--one-seed-runs needs K = 1 in --seeds (e.g. --seeds 64,1)")
    if args.check_gap is not None and args.check_gap < 1:
        parser.error(f"--check-gap must be >= 1, got {args.check_gap}")
    rows = []
    for k in counts:
        for first in range(args.one_seed_runs if k == 1 else 1):
            row = run(
                k, args.device, args.repeats, args.episodes, args.iterations,
                cuda_graphs=not args.no_cuda_graphs, check_gap=args.check_gap, first_seed=first,
            )  # fmt: skip
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    ones = [r["wall_s"] for r in rows if r["seeds"] == 1]
    if ones:
        one = statistics.median(ones)
        for r in rows:
            r["time_vs_1_seed"] = r["wall_s"] / one
    if args.json:
        if ones:
            ratios = {str(r["seeds"]): r["time_vs_1_seed"] for r in rows if r["seeds"] > 1}
            print(json.dumps({"one_seed_s": ones, "time_vs_1_seed": ratios}))
        return 0
    print(f"K-seed PPO on {ENV_ID}, {rows[0]['device']}, best of {args.repeats}; "
          "x 1 seed: against the median of the K = 1 rows")  # fmt: skip
    print(f"{'K':>4} | {'seeds from':>10} | {'wall s':>7} | {'x 1 seed':>8} | {'iters':>5} | {'s/iter':>7} | "
          f"{'SPS':>9} | {'checks':>6} | {'check s':>7} | {'solved':>7} | "
          "eval return mean ± std (min)")  # fmt: skip
    for r in rows:
        ratio = f"{r['time_vs_1_seed']:.2f}" if "time_vs_1_seed" in r else "-"
        solved = "-" if r["solve_rate"] is None else f"{r['solve_rate']:.0%}"
        evals = (
            "-"
            if r["eval_mean_return"] is None
            else (
                f"{r['eval_mean_return']:.1f} ± {r['eval_std_return']:.1f} ({r['eval_min_return']:.1f})"
            )
        )
        print(f"{r['seeds']:>4} | {r['first_seed']:>10} | {r['wall_s']:7.1f} | {ratio:>8} | {r['iterations']:>5} | "
              f"{r['iteration_s']:7.3f} | {r['sps'] / 1e3:8.1f}k | {r['checks']:>6} | "
              f"{r['check_s']:7.2f} | {solved:>7} | {evals}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
