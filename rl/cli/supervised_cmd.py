"""``rl supervised TASK``: the supervised and representation-learning baselines.

Tasks, in the order of docs/LEARN.md: ``tensors`` and ``anatomy`` (no training), ``regression``
and ``classification`` (:mod:`rl.baselines`), ``bc`` (:mod:`agents.bc`), ``transfer`` and
``pretrain`` (:mod:`agents.representation`). Each prints a readable summary, or with ``--json``
one JSON object; those that train log a run folder under ``runs/`` and put their PNGs there.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

from rl.cli import CLIError
from rl.device import DEVICE_CHOICES

TASKS = ("tensors", "anatomy", "regression", "classification", "bc", "transfer", "pretrain")
DATASETS = ("moons", "circles", "spirals")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "supervised",
        help="supervised, imitation, transfer and self-supervised baselines",
        description=(
            "Run one baseline: tensors (numeric encoding), anatomy (an MLP's layers), "
            "regression, classification, bc (behaviour cloning of the dog's expert), transfer "
            "(PPO from other houses' weights vs scratch), pretrain (a self-supervised torso vs "
            "scratch). docs/LEARN.md walks through them in order."
        ),
    )
    parser.add_argument("task", choices=TASKS, metavar="TASK", help=", ".join(TASKS))
    parser.add_argument("--device", default="auto", help=f"one of {DEVICE_CHOICES} or cuda:K")
    parser.add_argument("--seed", type=int, default=1, help="seed of data, weights and envs")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    parser.add_argument(
        "--runs-dir", default="runs", type=Path, help="parent folder of the run (default: runs)"
    )
    parser.add_argument(
        "--dataset",
        choices=(*DATASETS, "all"),
        default="all",
        help="classification: which toy dataset (default: all three)",
    )
    parser.add_argument(
        "--demos",
        nargs="+",
        default=(),
        metavar="FILE",
        help="bc: demonstration files from `rl play --record-demos` (added to the expert's)",
    )
    parser.add_argument(
        "--expert-steps",
        type=int,
        default=None,
        help="bc: expert steps to clone (default 2000; 0 = --demos only)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="bc/transfer/pretrain: change a config field (agents.bc.Config or "
        "agents.representation.Config), e.g. --set max_timesteps=100000",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {args.seed}")
    try:
        result = _dispatch(args)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False, default=_plain))
    else:
        print(summary(result))
    return 0


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from rl.device import resolve_device

    resolve_device(args.device)  # a bad --device fails before any work
    if args.task in ("tensors", "anatomy", "regression", "classification"):
        from rl import baselines

        if args.task == "tensors":
            return baselines.tensors_demo(args.seed)
        if args.task == "anatomy":
            return baselines.anatomy_demo()
        if args.task == "regression":
            return baselines.regression_baseline(
                seed=args.seed, device=args.device, runs_root=args.runs_dir
            )
        datasets = DATASETS if args.dataset == "all" else (args.dataset,)
        return baselines.classification_baseline(
            seed=args.seed, device=args.device, datasets=datasets, runs_root=args.runs_dir
        )
    from rl.config import parse_overrides, replace_config

    overrides: dict[str, Any] = parse_overrides(args.overrides)
    if args.task == "bc":
        return run_bc(args, overrides)
    from agents import representation

    cfg = representation.default_config(
        **{"seed": args.seed, "device": args.device, "progress": not args.json, **overrides}
    )
    if "run_dir" not in overrides:
        from rl.runs import run_name

        name = run_name(f"supervised-{args.task}", "ppo", cfg.seed)
        cfg = replace_config(cfg, {"run_dir": str(args.runs_dir / name)})
    return representation.transfer(cfg) if args.task == "transfer" else representation.pretrain(cfg)


def run_bc(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """Clone the expert (and ``--demos``), compare it with the expert and a random dog, and
    measure how many expert steps cloning needs."""
    from agents import bc
    from rl.runs import run_name

    values: dict[str, Any] = {"seed": args.seed, "device": args.device, **overrides}
    if args.demos:
        values["demos"] = tuple(str(p) for p in args.demos)
    if args.expert_steps is not None:
        values["num_expert_steps"] = args.expert_steps
    values.setdefault("run_dir", str(args.runs_dir / run_name(bc.DOG_ENV_ID, bc.ALGO, args.seed)))
    cfg = bc.default_config(values.pop("env_id", bc.DOG_ENV_ID), **values)
    result = bc.train(cfg)
    metrics = result.metrics
    out: dict[str, Any] = {
        "task": "bc",
        "bc_success": metrics.get("bc_success"),
        "expert_success": metrics.get("expert_success"),
        "random_success": metrics.get("random_success"),
        "bc_return": metrics.get("bc_return"),
        "expert_return": metrics.get("expert_return"),
        "random_return": metrics.get("random_return"),
        "val_accuracy": metrics["val_accuracy"],
        "expert_steps": int(metrics["expert_steps"]),
        "demo_steps": int(metrics["demo_steps"]),
        "run_dir": str(result.run_dir),
    }
    if cfg.env_id == bc.DOG_ENV_ID and cfg.eval_episodes > 0:
        sweep = bc.expert_steps_needed(cfg)
        out["expert_steps_needed"] = sweep["expert_steps_needed"]
        out["target_success"] = sweep["target_success"]
        out["sweep"] = sweep["curve"]
        if result.run_dir is not None:
            out["plot"] = str(bc.plot_sweep(sweep, out, result.run_dir / "bc_sweep.png"))
    if result.run_dir is not None:
        from rl.runs import write_json

        write_json(result.run_dir / "result.json", out)
    return out


def _fmt(value: Any, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.1%}" if percent else f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def summary(result: dict[str, Any]) -> str:
    """A few readable lines about a task's result."""
    task = result["task"]
    lines: list[str] = []
    if task == "tensors":
        lines += [
            f"actions {result['labels']} one-hot encoded (6 classes): "
            f"{result['labels'][1]} → {[int(v) for v in result['one_hot'][1]]}",
            f"heights {result['heights_cm']} cm standardised: {result['standardized']}",
            f"  scaled to [0, 1]: {result['min_max_scaled']}",
            f"  running mean/std over two batches: {result['running_mean']:.2f} / "
            f"{result['running_std']:.2f}",
            f"image (H, W, C) {result['image_shape_hwc']} → tensor (C, H, W) "
            f"{result['tensor_shape_chw']}, round trip exact: {result['round_trip_exact']}",
        ]
    elif task == "anatomy":
        lines.append(f"{'layer':<9}{'kind':<10}{'width':>6}{'parameters':>12}")
        for row in result["layers"]:
            lines.append(
                f"{row['layer']:<9}{row['kind']:<10}{row['width']:>6}{row['parameters']:>12}"
            )
        lines.append(f"total parameters: {result['total_parameters']}")
    elif task == "regression":
        lines += [
            f"linear model: w = {[round(w, 3) for w in result['weight_learned']]} "
            f"(true {result['weight_true']}), b = {result['bias_learned']:.3f} "
            f"(true {result['bias_true']})",
            f"  largest relative parameter error {_fmt(result['param_error'], True)}, "
            f"held-out R² {result['r2']:.4f}",
            f"nonlinear target: MLP R² {result['mlp_r2']:.3f} vs a straight line "
            f"{result['linear_r2_on_nonlinear']:.3f}",
        ]
    elif task == "classification":
        for name, data in result["datasets"].items():
            lines.append(
                f"{name:<8} held-out accuracy {_fmt(data['accuracy'], True)}, "
                f"confusion (rows = true) {data['confusion_matrix']}"
            )
        lines.append(f"lowest accuracy: {_fmt(result['accuracy'], True)}")
    elif task == "bc":
        lines += [
            f"success rate (unseen houses): clone {_fmt(result['bc_success'], True)}, expert "
            f"{_fmt(result['expert_success'], True)}, random "
            f"{_fmt(result['random_success'], True)}",
            f"cloned from {result['expert_steps']:,} expert steps + {result['demo_steps']:,} demo "
            f"steps (agreement with the expert on held-out steps "
            f"{_fmt(result['val_accuracy'], True)})",
        ]
        if "sweep" in result:
            lines.append(
                f"expert steps needed for {_fmt(result['target_success'], True)} success: "
                f"{_fmt(result['expert_steps_needed'])}  (sweep: "
                + ", ".join(f"{n}→{s:.0%}" for n, s in result["sweep"])
                + ")"
            )
    elif task in ("transfer", "pretrain"):
        other = "transfer" if task == "transfer" else "pretrained"
        lines.append(
            f"env steps to mean return {result['threshold_return']:g} on unseen houses: "
            f"{other} {_fmt(result[f'steps_to_threshold_{other}'])}, scratch "
            f"{_fmt(result['steps_to_threshold_scratch'])}"
        )
        if task == "transfer":
            lines.append(
                f"source run: {result['source_steps']:,} steps on other houses; zero-shot success "
                f"on the unseen houses {_fmt(result.get('zero_shot_success'), True)}"
            )
        else:
            lines.append(
                f"forward model (predicts the next observation): held-out R² "
                f"{result['encoder']['r2']:.3f}; speed-up {_fmt(result['speedup'])}"
            )
    if "run_dir" in result:
        lines.append(f"run: {result['run_dir']}")
    if "plot" in result:
        lines.append(f"plot: {result['plot']}")
    return "\n".join(lines)
