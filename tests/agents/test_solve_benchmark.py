"""benchmarks/solve.py's side-by-side line: ours against Stable-Baselines3, per device."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SOLVE = Path(__file__).resolve().parents[2] / "benchmarks" / "solve.py"


def load_solve():
    spec = importlib.util.spec_from_file_location("solve_benchmark", SOLVE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_speedup_line_compares_medians_on_the_same_device() -> None:
    solve = load_solve()
    rows = [
        {"name": "ppo-cartpole", "device": "cpu", "median_wall_s": 1.5, "solved": 5, "seeds": 5},
        {"name": "sb3-ppo-cartpole", "device": "cpu", "median_wall_s": 15.0, "solved": 3,
         "seeds": 5},
        {"name": "ppo-cartpole", "device": "cuda", "median_wall_s": 1.0, "solved": 5, "seeds": 5},
        {"name": "sb3-ppo-cartpole", "device": "cuda", "skipped": "not installed"},
    ]  # fmt: skip
    assert solve.speedups(rows) == [
        "PPO CartPole on cpu: median 1.50 s against Stable-Baselines3's 15.00 s: 10.0x faster "
        "(solved 5/5 vs 3/5)"
    ]
