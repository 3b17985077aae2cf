"""Env steps per second: the sandbox's torch vector envs, eager and compiled, beside Gymnasium.

Rows (``impl``, ``mode``):

* ``sandbox`` ``eager``/``compiled`` — ``gymnasium.make_vec("sandbox/<Env>",
  vectorization_mode="vector_entry_point", compile=...)``: torch tensors on ``--device``,
  SAME_STEP autoreset, action validation on unless ``--no-validate`` (CUDA validation costs a
  host sync per step; agents turn it off). A compiled row's first step compiles (its seconds
  are ``compile_s``, cold or warm as inductor's on-disk cache stands) and is not timed;
* ``gymnasium-vector`` — Gymnasium's numpy ``CartPoleVectorEnv`` (float64, NEXT_STEP), CPU only;
* ``gymnasium-sync`` — ``SyncVectorEnv`` of N ``CartPoleEnv`` up to ``--sync-max-envs``.

Each figure is the best of ``--repeats`` timings of ``--steps`` vector steps (env steps/s = N x
steps / seconds), which filters out other processes on a shared machine; a row that would
exceed ``--max-seconds`` times fewer steps. CUDA timings synchronise around each timed loop.
Actions are drawn before timing (on the device) and cycled. Larger N stop at the first
out-of-memory or at ``--max-memory-fraction`` of the device's memory (estimated from N=1024).

The bandwidth limit: the bytes one env step must read and write (state in and out, action,
observation, reward, terminated, truncated; not final_obs or episode statistics), and the
steps/s a device moving ``--bandwidth-gbs`` GB/s could reach on those bytes alone. The default
bandwidth is measured here with a large tensor copy (one thread on the CPU, as the envs run).

``--compile-times`` instead compiles each env in fresh subprocesses, with an empty inductor
cache (cold) and then the cache it filled (warm), and reports the first step's seconds.

From the repository root::

    python -m benchmarks.env_throughput --clock cpu --max-log2 16           # CPU table
    python -m benchmarks.env_throughput --envs CartPole --num-envs 4096 --repeats 15
    python -m benchmarks.env_throughput --device cuda --no-validate --json  # 2^10 .. 2^22
    python -m benchmarks.env_throughput --compile-times --device cuda
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv as GymCartPoleVectorEnv

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import envs
from rl.device import resolve_device

ACTION_POOL = 32  # distinct action batches, cycled: enough to avoid a fixed pattern
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
# Published figures, not measured here: what other stacks report, for scale.
ANCHORS = (
    ("PureJaxRL", "~10M env steps/s in total, PPO training 2,048 agents", "A100"),
    ("gymnax", "~20M env steps/s, CartPole-v1 at 2k envs", "A100"),
    ("Isaac Lab", "~1.1M env steps/s, Cartpole", "RTX 4090"),
)


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


def make_sandbox(env_id: str, num_envs: int, device: torch.device, **kwargs: Any) -> Any:
    return gymnasium.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        device=device,
        **kwargs,
    )


def draw_actions(env: Any, num_envs: int, device: torch.device) -> list[torch.Tensor]:
    space = env.single_action_space
    generator = torch.Generator(device=device).manual_seed(0)
    if isinstance(space, gymnasium.spaces.Discrete):
        low, high = int(space.start), int(space.start + space.n)
        return [
            torch.randint(low, high, (num_envs,), generator=generator, device=device)
            for _ in range(ACTION_POOL)
        ]
    low = torch.as_tensor(space.low, device=device)
    high = torch.as_tensor(space.high, device=device)
    shape = (num_envs, *space.shape)
    return [
        low + (high - low) * torch.rand(shape, generator=generator, device=device)
        for _ in range(ACTION_POOL)
    ]


def step_bytes(env: Any, actions: torch.Tensor) -> int:
    """Bytes one env step must read and write: state in and out, action, obs, reward, flags."""
    core = env.unwrapped
    fields = [core.state] if isinstance(core.state, torch.Tensor) else list(core.state)
    state = sum(f.element_size() * f[0].numel() for f in fields)
    obs = int(np.prod(core.single_observation_space.shape)) * core.dtype.itemsize
    action = actions.element_size() * actions[0].numel()
    reward = core.dtype.itemsize
    return 2 * state + action + obs + reward + 2  # terminated and truncated: one byte each


def memory_per_env(env_id: str, device: torch.device, kwargs: dict[str, Any]) -> float:
    """Bytes a row holds at peak, estimated from a step at N=1024 (CUDA: allocator peak)."""
    if device.type != "cuda":
        env = make_sandbox(env_id, 1024, device, **kwargs)
        env.reset(seed=0)
        fields = (
            [env.unwrapped.state]
            if isinstance(env.unwrapped.state, torch.Tensor)
            else env.unwrapped.state
        )
        state = sum(f.element_size() * f[0].numel() for f in fields)
        obs = int(np.prod(env.single_observation_space.shape)) * 8
        return 8.0 * (state + obs)  # state, obs, final_obs and temporaries, with margin
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    env = make_sandbox(env_id, 1024, device, **kwargs)
    env.reset(seed=0)
    env.step(draw_actions(env, 1024, device)[0])
    torch.cuda.synchronize()
    return 2.0 * (torch.cuda.max_memory_allocated() - before) / 1024


def device_memory(device: torch.device) -> float:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return float(free)
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def measure_bandwidth(device: torch.device) -> float:
    """GB/s of a large tensor copy (bytes read + written), best of 5."""
    size = 1 << (28 if device.type == "cuda" else 26)  # 256 MiB / 64 MiB of float32
    source = torch.ones(size // 4, device=device)
    target = torch.empty_like(source)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    target.copy_(source)
    best = math.inf
    for _ in range(5):
        sync()
        start = time.perf_counter()
        target.copy_(source)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size / best / 1e9


def sandbox_rows(
    env_id: str, device: torch.device, args: argparse.Namespace, bandwidth_gbs: float
) -> list[dict[str, Any]]:
    kwargs: dict[str, Any] = {"validate_actions": args.validate}
    if "DogTraining" in env_id:
        kwargs.update(layout="random", num_layouts=1000)
    budget = args.max_memory_fraction * device_memory(device)
    per_env = memory_per_env(env_id, device, {**kwargs, "compile": False})
    rows = []
    for mode in args.modes:
        for num_envs in args.num_envs:
            if num_envs * per_env > budget:
                print(
                    f"  {env_id} N={num_envs}: skipped, ~{num_envs * per_env / 1e9:.1f} GB "
                    f"is over --max-memory-fraction",
                    file=sys.stderr,
                )
                break
            try:
                rows.append(
                    sandbox_row(env_id, num_envs, mode, device, args, bandwidth_gbs, kwargs)
                )
            except torch.OutOfMemoryError:
                print(f"  {env_id} {mode} N={num_envs}: out of memory", file=sys.stderr)
                break
            except Exception as exc:  # a compile or capture that failed: report, go on
                if mode == "eager":
                    raise
                print(f"  {env_id} {mode} N={num_envs} failed: {exc!r}", file=sys.stderr)
                break
            finally:
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            emit(rows[-1], args)
    return rows


def emit(row: dict[str, Any], args: argparse.Namespace) -> None:
    """Show a finished row now: a JSON line (``--jsonl``), a line of text, or nothing yet
    (``--json`` prints the whole list at the end)."""
    if args.jsonl:
        print(json.dumps(row), flush=True)
    elif not args.json:
        print_row(row)


GRAPH_STEPS = 32  # compiled steps per CUDA graph in the "graphed" mode


def graphed_rate(env: Any, actions: list[torch.Tensor], num_envs: int, args: Any) -> float:
    """Env steps/s replaying one CUDA graph of ``GRAPH_STEPS`` compiled steps (CUDA only).

    What a rollout with the Python taken out would reach: the compiled step's kernels, launched
    by the GPU itself. The graph steps the env ``GRAPH_STEPS`` times from static buffers (the
    state, episode counters and step count the step carries), then copies the last step's
    carry back into those buffers, so replay after replay continues the same episodes.
    """
    core = env.unwrapped
    core.capturable = True
    static = core.static_carried()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
        for i in range(3):
            env.step(actions[i])
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    core.copy_carried_into(static)  # the warm-up's last step, eagerly
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(GRAPH_STEPS):
            env.step(actions[i % len(actions)])
        core.copy_carried_into(static)
    graph.replay()
    torch.cuda.synchronize()
    replays = max(1, args.steps // GRAPH_STEPS)
    best = math.inf
    for _ in range(args.repeats):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(replays):
            graph.replay()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    del graph
    return num_envs * GRAPH_STEPS * replays / best


def sandbox_row(
    env_id: str,
    num_envs: int,
    mode: str,
    device: torch.device,
    args: argparse.Namespace,
    bandwidth_gbs: float,
    kwargs: dict[str, Any],
) -> dict[str, Any]:
    env = make_sandbox(env_id, num_envs, device, compile=mode != "eager", **kwargs)
    env.reset(seed=0)
    actions = draw_actions(env, num_envs, device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    env.step(actions[0])  # compiles a compiled env
    sync()
    if mode == "graphed":
        rate = graphed_rate(env, actions, num_envs, args)
    else:
        rate = best_rate(env.step, actions, num_envs, args, sync)
    nbytes = step_bytes(env, actions[0])
    row = dict(
        impl="sandbox",
        mode=mode,
        env=env_id,
        device=str(device),
        num_envs=num_envs,
        steps_per_s=rate,
        bytes_per_step=nbytes,
        bandwidth_limit_steps_per_s=bandwidth_gbs * 1e9 / nbytes,
    )
    if mode != "eager":
        row["compile_s"] = env.unwrapped.compile_seconds
    env.close()
    return row


def gymnasium_row(impl: str, num_envs: int, args: argparse.Namespace) -> dict[str, Any]:
    if impl == "gymnasium-vector":
        env: Any = GymCartPoleVectorEnv(num_envs)
    else:
        env = gymnasium.make_vec("CartPole-v1", num_envs=num_envs, vectorization_mode="sync")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = [rng.integers(0, 2, size=num_envs) for _ in range(ACTION_POOL)]
    rate = best_rate(env.step, actions, num_envs, args, lambda: None)
    env.close()
    return dict(
        impl=impl,
        mode="eager",
        env="CartPole-v1",
        device="cpu",
        num_envs=num_envs,
        steps_per_s=rate,
    )


def print_row(row: dict[str, Any]) -> None:
    extra = f"  (compile {row['compile_s']:.1f} s)" if row.get("compile_s") else ""
    print(
        f"  {row['impl']:16s} {row['mode']:8s} {row['env']:24s} N={row['num_envs']:<8d} "
        f"{row['steps_per_s']:16,.0f} steps/s{extra}",
        flush=True,
    )


def sandbox_env_ids(args_envs: list[str] | None = None) -> list[str]:
    """The registered sandbox envs whose modules import, CartPole first.

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
    return sorted(available, key=lambda env_id: "CartPole" not in env_id)


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    bandwidth = args.bandwidth_gbs or measure_bandwidth(device)
    args.measured_bandwidth = bandwidth
    rows = []
    for env_id in sandbox_env_ids(args.envs):
        rows += sandbox_rows(env_id, device, args, bandwidth)
    if device.type == "cpu" and not args.no_gymnasium:
        for num_envs in args.num_envs:
            impls = ["gymnasium-vector"] + (
                ["gymnasium-sync"] if num_envs <= args.sync_max_envs else []
            )
            for impl in impls:
                rows.append(gymnasium_row(impl, num_envs, args))
                emit(rows[-1], args)
    return rows


def print_table(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    gym = {r["num_envs"]: r["steps_per_s"] for r in rows if r["impl"] == "gymnasium-vector"}
    rate = {(r["env"], r["mode"], r["num_envs"]): r for r in rows if r["impl"] == "sandbox"}
    table = Table(
        title=f"Env steps/s on {rows[0]['device'] if rows else args.device} ({args.clock} clock, "
        f"torch threads {torch.get_num_threads()}, best of {args.repeats} x {args.steps} steps; "
        f"bandwidth {args.measured_bandwidth:.0f} GB/s)"
    )
    for column in (
        "env",
        "N",
        "eager",
        "compiled",
        "compiled/eager",
        "vs gymnasium",
        "B/step",
        "bandwidth limit",
        "of limit",
    ):
        table.add_column(column, justify="left" if column == "env" else "right")
    for env_id, num_envs in sorted({(k[0], k[2]) for k in rate}, key=lambda k: (k[0], k[1])):
        eager, compiled = (
            rate.get((env_id, "eager", num_envs)),
            rate.get((env_id, "compiled", num_envs)),
        )
        best = max((r for r in (eager, compiled) if r), key=lambda r: r["steps_per_s"])
        ratio = (
            f"{compiled['steps_per_s'] / eager['steps_per_s']:.2f}x" if eager and compiled else "-"
        )
        versus = (
            f"{best['steps_per_s'] / gym[num_envs]:.2f}x"
            if "CartPole" in env_id and num_envs in gym
            else "-"
        )
        table.add_row(
            env_id.split("/")[-1],
            str(num_envs),
            f"{eager['steps_per_s'] / 1e6:,.2f}M" if eager else "-",
            f"{compiled['steps_per_s'] / 1e6:,.2f}M" if compiled else "-",
            ratio,
            versus,
            str(best["bytes_per_step"]),
            f"{best['bandwidth_limit_steps_per_s'] / 1e6:,.0f}M",
            f"{best['steps_per_s'] / best['bandwidth_limit_steps_per_s']:.1%}",
        )
    for num_envs, steps in sorted(gym.items()):
        table.add_row(
            "gymnasium CartPoleVectorEnv",
            str(num_envs),
            f"{steps / 1e6:,.2f}M",
            "-",
            "-",
            "1.00x",
            "-",
            "-",
            "-",
        )
    console = Console(width=140)
    console.print(table)
    console.print(
        "'vs gymnasium': the faster sandbox mode over Gymnasium's numpy CartPoleVectorEnv."
    )
    console.print("Published figures, not measured here (other stacks, other machines):")
    for name, figure, device in ANCHORS:
        console.print(f"  {name}: {figure} on an {device}")


def compile_times(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Cold and warm first-step seconds per env, each in a fresh process (see module doc)."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for env_id in sandbox_env_ids(args.envs):
            row: dict[str, Any] = dict(env=env_id, device=args.device, num_envs=args.compile_envs)
            for kind in ("cold", "warm"):
                code = (
                    "import sys, torch, gymnasium; sys.path.insert(0, '.'); import envs;"
                    f"torch.set_num_threads({args.threads});"
                    f"e = gymnasium.make_vec({env_id!r}, num_envs={args.compile_envs}, "
                    f"vectorization_mode='vector_entry_point', device={args.device!r}, "
                    "compile=True, validate_actions=False); e.reset(seed=0);"
                    "e.step(torch.as_tensor(e.action_space.sample(), device=e.unwrapped.device));"
                    "print(e.unwrapped.compile_seconds)"
                )
                result = subprocess.run(
                    [sys.executable, "-c", code],
                    capture_output=True,
                    text=True,
                    timeout=args.compile_timeout,
                    env={**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache},
                    cwd=Path(__file__).resolve().parent.parent,
                    check=False,
                )
                if result.returncode != 0:
                    raise RuntimeError(f"{env_id} {kind} compile failed:\n{result.stderr[-2000:]}")
                row[f"{kind}_s"] = float(result.stdout.strip().splitlines()[-1])
            rows.append(row)
            if args.jsonl:
                print(json.dumps(row), flush=True)
            elif not args.json:
                print(
                    f"  {env_id:24s} first compiled step: cold {row['cold_s']:6.1f} s, "
                    f"warm {row['warm_s']:6.1f} s",
                    flush=True,
                )
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--num-envs",
        type=lambda text: [int(v) for v in text.split(",")],
        default=None,
        help="comma-separated N values (default: powers of two from --min-log2 to --max-log2)",
    )
    parser.add_argument("--min-log2", type=int, default=10, help="smallest N = 2**this")
    parser.add_argument("--max-log2", type=int, default=22, help="largest N = 2**this")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--modes",
        type=lambda text: text.split(","),
        default=["eager", "compiled"],
        help="sandbox step modes to time: eager, compiled, graphed (CUDA only: a CUDA graph "
        f"of {GRAPH_STEPS} compiled steps, replayed; default eager,compiled)",
    )
    parser.add_argument("--steps", type=int, default=200, help="vector steps per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per row; the best counts")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads (default 1, as rl.device.configure_threads picks for CPU "
        "training; more threads stall when other processes share the cores)",
    )
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time budget per row")
    parser.add_argument(
        "--sync-max-envs", type=int, default=1024, help="largest N for gymnasium-sync"
    )
    parser.add_argument("--no-gymnasium", action="store_true", help="skip Gymnasium's rows")
    parser.add_argument(
        "--envs",
        type=lambda text: text.split(","),
        default=None,
        help="sandbox envs to time, e.g. CartPole,Pendulum (default: all registered)",
    )
    parser.add_argument(
        "--no-validate", dest="validate", action="store_false", help="validate_actions=False"
    )
    parser.add_argument(
        "--bandwidth-gbs",
        type=float,
        default=None,
        help="the device's memory bandwidth for the limit column (default: measured here)",
    )
    parser.add_argument(
        "--max-memory-fraction", type=float, default=0.6, help="of free device memory per row"
    )
    parser.add_argument(
        "--clock",
        default="wall",
        choices=sorted(CLOCKS),
        help="wall: elapsed time (default); cpu: this process's CPU time, steadier on a busy "
        "shared machine but blind to idle waits (CUDA) and summed over threads",
    )
    parser.add_argument("--compile-times", action="store_true", help="cold/warm compile seconds")
    parser.add_argument("--compile-envs", type=int, default=4096, help="N for --compile-times")
    parser.add_argument("--compile-timeout", type=float, default=600.0, help="seconds per compile")
    parser.add_argument(
        "--json", action="store_true", help="print the rows as one JSON list at the end, only"
    )
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help="print each row as one JSON line as soon as it is measured, only (a run killed "
        "part-way keeps its finished rows)",
    )
    args = parser.parse_args(argv)
    if args.num_envs is None:
        args.num_envs = [2**k for k in range(args.min_log2, args.max_log2 + 1)]
    if args.steps < 1 or args.repeats < 1 or any(n < 1 for n in args.num_envs):
        parser.error("--steps, --repeats and every --num-envs value must be >= 1")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    if not set(args.modes) <= {"eager", "compiled", "graphed"}:
        parser.error("--modes takes a comma list of eager, compiled and graphed")
    if "graphed" in args.modes and args.device != "cuda":
        parser.error("--modes graphed replays CUDA graphs: it needs --device cuda")
    if args.clock == "cpu" and args.device == "cuda":
        parser.error("--clock cpu cannot see time spent waiting for the GPU; use wall")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = compile_times(args) if args.compile_times else run(args)
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not args.jsonl and not args.compile_times:
        print_table(rows, args)


if __name__ == "__main__":
    main()
