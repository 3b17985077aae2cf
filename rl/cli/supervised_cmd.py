"""``rl supervised TASK``: the supervised and representation-learning baselines.

Tasks, in the order of docs/LEARN.md: ``tensors`` and ``anatomy`` (no training), ``regression``
and ``classification`` (:mod:`rl.baselines`), ``bc`` (:mod:`agents.bc`), ``transfer`` and
``pretrain`` (:mod:`agents.representation`). Each prints a readable summary, or with ``--json``
one JSON object; those that train log a run folder under ``runs/`` and put their PNGs there.

Each task is a sub-command with the options it uses and no others (``rl supervised TASK --help``
lists them, and for ``bc``, ``transfer`` and ``pretrain`` the ``--set`` fields): an option a task
would ignore is an error that names the options it takes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import textwrap
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rl.cli import CLIError, OneLineParser, check_folder, nonempty, seed_number, whole_number
from rl.device import DEVICE_CHOICES

TASKS = ("tensors", "anatomy", "regression", "classification", "bc", "transfer", "pretrain")
DATASETS = ("moons", "circles", "spirals")
DEFAULT_SEED = 1

# One line per task for `rl supervised --help`, and each task's own --help description.
_TASK_HELP = {
    "tensors": "numeric encoding: one-hot, standardisation, running statistics, images",
    "anatomy": "the layers of a small MLP: input, hidden, output, with their sizes",
    "regression": "a linear model recovers known weights; an MLP fits a curve a line cannot",
    "classification": "an MLP classifies 2-D toy datasets (moons, circles, spirals)",
    "bc": "behaviour cloning of the dog's scripted expert or of your own demonstrations",
    "transfer": "PPO on unseen houses from other houses' weights vs from scratch",
    "pretrain": "PPO with a self-supervised (forward-model) torso vs from scratch",
}
# representation.Config serves both comparisons; these fields belong to one of them only.
_NOT_USED_BY = {
    "transfer": ("unlabelled_steps", "pretrain_epochs", "pretrain_learning_rate"),
    "pretrain": ("source_timesteps", "source_env_kwargs"),
}


class _TaskParser(OneLineParser):
    """A task's parser whose epilog (the ``--set`` fields) is built only when help is shown:
    listing them imports the agents, too slow for every ``rl`` call."""

    def __init__(self, *args: Any, epilog_fn: Callable[[], str] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.epilog_fn = epilog_fn

    def format_help(self) -> str:
        if self.epilog_fn is not None:
            self.epilog = self.epilog_fn()
        return super().format_help()

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        # Left alone, argparse hands a task's unknown options up to `rl`, whose error names
        # neither the task nor what it takes.
        namespace, extras = super().parse_known_args(args, namespace)
        if extras:
            unknown = [a for a in extras if a.startswith("-")] or extras
            takes = [
                action.option_strings[-1]
                for action in self._actions
                if action.option_strings and action.dest != "help"
            ]
            task = self.prog.split()[-1]
            self.exit(
                2,
                f"{self.prog}: error: {', '.join(unknown)} "
                f"{'does' if len(unknown) == 1 else 'do'} not apply to `rl supervised {task}`, "
                f"which takes {', '.join(takes) or 'no options'} (`rl supervised {task} --help` "
                "says what each does)\n",
            )
        return namespace, extras


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "supervised",
        help="supervised, imitation, transfer and self-supervised baselines",
        description=(
            "Run one baseline. docs/LEARN.md walks through them in order. Each task takes its "
            "own options: `rl supervised TASK --help` lists them."
        ),
    )
    tasks = parser.add_subparsers(
        dest="task", metavar="TASK", required=True, parser_class=_TaskParser
    )
    for task in TASKS:
        _add_task(tasks, task)
    parser.set_defaults(run=run)


def _add_task(tasks: argparse._SubParsersAction, task: str) -> None:
    epilog_fn = {
        "bc": lambda: _set_epilog("bc"),
        "transfer": lambda: _set_epilog("transfer"),
        "pretrain": lambda: _set_epilog("pretrain"),
    }.get(task)
    sub = tasks.add_parser(
        task,
        help=_TASK_HELP[task],
        description=_TASK_HELP[task] + ".",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog_fn=epilog_fn,
    )
    if task not in ("tensors", "anatomy"):  # those two train nothing: no seed, device or run
        what = {
            "regression": "the data and the initial weights",
            "classification": "the data and the initial weights",
            "bc": "the demonstrations, the weights and the envs",
        }.get(task, "the weights, the envs and the policies' sampling")
        sub.add_argument(
            "--seed", type=seed_number, default=DEFAULT_SEED,
            help=f"seed of {what}, an integer >= 0 (default: {DEFAULT_SEED})",
        )  # fmt: skip
        sub.add_argument(
            "--device", default="auto",
            help=f"one of {', '.join(DEVICE_CHOICES)} or cuda:K (default: auto)",
        )  # fmt: skip
        sub.add_argument(
            "--runs-dir", default="runs", type=lambda text: Path(nonempty(text)),
            help="parent folder of the run folder (default: runs)",
        )  # fmt: skip
    if task == "classification":
        sub.add_argument(
            "--dataset", choices=(*DATASETS, "all"), default="all",
            help="which toy dataset (default: all three)",
        )  # fmt: skip
    if task == "bc":
        sub.add_argument(
            "--demos", nargs="+", default=(), metavar="FILE",
            help="demonstration files from `rl play --record-demos`, cloned together with the "
            "expert's steps (or alone, with --expert-steps 0); with --demos the scripted "
            "expert's steps sweep is skipped",
        )  # fmt: skip
        sub.add_argument(
            "--expert-steps", type=whole_number, default=None, metavar="N",
            help="scripted-expert steps to clone (default: 2000; 0: learn from --demos only)",
        )  # fmt: skip
    if task in ("bc", "transfer", "pretrain"):
        config = "agents.bc.Config" if task == "bc" else "agents.representation.Config"
        example = "epochs=30" if task == "bc" else "max_timesteps=100000"
        sub.add_argument(
            "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
            help=f"change a field of {config} (the fields are listed below), e.g. --set "
            f"{example}; repeat for more",
        )  # fmt: skip
    sub.add_argument("--json", action="store_true", help="print one JSON object instead")


def _config_class(task: str) -> type:
    if task == "bc":
        from agents import bc

        return bc.Config
    from agents import representation

    return representation.Config


def _set_epilog(task: str) -> str:
    """The ``--set`` fields ``task`` reads, with their defaults and docs."""
    from rl.config import field_docs

    cls = _config_class(task)
    skip = _NOT_USED_BY.get(task, ())
    hints = {k: v for k, v in typing.get_type_hints(cls).items() if k not in skip}
    lists = [name for name, hint in hints.items() if typing.get_origin(hint) in (tuple, list)]
    formats = [f"lists are comma-separated (--set {lists[-1]}=32,32)"] if lists else []
    dicts = [name for name, hint in hints.items() if "dict" in str(hint)]
    if dicts:
        formats.append(f'dicts are JSON (--set {dicts[0]}=\'{{"layout": "default"}}\')')
    lines = [
        f"--set fields for {task} ({cls.__module__}.{cls.__name__})"
        + (f"; {', '.join(formats)}" if formats else "")
        + ":"
    ]
    docs = field_docs(cls)  # reads and parses the class's source: once, not per field
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        else:
            default = field.default_factory()  # type: ignore[misc]
        doc = docs.get(field.name, "")
        lines.append(
            textwrap.fill(
                f"{field.name} (default {default!r}): {doc}",
                width=100, initial_indent="  ", subsequent_indent="      ",
            )
        )  # fmt: skip
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import torch

    from rl.device import resolve_threads

    try:  # RL_NUM_THREADS, before a baseline makes its run folder
        resolve_threads(torch.device("cpu"))
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if getattr(args, "runs_dir", None) is not None:
        check_folder(args.runs_dir, "--runs-dir")
    try:
        result = _dispatch(args)
    except (ValueError, FloatingPointError) as exc:  # bad input, or a fit that diverged
        raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps(_finite(result), indent=2, allow_nan=False, default=_plain))
    else:
        print(summary(result))
    return 0


def _plain(value: Any) -> Any:
    return str(value)  # a Path, a tuple's repr: JSON has no type for them


def _finite(value: Any) -> Any:
    """``value`` with every non-finite float as None (JSON has no NaN or infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _dispatch(args: argparse.Namespace) -> dict[str, Any]:
    from rl import baselines

    if args.task == "tensors":
        return baselines.tensors_demo()
    if args.task == "anatomy":
        return baselines.anatomy_demo()
    from rl.device import resolve_device

    resolve_device(args.device)  # a bad --device fails before any work
    if args.task == "regression":
        return baselines.regression_baseline(
            seed=args.seed, device=args.device, runs_root=args.runs_dir
        )
    if args.task == "classification":
        datasets = DATASETS if args.dataset == "all" else (args.dataset,)
        return baselines.classification_baseline(
            seed=args.seed, device=args.device, datasets=datasets, runs_root=args.runs_dir
        )
    from rl.config import parse_overrides, replace_config

    overrides: dict[str, Any] = parse_overrides(args.overrides)
    if "run_dir" in overrides and not str(overrides["run_dir"]).strip():
        raise ValueError(
            "run_dir is empty: give a folder (--set run_dir=DIR), or leave it unset for a fresh "
            "one under --runs-dir"
        )
    if args.task == "bc":
        return run_bc(args, overrides)
    from agents import representation

    for key in overrides:
        if key in _NOT_USED_BY[args.task]:
            other = "pretrain" if args.task == "transfer" else "transfer"
            raise ValueError(
                f"--set {key}: {args.task} does not use it (only {other} does); "
                f"`rl supervised {args.task} --help` lists the fields {args.task} takes"
            )
    cfg = representation.default_config(
        **{"seed": args.seed, "device": args.device, "progress": not args.json, **overrides}
    )
    if "run_dir" not in overrides:
        from rl.runs import run_name

        name = run_name(f"supervised-{args.task}", "ppo", cfg.seed)
        cfg = replace_config(cfg, {"run_dir": str(args.runs_dir / name)})
    refuse_a_used_folder(cfg.run_dir)
    return representation.transfer(cfg) if args.task == "transfer" else representation.pretrain(cfg)


def refuse_a_used_folder(run_dir: str | Path | None) -> None:
    """A ValueError if ``run_dir`` already holds files: a second run there would mix its
    TensorBoard events into the first's curves (which transfer and pretrain read back) and
    overwrite its checkpoints and results. Supervised runs do not resume: each starts afresh."""
    if run_dir is None:
        return
    folder = Path(run_dir)
    written = ("config.json", "result.json", "checkpoints", "events.out.tfevents.*")
    if any(any(folder.glob(pattern)) for pattern in written):
        raise ValueError(
            f"{folder} already holds a run; give a new folder with --set run_dir=... (or omit "
            "it for a fresh one under --runs-dir), or delete this one"
        )


def run_bc(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """Clone the scripted expert and/or ``--demos``, compare the clone with the scripted expert
    and a random dog, and (for the expert alone) measure how many expert steps cloning needs."""
    from agents import bc
    from rl.runs import run_name

    if args.expert_steps is not None and args.expert_steps < 0:
        raise ValueError(f"--expert-steps must be >= 0 (0: --demos only), got {args.expert_steps}")
    for flag, given, key in (
        ("--demos", args.demos, "demos"),
        ("--expert-steps", args.expert_steps is not None, "num_expert_steps"),
    ):
        if given and key in overrides:
            raise ValueError(f"{flag} and --set {key} set the same thing; give one of them")
    values: dict[str, Any] = {"seed": args.seed, "device": args.device, **overrides}
    if args.demos:
        values["demos"] = tuple(str(p) for p in args.demos)
    if args.expert_steps is not None:
        values["num_expert_steps"] = args.expert_steps
    env_id = values.pop("env_id", bc.DOG_ENV_ID)
    values.setdefault("run_dir", str(args.runs_dir / run_name(env_id, bc.ALGO, values["seed"])))
    cfg = bc.default_config(env_id, **values)
    if cfg.write_run:
        refuse_a_used_folder(cfg.run_dir)
    result = bc.train(cfg)
    metrics = result.metrics
    expert_steps, demo_steps = int(metrics["expert_steps"]), int(metrics["demo_steps"])
    out: dict[str, Any] = {
        "task": "bc",
        # Who the clone imitated: "expert" (scripted), "demonstrations" (--demos) or both.
        "teacher": "+".join(
            name for name, steps in (("expert", expert_steps), ("demonstrations", demo_steps))
            if steps
        ),
        "bc_success": metrics.get("bc_success"),
        "expert_success": metrics.get("expert_success"),
        "random_success": metrics.get("random_success"),
        "bc_return": metrics.get("bc_return"),
        "expert_return": metrics.get("expert_return"),
        "random_return": metrics.get("random_return"),
        "val_accuracy": metrics["val_accuracy"],
        # Where the clone was judged: the dog's unseen houses by default, else its own env.
        "evaluated_on": (
            "unseen houses"
            if cfg.env_id == bc.DOG_ENV_ID and cfg.eval_env_kwargs is not None
            else "the training env"
        ),
        "expert_steps": expert_steps,
        "demo_steps": demo_steps,
        "run_dir": None if result.run_dir is None else str(result.run_dir),
    }  # fmt: skip
    # The sweep clones growing prefixes of the scripted expert's demonstration: it answers "how
    # many expert steps are needed", which says nothing about the user's own demos, and it is
    # most of the runtime. So it runs only when the scripted expert is the only teacher.
    if cfg.env_id == bc.DOG_ENV_ID and cfg.eval_episodes > 0 and not cfg.demos:
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
            f"heights {result['heights_cm']} cm: mean {result['mean']:.2f}, sample std "
            f"{result['sample_std']:.2f} (divides by n - 1 = {len(result['heights_cm']) - 1})",
            f"  standardised, (x - mean) / sample std: {result['standardized']}",
            f"  scaled to [0, 1]: {result['min_max_scaled']}",
            f"  running statistics over two batches of two: mean {result['running_mean']:.4f}, "
            f"std {result['running_std']:.4f}",
            f"    its std is the population std (divides by n = {len(result['heights_cm'])}: "
            f"{result['population_std']:.4f}), and it starts from a pseudo-count of "
            f"{result['running_pseudo_count']:g} at mean 0 and variance 1, which keeps the first "
            "division finite and pulls both a hair from the exact values",
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
        teacher = result.get("teacher", "expert")
        steps = {
            "expert": f"{result['expert_steps']:,} scripted-expert steps",
            "demonstrations": f"{result['demo_steps']:,} demonstrated steps (--demos)",
            "expert+demonstrations": f"{result['expert_steps']:,} scripted-expert steps and "
            f"{result['demo_steps']:,} demonstrated steps (--demos)",
        }[teacher]
        who = {"expert": "the expert", "demonstrations": "the demonstrator"}.get(
            teacher, "its teachers"
        )
        where = result.get("evaluated_on", "unseen houses")
        if result.get("bc_success") is not None:
            lines.append(
                f"success rate ({where}): clone {_fmt(result['bc_success'], True)}, scripted "
                f"expert {_fmt(result['expert_success'], True)}, random "
                f"{_fmt(result['random_success'], True)}"
            )
        if result.get("bc_return") is not None:
            lines.append(
                f"mean return ({where}): clone {_fmt(result['bc_return'])}, scripted expert "
                f"{_fmt(result.get('expert_return'))}, random {_fmt(result.get('random_return'))}"
            )
        lines.append(
            f"cloned from {steps}; agreement with {who} on held-out steps "
            f"{_fmt(result['val_accuracy'], True)} (not learned from: whole episodes where there "
            "are several, else the last steps; they also picked the best epoch)"
        )
        if "sweep" in result:
            lines.append(
                f"scripted-expert steps needed for {_fmt(result['target_success'], True)} "
                f"success: {_fmt(result['expert_steps_needed'])}  (sweep: "
                + ", ".join(f"{n}→{s:.0%}" for n, s in result["sweep"])
                + ")"
            )
        elif "demonstrations" in teacher:
            lines.append(
                "no expert-steps sweep: it measures the scripted expert, not your "
                "demonstrations (`rl supervised bc` without --demos runs it)"
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
                f"forward model (predicts each step's change of observation): held-out R² "
                f"{result['encoder']['r2']:.3f}; speed-up {_fmt(result['speedup'])}"
            )
    if result.get("run_dir") is not None:
        lines.append(f"run: {result['run_dir']}")
    if "plot" in result:
        lines.append(f"plot: {result['plot']}")
    return "\n".join(lines)
