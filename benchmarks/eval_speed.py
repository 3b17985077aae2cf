"""How long ``rl.evaluation.evaluate`` takes for 100 CartPole episodes, with and without CUDA
graphs: the early-stop check that PPO, A2C and DQN run before they stop at a target return.

The policy is a hand-written balancer (push towards where the pole falls), so the episodes
run long, as a solved policy's do (up to the 500-step limit). Each row is the best of
``--repeats`` calls, after one untimed call. ``kept`` rows call one
:class:`rl.evaluation.Evaluator` again and again, as PPO's and multi-seed's stop checks do: on
CUDA with graphs, every timed call only replays the graph its first call captured.

Usage::

    python benchmarks/eval_speed.py                      # CPU
    python benchmarks/eval_speed.py --device cuda --json # CUDA, graphs on and off
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

import envs  # noqa: F401  (registers the sandbox/ ids)
from rl.device import configure_threads, resolve_device
from rl.evaluation import EvalResult, Evaluator, evaluate


def balance(obs: torch.Tensor) -> torch.Tensor:
    """Push right when the pole leans or swings right (angle + 0.5 * angular velocity)."""
    return (obs[:, 2] + 0.5 * obs[:, 3] > 0).long()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON row per line")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    configure_threads(device)
    cuda = device.type == "cuda"
    modes = (
        [(True, False), (True, True), (False, False)] if cuda else [(False, False), (False, True)]
    )
    for graphs, kept in modes:
        evaluator = Evaluator(
            balance, "sandbox/CartPole-v1", episodes=args.episodes, device=device,
            cuda_graphs=graphs,
        )  # fmt: skip

        def run(
            seed: int, graphs: bool = graphs, kept: bool = kept, evaluator: Evaluator = evaluator
        ) -> EvalResult:
            if kept:
                return evaluator(seed)
            return evaluate(
                balance, "sandbox/CartPole-v1", episodes=args.episodes, device=device,
                seed=seed, cuda_graphs=graphs,
            )  # fmt: skip

        run(0)
        best, result = float("inf"), None
        for seed in range(1, args.repeats + 1):
            start = time.perf_counter()
            result = run(seed)
            best = min(best, time.perf_counter() - start)
        evaluator.close()
        row = {
            "device": str(device),
            "cuda_graphs": graphs,
            "kept": kept,
            "episodes": args.episodes,
            "seconds": best,
            "mean_length": result.mean_length,
            "max_length": max(result.lengths),
        }
        if args.json:
            print(json.dumps(row), flush=True)
        else:
            print(
                f"{row['device']} cuda_graphs={graphs} kept={kept}: {best * 1e3:.1f} ms for "
                f"{args.episodes} episodes (mean length {row['mean_length']:.0f})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
