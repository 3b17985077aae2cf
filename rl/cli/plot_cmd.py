"""``rl plot``: learning curves of one or more runs, read from their TensorBoard events, as a PNG.

Runs whose configs differ only in their seed are one group: the group's mean is drawn with its
spread (± one standard deviation across seeds) shaded. Groups are labelled by what differs
between them, so ``rl plot runs/*DogTraining*`` after training under each reward preset labels
the curves ``reward_scheme=treats``, ``reward_scheme=coached``, ... Runs of different envs get a
row of panels each (their returns share no scale), labelled by what differs within that env.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rl.cli import CLIError, check_writable, nonempty
from rl.runs import read_json

RETURN_TAG = "charts/episodic_return"
SUCCESS_TAG = "charts/success_rate"
# Config fields that say how a run was executed or logged, not what was trained.
IGNORED_FIELDS = {
    "seed",
    "run_dir",
    "device",
    "progress",
    "torch_deterministic",
    "log_interval",
    "save_interval",
    "checkpoint_every",
    "num_snapshots",
    "eval_episodes",
    "capture_video",
    "compile",
}
GRID_POINTS = 200  # Points of the common step grid on which seeds are averaged.
NO_ENV = "(no env_id in its config)"  # runs whose folder says nothing of their env
MAX_LABEL = 80  # Legend labels longer than this are cut (a run of many differing fields).


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot",
        help="plot learning curves of runs (return, success rate) to a PNG",
        description=(
            "Plot return and success rate against env steps from runs' TensorBoard events. "
            "Runs that differ only in their seed are averaged (mean, with ± 1 std shaded; a "
            "seed that stopped early counts with its last value). "
            "A folder of runs (e.g. runs/) stands for every run in it, at any depth; runs in it "
            "without episodes (supervised runs) are left out and listed."
        ),
    )
    parser.add_argument(
        "runs",
        nargs="+",
        type=nonempty,
        metavar="RUN",
        help="run directories (or folders of runs)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="the PNG to write")
    parser.add_argument(
        "--smooth",
        type=float,
        default=0.6,
        help="exponential smoothing weight in [0, 1), as TensorBoard's slider (default 0.6)",
    )
    parser.add_argument("--title", default=None, help="figure title (default: the env id)")
    parser.set_defaults(run=run)


@dataclass
class RunCurves:
    """One run's scalars and the config fields that describe it."""

    path: Path
    config: dict[str, Any]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def find_runs(paths: list[str]) -> list[tuple[Path, bool]]:
    """Run directories named by ``paths``: each one itself, or the runs anywhere inside a folder; with
    whether the run was named itself (``True``) or found in a folder.

    Raises:
        CLIError: a path that does not exist or holds no TensorBoard events.
    """
    found: dict[str, tuple[Path, bool]] = {}  # by real path: a run and a link to it are one
    for text in paths:
        path = Path(text)
        if not path.is_dir():
            raise CLIError(
                f"{text} is not a directory; expected a run directory made by `rl train`"
            )
        if any(path.glob("events.out.tfevents.*")):
            found[os.path.realpath(path)] = (path, True)
            continue
        inner = _event_folders(path)
        if not inner:
            raise CLIError(
                f"{text} holds no TensorBoard events (events.out.tfevents.*) nor runs that do"
            )
        for run in inner:
            found.setdefault(os.path.realpath(run), (run, False))
    return list(found.values())


def _event_folders(root: Path) -> list[Path]:
    """The folders under ``root`` that hold TensorBoard events, symlinked run folders too (a
    comparison folder of links to runs), each real folder once however often it is linked."""
    found, seen = [], set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:  # a link back up the tree, or a second link to one run
            subfolders.clear()
            continue
        seen.add(real)
        if any(name.startswith("events.out.tfevents.") for name in files):
            found.append(Path(folder))
    return sorted(found)


def read_run(path: Path) -> RunCurves:
    """The run's return and success-rate curves (sorted by step) and flattened config.

    Raises:
        NoEpisodes: the run logged no episode return (a supervised run, or one too short).
    """
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(path), size_guidance={"scalars": 0})
    # A resumed run's events restart below the last step logged (purge_step drops the rest):
    # TensorBoard warns of a "TensorFlow restart" on stderr for what is expected here.
    tb_logger = logging.getLogger("tensorboard")
    level = tb_logger.level
    tb_logger.setLevel(logging.ERROR)
    try:
        accumulator.Reload()
    finally:
        tb_logger.setLevel(level)
    tags = set(accumulator.Tags().get("scalars", []))
    if RETURN_TAG not in tags:  # before _describe, which inspects the env and checkpoint
        if any(tag.startswith("losses/") for tag in tags) and not any(
            tag.startswith("charts/") for tag in tags
        ):
            raise NoEpisodes(
                f"{path} is a supervised run (its curves are losses, no episodes); "
                f"`tensorboard --logdir {path}` shows them",
                supervised=True,
            )
        raise NoEpisodes(
            f"{path} has no {RETURN_TAG} scalars yet (tags: {sorted(tags) or 'none'}); "
            "train longer so that episodes finish"
        )
    run = RunCurves(path=path, config=_describe(path))
    for tag in (RETURN_TAG, SUCCESS_TAG):
        if tag in tags:
            events = accumulator.Scalars(tag)
            steps = np.array([e.step for e in events], dtype=np.float64)
            values = np.array([e.value for e in events], dtype=np.float64)
            order = np.argsort(steps, kind="stable")
            run.curves[tag] = (steps[order], values[order])
    return run


class NoEpisodes(CLIError):
    """A run with no episode-return curve to plot."""

    def __init__(self, message: str, *, supervised: bool = False) -> None:
        super().__init__(message)
        self.supervised = supervised


def read_runs(paths: list[str]) -> tuple[list[RunCurves], list[str]]:
    """The runs ``paths`` name, and lines saying which runs found inside folders were left out
    (a folder such as ``runs/`` may also hold supervised runs). A run named itself must have
    curves.

    Raises:
        CLIError: a named run without episodes, or no run with episodes at all.
    """
    runs: list[RunCurves] = []
    supervised: list[str] = []
    skipped: list[str] = []
    for path, named in find_runs(paths):
        try:
            runs.append(read_run(path))
        except NoEpisodes as exc:
            if named:
                raise
            if exc.supervised:
                supervised.append(str(path))
            else:
                skipped.append(str(exc))
    if supervised:
        skipped.insert(
            0,
            f"{len(supervised)} supervised run(s), whose curves are losses (`tensorboard "
            f"--logdir` shows them): {', '.join(supervised)}",
        )
    if not runs:
        raise CLIError(
            f"no run in {' '.join(paths)} has episode returns to plot; left out "
            + "; ".join(skipped)
        )
    return runs, skipped


def _describe(path: Path) -> dict[str, Any]:
    """The run's config, with ``env_kwargs`` flattened in (the env's defaults filled in for
    arguments the run left out), plus its algorithm."""
    config: dict[str, Any] = {}
    raw = read_json(path / "config.json") if (path / "config.json").is_file() else {}
    algo = raw.get("algo") or _algo_of(path)
    if algo in ("ppo", "a2c", "dqn"):  # runs saved before a field trained as it says
        from agents.base import FIELDS_ADDED

        raw = {**FIELDS_ADDED, **raw}
    for key, value in raw.items():
        if key != "env_kwargs":
            config[key] = _hashable(value)
    env_kwargs = raw.get("env_kwargs") if isinstance(raw.get("env_kwargs"), dict) else {}
    if isinstance(raw.get("env_id"), str):
        env_kwargs = {**_env_defaults(raw["env_id"]), **env_kwargs}
    config.update({k: _hashable(v) for k, v in env_kwargs.items()})
    if "algo" not in config:
        config["algo"] = algo
    return config


def _env_defaults(env_id: str) -> dict[str, Any]:
    """The env constructor's default arguments (e.g. the dog's ``reward_scheme="coached"``)."""
    import inspect

    from rl.cli.train_cmd import env_parameters, register_envs

    register_envs()
    try:
        parameters = env_parameters(env_id)
    except ValueError:  # an env this Python cannot make: label by what the config says
        return {}
    return {
        p.name: p.default
        for p in parameters
        if p.default is not inspect.Parameter.empty
        and isinstance(p.default, (str, int, float, bool))
        and p.name != "seed"  # the run's seed is the config's
    }


def _algo_of(path: Path) -> str | None:
    """The algorithm that wrote the run: its folder name (``<env>__<algo>__<seed>__<time>``),
    else its latest checkpoint's ``algo``."""
    parts = path.name.split("__")
    if len(parts) >= 4:
        return parts[1]
    from rl.checkpoint import CheckpointError, load_checkpoint

    try:
        algo = load_checkpoint(path / "checkpoints" / "latest.pt").get("algo")
    except (CheckpointError, OSError):
        return None
    return algo if isinstance(algo, str) else None


def _hashable(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def group_runs(runs: list[RunCurves]) -> list[tuple[str, list[RunCurves]]]:
    """Runs grouped by config (seeds and logging aside), each group labelled by what differs."""
    keys = sorted({k for run in runs for k in run.config} - IGNORED_FIELDS)
    differing = [k for k in keys if len({repr(run.config.get(k)) for run in runs}) > 1]
    differing.sort(key=lambda k: k != "algo")  # runs of different algorithms: that first
    groups: dict[tuple[Any, ...], list[RunCurves]] = {}
    for run in runs:
        groups.setdefault(tuple(repr(run.config.get(k)) for k in differing), []).append(run)
    labelled = []
    ordered = sorted(  # by the differing values, numbers as numbers (stable: ties keep order)
        groups.values(), key=lambda members: [_order(members[0].config.get(k)) for k in differing]
    )
    for members in ordered:
        config = members[0].config
        if differing:
            label = ", ".join(f"{k}={_show(config.get(k))}" for k in differing)
        else:
            label = str(config.get("algo") or members[0].path.name)
        if len(members) > 1:
            seeds = len({repr(m.config.get("seed")) for m in members})
            label += (
                f" ({len(members)} seeds)"
                if seeds == len(members)
                else f" ({len(members)} runs, {seeds} seed{'s' if seeds > 1 else ''})"
            )
        labelled.append((label, members))
    return labelled


def _order(value: Any) -> tuple[int, Any]:
    """A sort key for a config value: numbers first and by value (``2`` before ``11``), then the
    rest by their label text."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, value)
    return (1, _show(value))


def _show(value: Any) -> str:
    """A config value in a label: ``64, 64`` for a list, ``{on_sofa: -0.5}`` for a mapping
    (:func:`_hashable` made it a tuple of pairs)."""
    if not isinstance(value, tuple):
        return str(value)
    if value and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in value) + "}"
    return re.sub(r"[()']", "", str(value))


def smooth(values: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's exponential moving average, debiased so early points are not pulled to 0."""
    if weight <= 0 or values.size == 0:
        return values
    out = np.empty_like(values)
    last, norm = 0.0, 0.0
    for i, value in enumerate(values):
        last = last * weight + (1 - weight) * value
        norm = norm * weight + (1 - weight)
        out[i] = last / norm
    return out


def mean_and_spread(
    curves: list[tuple[np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Curves of several seeds on a common step grid: ``(steps, mean, std)``.

    The grid starts where every seed has a point and ends at the longest seed's last step: a
    seed that stopped earlier (it reached its target return) counts with its last value, so
    the curve's end is the mean of the seeds' final returns, as printed.
    """
    start = max(steps[0] for steps, _ in curves)
    stop = max(steps[-1] for steps, _ in curves)
    if stop <= start:
        stop = start
    grid = np.linspace(start, stop, GRID_POINTS if stop > start else 1)
    stacked = np.stack([np.interp(grid, steps, values) for steps, values in curves])
    return grid, stacked.mean(axis=0), stacked.std(axis=0)


def by_env(runs: list[RunCurves]) -> list[tuple[str, list[RunCurves]]]:
    """Runs split by env id, in first-seen order: returns of different envs share no scale."""
    envs: dict[str, list[RunCurves]] = {}
    for run in runs:
        envs.setdefault(str(run.config.get("env_id") or NO_ENV), []).append(run)
    return list(envs.items())


def _short(label: str, limit: int = MAX_LABEL) -> str:
    return label if len(label) <= limit else label[: limit - 1].rstrip(", ") + "…"


def plot(
    runs: list[RunCurves], out: Path, *, smoothing: float = 0.6, title: str | None = None
) -> Path:
    """Draw the runs' curves (a row of panels per env, one panel per metric) and save ``out``
    as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # Files only: never open a window, work without a display.
    import matplotlib.pyplot as plt
    from matplotlib.ticker import EngFormatter

    tags = [RETURN_TAG] + ([SUCCESS_TAG] if any(SUCCESS_TAG in r.curves for r in runs) else [])
    names = {RETURN_TAG: "episode return", SUCCESS_TAG: "success rate"}
    envs = by_env(runs)
    fig, axes = plt.subplots(
        len(envs), len(tags), figsize=(6.4 * len(tags), 4.4 * len(envs)), squeeze=False
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    single = False  # a group of one run: drawn smoothed (bold) over its logged points (faint)
    outside: list[Any] = []  # a legend below the last row, outside the figure's layout
    for row, (env_id, env_runs) in zip(axes, envs, strict=True):
        for index, (label, members) in enumerate(group_runs(env_runs)):
            color = colors[index % len(colors)]
            for ax, tag in zip(row, tags, strict=True):
                curves = [
                    (r.curves[tag][0], smooth(r.curves[tag][1], smoothing))
                    for r in members
                    if tag in r.curves
                ]
                if not curves:
                    continue
                if len(curves) == 1:
                    single = True
                    steps, values = curves[0]
                    raw = next(r.curves[tag][1] for r in members if tag in r.curves)
                    ax.plot(steps, raw, color=color, alpha=0.2, linewidth=1)
                    ax.plot(steps, values, color=color, linewidth=2, label=_short(label))
                else:
                    grid, mean, std = mean_and_spread(curves)
                    ax.plot(grid, mean, color=color, linewidth=2, label=_short(label))
                    ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2)
        notes = [env_id] if len(envs) > 1 else []
        if len({repr(r.config.get("reward_scheme")) for r in env_runs}) > 1:
            # Returns are sums of each scheme's own rewards: a fair comparison is the success
            # rate.
            note = "each run's return is in its own reward scheme's units"
            if any(SUCCESS_TAG in r.curves for r in env_runs):
                note += ": compare success rates"
            notes.append(note)
        if notes:
            row[0].set_title("\n".join(notes), fontsize=9, color="0.35")
        for ax, tag in zip(row, tags, strict=True):
            if not any(tag in r.curves for r in env_runs):  # e.g. CartPole beside the dog
                ax.set_axis_off()
                ax.text(0.5, 0.5, f"no {names[tag]} in {env_id}", ha="center", color="0.5")
                continue
            ax.set_xlabel("env steps")
            ax.set_ylabel(names[tag])
            ax.xaxis.set_major_formatter(EngFormatter(sep=""))
            ax.grid(True, alpha=0.3)
            if tag == SUCCESS_TAG:
                ax.set_ylim(-0.02, 1.02)
        entries = row[0].get_legend_handles_labels()[1]
        if len(entries) > 4 or any(len(e) > 45 for e in entries):  # below: not over the curves
            below = (0.0, -0.2)  # under the axis label; in columns of at most 6 entries
            legend = row[0].legend(
                loc="upper left", bbox_to_anchor=below, fontsize=9, frameon=False,
                ncol=math.ceil(len(entries) / 6),
            )  # fmt: skip
            # Below the last row the saved image grows to hold it (savefig's extra artists);
            # above another row, the layout makes room.
            if env_id == envs[-1][0]:
                legend.set_in_layout(False)
                outside.append(legend)
        else:
            row[0].legend(loc="best", fontsize=9, frameon=False)
    env_ids = [env_id for env_id, _ in envs if env_id != NO_ENV]
    heading = title or ", ".join(env_ids) or "learning curves"
    if single and smoothing > 0:
        heading += f"\n(bold: smoothed, --smooth {smoothing:g}; faint: as logged)"
    fig.suptitle(heading)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = [*fig.get_default_bbox_extra_artists(), *outside]  # (the title among the first)
    fig.savefig(out, dpi=110, bbox_inches="tight", bbox_extra_artists=extra)
    plt.close(fig)
    return out


def run(args: argparse.Namespace) -> int:
    if args.out.suffix.lower() != ".png":
        raise CLIError(f"--out must be a .png file, got {args.out}")
    if not (0 <= args.smooth < 1) or math.isnan(args.smooth):
        raise CLIError(f"--smooth must be in [0, 1), got {args.smooth}")
    check_writable(args.out, "the plot", make_folder=True)
    runs, skipped = read_runs(args.runs)
    plot(runs, args.out, smoothing=args.smooth, title=args.title)
    envs = by_env(runs)
    groups = [(env_id, group) for env_id, env_runs in envs for group in group_runs(env_runs)]
    runs_text = f"{len(runs)} run{'s' if len(runs) != 1 else ''}"
    groups_text = f"{len(groups)} group{'s' if len(groups) != 1 else ''}"
    envs_text = f", {len(envs)} envs" if len(envs) > 1 else ""
    print(f"rl plot: wrote {args.out} ({runs_text} in {groups_text}{envs_text})")
    for env_id, (label, members) in groups:
        # The last logged point (the mean over seeds), not the smoothed curve's end.
        final = float(np.mean([m.curves[RETURN_TAG][1][-1] for m in members]))
        where = f"{env_id}: " if len(envs) > 1 else ""
        print(f"  {where}{_short(label)}: last logged return {round(final, 3) + 0.0:+.3f}")
    for reason in skipped:
        print(f"  left out: {reason}")
    return 0
