"""End-to-end PPO throughput: env steps per second of rollout + update, at large N.

Builds agents.ppo's pieces once (env, ActorCritic, fused Adam, rollout storage) and times whole
iterations of its phase functions — :func:`agents.ppo.collect_rollout`,
:func:`agents.ppo.compute_advantages`, :func:`agents.ppo.update` — after warm-up iterations,
so a compiled env step (``--compile``) is measured warm. SPS = ``N * T`` env steps per
iteration / seconds per iteration; the best of ``--repeats`` timed blocks is reported (the CPU
machine is shared). The env is sandbox/CartPole-v1 unless ``--env-id`` says otherwise.

Usage::

    python benchmarks/ppo_sps.py                                  # CPU, N = 1024 ... 65536
    python benchmarks/ppo_sps.py --device cuda --num-envs 1024,4096,16384,65536 --json
    python benchmarks/ppo_sps.py --quick                          # N = 1024, 4096; 1 block
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from agents import ppo, ppo_graphs
from agents.base import space_spec
from rl.device import configure_threads, resolve_device
from rl.runs import EpisodeTracker
from rl.vector import make_vector_env


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(
    env_id: str,
    num_envs: int,
    num_steps: int,
    device: str,
    *,
    compile_env: bool,
    cuda_graphs: bool = False,
    iterations: int,
    repeats: int,
    warmup: int,
    update_epochs: int,
    num_minibatches: int,
) -> dict[str, Any]:
    """One row: best-of-``repeats`` timings of ``iterations`` whole PPO iterations."""
    dev = resolve_device(device)
    threads = configure_threads(dev)
    cfg = ppo.default_config(
        env_id,
        device=str(dev),
        num_envs=num_envs,
        num_steps=num_steps,
        update_epochs=update_epochs,
        num_minibatches=num_minibatches,
        write_run=False,
        progress=False,
        eval_episodes=0,
    )
    torch.manual_seed(0)
    kwargs = {"compile": True} if compile_env else {}
    env = make_vector_env(env_id, num_envs, dev, env_kwargs=kwargs)
    try:
        spaces = space_spec(env.single_observation_space, env.single_action_space)
        agent = ppo.ActorCritic(spaces, cfg.hidden_sizes, cfg.activation).to(dev)
        optimizer = torch.optim.Adam(agent.parameters(), lr=cfg.learning_rate, eps=1e-5, fused=True)
        storage = ppo.make_rollout(cfg, spaces, dev)
        tracker = EpisodeTracker(dev)
        next_obs, _ = env.reset(seed=0)
        graphs = None
        if cuda_graphs:
            reason = ppo_graphs.unsupported(cfg, agent, env, dev)
            if reason is not None:
                raise SystemExit(f"--cuda-graphs: {reason}")

            def rollout(obs: torch.Tensor) -> torch.Tensor:
                return ppo.collect_rollout(env, agent, storage, obs, tracker)

            def learn() -> torch.Tensor:
                return ppo.update(agent, optimizer, ppo.compute_advantages(storage, cfg), cfg)

            ppo_graphs.capturable_adam(optimizer)
            graphs = ppo_graphs.IterationGraphs(env, rollout, learn)

        def iteration() -> tuple[float, float]:
            nonlocal next_obs
            start = time.perf_counter()
            if graphs is not None:  # rollout and update replayed back to back: no split
                next_obs, _ = graphs.iteration(next_obs)
                tracker.take()
                _sync(dev)
                return 0.0, time.perf_counter() - start
            next_obs = ppo.collect_rollout(env, agent, storage, next_obs, tracker)
            _sync(dev)  # only to split rollout from update time; training has no sync here
            mid = time.perf_counter()
            batch = ppo.compute_advantages(storage, cfg)
            ppo.update(agent, optimizer, batch, cfg)
            tracker.take()
            _sync(dev)
            return mid - start, time.perf_counter() - mid

        cold = time.perf_counter()
        for _ in range(warmup):
            iteration()
        warmup_s = time.perf_counter() - cold
        best = None
        for _ in range(repeats):
            parts = [iteration() for _ in range(iterations)]
            rollout = sum(p[0] for p in parts) / iterations
            update = sum(p[1] for p in parts) / iterations
            if best is None or rollout + update < sum(best):
                best = (rollout, update)
    finally:
        env.close()
    rollout, update = best
    steps = num_envs * num_steps
    return {
        "env_id": env_id,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": threads,
        "compile": compile_env,
        "cuda_graphs": cuda_graphs,
        "num_envs": num_envs,
        "num_steps": num_steps,
        "update_epochs": update_epochs,
        "num_minibatches": num_minibatches,
        # Replayed graphs are timed as a whole: the iteration's time sits in update_s.
        "rollout_s": rollout if graphs is None else math.nan,
        "update_s": update if graphs is None else math.nan,
        "iteration_s": rollout + update,
        "sps": steps / (rollout + update),
        "rollout_sps": steps / rollout if graphs is None else math.nan,
        "warmup_s": warmup_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env-id", default="sandbox/CartPole-v1")
    parser.add_argument("--num-envs", default="1024,4096,16384,65536", help="comma list of N")
    parser.add_argument("--num-steps", type=int, default=16, help="T per iteration")
    parser.add_argument("--update-epochs", type=int, default=4)
    parser.add_argument("--num-minibatches", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="compile the env step")
    parser.add_argument(
        "--cuda-graphs", action="store_true",
        help="replay each iteration from CUDA graphs, as training does (agents.ppo_graphs)",
    )  # fmt: skip
    parser.add_argument("--iterations", type=int, default=3, help="iterations per timed block")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks; best is kept")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    parser.add_argument("--quick", action="store_true", help="N = 1024, 4096; one block")
    parser.add_argument("--json", action="store_true", help="one JSON row per line")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.num_envs.split(",")]
    if args.quick:
        sizes, args.repeats, args.iterations = [n for n in sizes if n <= 4096] or sizes[:1], 1, 2
    rows = []
    for n in sizes:
        row = measure(
            args.env_id, n, args.num_steps, args.device,
            compile_env=args.compile, cuda_graphs=args.cuda_graphs, iterations=args.iterations, repeats=args.repeats,
            warmup=args.warmup, update_epochs=args.update_epochs,
            num_minibatches=args.num_minibatches,
        )  # fmt: skip
        rows.append(row)
        if args.json:
            print(json.dumps(row), flush=True)
    if not args.json:
        print(f"PPO end-to-end on {args.env_id}, {rows[0]['device']}, T={args.num_steps}, "
              f"{args.update_epochs} epochs x {args.num_minibatches} minibatches, "
              f"compile={args.compile}, cuda_graphs={args.cuda_graphs}, best of {args.repeats}")  # fmt: skip
        print(f"{'N':>7} | {'iter s':>8} | {'rollout s':>9} | {'update s':>8} | "
              f"{'SPS':>10} | {'rollout SPS':>11}")  # fmt: skip
        for r in rows:
            print(f"{r['num_envs']:>7} | {r['iteration_s']:8.3f} | {r['rollout_s']:9.3f} | "
                  f"{r['update_s']:8.3f} | {r['sps'] / 1e6:9.2f}M | "
                  f"{r['rollout_sps'] / 1e6:10.2f}M")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
