"""Env steps per second: the sandbox's torch vector envs beside Gymnasium's numpy ones.

Rows (``impl``):

* ``sandbox`` — ``gymnasium.make_vec("sandbox/<Env>", vectorization_mode="vector_entry_point")``:
  torch tensors on ``--device``, SAME_STEP autoreset, action validation on (the default);
* ``gymnasium-vector`` — Gymnasium's numpy ``CartPoleVectorEnv`` (float64, NEXT_STEP autoreset);
* ``gymnasium-sync`` — ``SyncVectorEnv`` of N ``CartPoleEnv``: a Python loop over envs, so it is
  run only up to ``--sync-max-envs``.

Actions are drawn before timing (on the device, for the sandbox) and cycled. Each figure is the
best of ``--repeats`` timings of ``--steps`` vector steps (env steps/s = N x steps / seconds),
which filters out other processes on a shared machine; a row that would exceed
``--max-seconds`` times fewer steps. CUDA timings synchronise around the loop only. The last
column compares each row with Gymnasium's vector CartPole at the same N.

From the repository root (or anywhere once ``pip install -e .`` has run)::

    python -m benchmarks.env_throughput                       # CPU, N = 64 ... 65536
    python -m benchmarks.env_throughput --clock cpu --json    # rows as JSON, CPU time
    python -m benchmarks.env_throughput --device cuda --num-envs 4096,65536,1048576
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv as GymCartPoleVectorEnv

import envs
from rl.device import resolve_device

DEFAULT_NUM_ENVS = (64, 256, 1024, 4096, 16384, 65536)
ACTION_POOL = 32  # distinct action batches, cycled: enough to avoid a fixed pattern


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def time_loop(
    step: Callable[[Any], Any],
    actions: list[Any],
    steps: int,
    sync: Callable[[], None],
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds for ``steps`` calls of ``step``, cycling through ``actions``."""
    sync()
    start = clock()
    for i in range(steps):
        step(actions[i % len(actions)])
    sync()
    return clock() - start


def best_rate(
    step: Callable[[Any], Any],
    actions: list[Any],
    num_envs: int,
    args: argparse.Namespace,
    sync: Callable[[], None],
) -> float:
    """Best env steps/s of ``args.repeats`` timings, each within ``--max-seconds`` per row."""
    warmup = time_loop(step, actions, 3, sync) / 3  # also warms allocations and caches
    affordable = int(args.max_seconds / (args.repeats * max(warmup, 1e-9)))
    steps = max(3, min(args.steps, affordable))
    clock = CLOCKS[args.clock]
    seconds = min(time_loop(step, actions, steps, sync, clock) for _ in range(args.repeats))
    return num_envs * steps / seconds


def sandbox_rate(
    env_id: str, num_envs: int, device: torch.device, args: argparse.Namespace
) -> float:
    env = gymnasium.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", device=device
    )
    env.reset(seed=0)
    space = env.single_action_space
    generator = torch.Generator(device=device).manual_seed(0)
    if isinstance(space, gymnasium.spaces.Discrete):
        actions = [
            torch.randint(
                int(space.start),
                int(space.start + space.n),
                (num_envs,),
                generator=generator,
                device=device,
            )
            for _ in range(ACTION_POOL)
        ]
    else:
        low = torch.as_tensor(space.low, device=device)
        high = torch.as_tensor(space.high, device=device)
        actions = [
            low
            + (high - low)
            * torch.rand((num_envs, *space.shape), generator=generator, device=device)
            for _ in range(ACTION_POOL)
        ]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    rate = best_rate(env.step, actions, num_envs, args, sync)
    env.close()
    return rate


def gymnasium_rate(impl: str, num_envs: int, args: argparse.Namespace) -> float:
    if impl == "gymnasium-vector":
        env: Any = GymCartPoleVectorEnv(num_envs)
    else:
        env = gymnasium.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 2, size=num_envs) for _ in range(ACTION_POOL)]
    rate = best_rate(env.step, actions, num_envs, args, lambda: None)
    env.close()
    return rate


def sandbox_env_ids(args_envs: list[str] | None = None) -> list[str]:
    """The registered sandbox envs whose modules import (DogTraining may be absent).

    Args:
        args_envs: keep only ids containing one of these names (case-insensitive); all if None.
    """
    available = []
    for env_id in envs.SANDBOX_ENV_IDS:
        module = gymnasium.spec(env_id).vector_entry_point.split(":")[0]
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        if args_envs is None or any(name.lower() in env_id.lower() for name in args_envs):
            available.append(env_id)
    # CartPole first: the row the Gymnasium implementations are compared with.
    return sorted(available, key=lambda env_id: "CartPole" not in env_id)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    rows = []
    for num_envs in args.num_envs:
        for env_id in sandbox_env_ids(args.envs):
            rate = sandbox_rate(env_id, num_envs, device, args)
            rows.append(
                dict(
                    impl="sandbox",
                    env=env_id,
                    device=str(device),
                    num_envs=num_envs,
                    steps_per_s=rate,
                )
            )
            if not args.json:
                print(
                    f"  sandbox          {env_id:24s} N={num_envs:<8d} {rate:14,.0f} steps/s",
                    flush=True,
                )
        impls = ["gymnasium-vector"] + (
            ["gymnasium-sync"] if num_envs <= args.sync_max_envs else []
        )
        for impl in impls:
            rate = gymnasium_rate(impl, num_envs, args)
            rows.append(
                dict(
                    impl=impl, env="CartPole-v1", device="cpu", num_envs=num_envs, steps_per_s=rate
                )
            )
            if not args.json:
                print(
                    f"  {impl:16s} {'CartPole-v1':24s} N={num_envs:<8d} {rate:14,.0f} steps/s",
                    flush=True,
                )
    return rows


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    reference = {r["num_envs"]: r["steps_per_s"] for r in rows if r["impl"] == "gymnasium-vector"}
    table = Table(
        title=f"Env steps/s ({args.clock} clock, torch threads: {torch.get_num_threads()}, "
        f"best of {args.repeats} x {args.steps} steps)"
    )
    for column in ("impl", "env", "device", "num_envs"):
        table.add_column(column)
    table.add_column("steps/s", justify="right")
    table.add_column("vs gymnasium-vector", justify="right")
    for row in rows:
        ratio = row["steps_per_s"] / reference[row["num_envs"]]
        table.add_row(
            row["impl"],
            row["env"],
            row["device"],
            str(row["num_envs"]),
            f"{row['steps_per_s']:,.0f}",
            f"{ratio:.2f}x",
        )
    console = Console(width=110)
    console.print(table)
    console.print(
        f"gymnasium-sync runs only up to N={args.sync_max_envs} (--sync-max-envs): it steps each "
        "env in a Python loop, so larger N would only take long to say the same."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--num-envs",
        type=lambda text: [int(v) for v in text.split(",")],
        default=list(DEFAULT_NUM_ENVS),
        help="comma-separated N values (default: %(default)s)",
    )
    parser.add_argument(
        "--device", default="cpu", choices=["cpu", "cuda"], help="sandbox envs' device"
    )
    parser.add_argument(
        "--steps", type=int, default=200, help="vector steps per timing (default: 200)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timings per row; the best counts")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default: 1, as rl.device.configure_threads picks for CPU "
        "training; more threads stall when other processes share the cores)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="time budget per row: fewer steps are timed for slow rows (default: 20)",
    )
    parser.add_argument(
        "--sync-max-envs", type=int, default=1024, help="largest N for gymnasium-sync"
    )
    parser.add_argument(
        "--envs",
        type=lambda text: text.split(","),
        default=None,
        help="sandbox envs to time, e.g. CartPole,Pendulum (default: all registered)",
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=sorted(CLOCKS),
        help="wall: elapsed time (default); cpu: this process's CPU time, steadier on a busy "
        "shared machine but blind to idle waits (CUDA) and summed over threads",
    )
    parser.add_argument("--json", action="store_true", help="print the rows as a JSON list only")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.repeats < 1 or any(n < 1 for n in args.num_envs):
        parser.error("--steps, --repeats and every --num-envs value must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = run(args)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print_table(rows, args)


if __name__ == "__main__":
    main()
