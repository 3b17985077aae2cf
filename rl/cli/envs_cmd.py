"""``rl envs``: list the registered sandbox environments and their spaces."""

from __future__ import annotations

import argparse
import json

import gymnasium
import numpy as np


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "envs",
        help="list the sandbox's environments with their spaces",
        description="List the registered sandbox environments with their action and observation spaces.",
    )
    parser.add_argument(
        "--all", action="store_true", help="also list every other registered Gymnasium env id"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON list")
    parser.set_defaults(run=run)


def space_text(space: gymnasium.Space) -> str:
    """A short description: bounds of a Box are too long for a table."""
    if isinstance(space, gymnasium.spaces.Box):
        low, high = np.unique(space.low), np.unique(space.high)
        bounds = f" in [{low[0]:g}, {high[0]:g}]" if low.size == 1 and high.size == 1 else ""
        return f"Box{space.shape} {space.dtype}{bounds}"
    return str(space)


def describe(env_id: str) -> dict[str, object]:
    spec = gymnasium.spec(env_id)
    env = gymnasium.make(env_id)
    try:
        return {
            "id": env_id,
            "action_space": space_text(env.action_space),
            "observation_space": space_text(env.observation_space),
            "max_episode_steps": spec.max_episode_steps,
            "vectorized": spec.vector_entry_point is not None,
        }
    finally:
        env.close()


def run(args: argparse.Namespace) -> int:
    import envs

    rows = [describe(env_id) for env_id in envs.SANDBOX_ENV_IDS]
    if args.json:
        out: dict[str, object] = {"sandbox": rows}
        if args.all:
            out["gymnasium"] = sorted(i for i in gymnasium.registry if not i.startswith("sandbox/"))
        print(json.dumps(out if args.all else rows, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Sandbox environments (gymnasium.make / make_vec after `import envs`)")
    table.add_column("id", no_wrap=True)
    table.add_column("action space")
    table.add_column("observation space")
    table.add_column("max steps", justify="right")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["action_space"]),
            str(row["observation_space"]),
            str(row["max_episode_steps"]),
        )
    console = Console()
    console.print(table)
    if args.all:
        others = sorted(i for i in gymnasium.registry if not i.startswith("sandbox/"))
        console.print("Other registered Gymnasium envs (train through the numpy adapter):")
        console.print(", ".join(others))
    return 0
