"""``rl eval PATH``: evaluate a trained policy deterministically over whole episodes.

``PATH`` is a run directory (its ``latest.pt``: the weights training ended with, which
``rl train`` evaluated with the same seed) or a checkpoint file. With
``--env`` the policy is evaluated in another env with the same spaces (e.g. trained on
sandbox/CartPole-v1, evaluated on Gymnasium's CartPole-v1). Checkpoints are read with
``torch.load(weights_only=True)``: a crafted pickle is refused, never run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rl.checkpoint import CheckpointError, load_checkpoint
from rl.cli import CLIError, check_writable, nonempty, seed_number, whole_number
from rl.cli.train_cmd import check_env_id, load_algo, register_envs
from rl.device import DEVICE_CHOICES, resolve_device
from rl.runs import find_checkpoint, read_json, write_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="evaluate a run or checkpoint (deterministic policy)",
        description="Evaluate a trained policy deterministically: mean ± std return, episode "
        "length and, where the env reports it, success rate. Writes eval.json into a run "
        "directory (not for --env another env, --seed another seed than its evaluation's, nor "
        "over an evaluation of more episodes: those results are printed only).",
    )
    parser.add_argument(
        "path",
        metavar="PATH",
        help="a run directory (its checkpoints/latest.pt, the weights training ended with) or a "
        ".pt checkpoint (e.g. RUN/checkpoints/best.pt)",
    )
    parser.add_argument(
        "--env", type=nonempty, metavar="ID", help="evaluate in this env (same spaces)"
    )
    parser.add_argument(
        "--episodes", type=whole_number, default=100, metavar="N", help="default 100"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--device", default="cpu", metavar="|".join(DEVICE_CHOICES), help="default cpu"
    )
    parser.add_argument(
        "--seed", type=seed_number, metavar="S", help="env seed (default: the run's)"
    )
    parser.set_defaults(run=run)


def load(path: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint file behind ``path`` and its (safely loaded) contents."""
    try:
        checkpoint_path = find_checkpoint(path)
        return checkpoint_path, load_checkpoint(checkpoint_path)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None


def policy_env(
    checkpoint: dict[str, Any], where: str | Path, env_id: str | None = None
) -> tuple[str, str | None, dict[str, Any]]:
    """The env to run a checkpoint's policy in: ``(env id, the id it was trained in, the run's
    env arguments)``. The env is ``env_id``, or the one it was trained in; the run's env
    arguments (e.g. its reward scheme) come along only when it is that env, whose they are.

    Raises:
        CLIError: no env is known (pass ``--env``), or the id names no env.
    """
    config = checkpoint.get("config") or {}
    trained_env = checkpoint.get("env_id") or config.get("env_id")
    chosen = env_id or trained_env
    if not chosen:
        raise CLIError(f"{where} does not say which env it was trained in; pass --env ID")
    register_envs()
    check_env_id(chosen)
    own = dict(config.get("env_kwargs") or {}) if chosen == trained_env else {}
    return chosen, trained_env, own


def load_policy(module: Any, checkpoint: dict[str, Any], where: str | Path, device: Any) -> Any:
    """``module.load_policy(checkpoint, device)``, or a CLIError naming ``where``."""
    try:
        return module.load_policy(checkpoint, device)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CLIError(f"cannot load the policy in {where}: {exc}") from None


def check_spaces(checkpoint: dict[str, Any], env_id: str, env_kwargs: dict[str, Any]) -> None:
    """A CLIError unless ``env_id``'s spaces are the ones the policy was trained on."""
    import gymnasium

    from agents.base import check_space_spec
    from rl.vector import make_vector_env

    if "spaces" not in checkpoint:
        return  # nothing to compare with; load_policy will complain if it cannot cope
    try:
        env = make_vector_env(env_id, 1, "cpu", env_kwargs=env_kwargs)
    except (ValueError, TypeError, gymnasium.error.Error) as exc:
        raise CLIError(f"cannot make {env_id} with {env_kwargs}: {exc}") from None
    try:
        check_space_spec(
            checkpoint["spaces"], env.single_observation_space, env.single_action_space, env_id
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    finally:
        env.close()


def run(args: argparse.Namespace) -> int:
    from rl.evaluation import evaluate

    register_envs()
    if args.episodes < 1:
        raise CLIError(f"--episodes must be >= 1, got {args.episodes}")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    checkpoint_path, checkpoint = load(args.path)
    if checkpoint.get("algo") is None:
        raise CLIError(
            f"{checkpoint_path} does not say which algorithm wrote it (no 'algo' entry); "
            "rl eval reads the checkpoints rl train writes"
        )
    module = load_algo(str(checkpoint.get("algo")))
    config = checkpoint.get("config") or {}
    env_id, trained_env, env_kwargs = policy_env(checkpoint, checkpoint_path, args.env)
    check_spaces(checkpoint, env_id, env_kwargs)
    policy = load_policy(module, checkpoint, checkpoint_path, device)
    # eval.json is the run's result in its own env (another env's is printed only), in the
    # run's folder however PATH named it (the run, or its checkpoints/ folder).
    run_dir = None
    unsaved = None  # why eval.json cannot be written (a read-only copy of a run)
    if Path(args.path).is_dir() and env_id == trained_env:
        parent = checkpoint_path.parent
        run_dir = parent.parent if parent.name == "checkpoints" else parent
        try:
            check_writable(run_dir / "eval.json", "the run's evaluation")
        except CLIError as exc:
            run_dir, unsaved = None, str(exc)
    seed = args.seed if args.seed is not None else int(config.get("seed", 0))
    saved_eval: dict[str, Any] = {}
    if run_dir is not None:
        # eval.json is the evaluation rl train printed, under its seed (the run's, or a
        # multi-seed group's shared one): another seed's result is printed only.
        saved_eval = _read_evaluation(run_dir / "eval.json")
        own = saved_eval.get("seed")
        if not isinstance(own, int) or isinstance(own, bool):
            own = int(config.get("seed", 0))
        if seed != own:
            run_dir, unsaved = (
                None,
                f"eval.json holds an evaluation with seed {own}, this used {seed}",
            )
    result = evaluate(
        policy.act, env_id, episodes=args.episodes, device=device, seed=seed, env_kwargs=env_kwargs
    )
    data = result.record(
        algo=checkpoint.get("algo"), checkpoint=str(checkpoint_path),
        global_step=checkpoint.get("global_step"), seed=seed, env_kwargs=env_kwargs,
        trained_env_id=trained_env,
    )  # fmt: skip
    kept = _why_kept(saved_eval, data) if run_dir is not None else None
    saved = run_dir is not None and kept is None
    if saved:
        # The checkpoint as the run folder names it, so a copy of the folder names its own.
        within = checkpoint_path.resolve().relative_to(run_dir.resolve())
        # What else a run wrote there (a fit's validation metrics) stays beside it.
        write_json(run_dir / "eval.json", {**saved_eval, **data, "checkpoint": within.as_posix()})
    if args.json:
        print(json.dumps(data, sort_keys=True))
        return 0
    # A supervised fit's checkpoint (behaviour cloning) is of its best epoch, not of env steps.
    trained = (
        f"epoch {checkpoint['epoch']}"
        if "epoch" in checkpoint
        else f"{data['global_step']:,} steps"
    )
    print(f"{checkpoint_path} ({data['algo']}, {trained}) on {env_id}:")
    print(
        f"  mean return {result.mean_return:.2f} ± {result.std_return:.2f} over "
        f"{result.episodes} episodes (min {min(result.returns):.2f}, max {max(result.returns):.2f})"
    )
    print(f"  mean episode length {result.mean_length:.1f}")
    if result.success_rate is not None:
        print(f"  success rate {result.success_rate:.1%}")
    bar = data["solved_thresholds"]
    if bar:
        solved = result.meets(bar)
        parts = []
        if "mean_return" in bar:
            parts.append(f"mean return >= {bar['mean_return']:g}")
        if "success_rate" in bar:
            parts.append(f"success rate >= {bar['success_rate']:.0%}")
        print(f"  {'solved' if solved else 'not solved'} (bar: {', '.join(parts)})")
    if saved:
        print(f"  saved in {run_dir / 'eval.json'}")
    elif unsaved is not None:
        print(f"  not saved: {unsaved}")
    elif run_dir is not None:
        print(f"  {run_dir / 'eval.json'} kept: it holds {kept}")
    return 0


def _read_evaluation(path: Path) -> dict[str, Any]:
    """The run's eval.json, or ``{}`` where there is none (or it is unreadable)."""
    try:
        saved = read_json(path)
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def _why_kept(saved: dict[str, Any], data: dict[str, Any]) -> str | None:
    """Why ``data`` may not take the place of the ``saved`` evaluation (``None``: it may): a
    quick look (``rl eval RUN --episodes 3``) does not overwrite the run's 100-episode result,
    nor an evaluation replace what a run wrote beside its own (behaviour cloning's comparison
    with the expert and a random dog). An eval.json without an evaluation (a fit's validation
    metrics alone) takes the evaluation beside them."""
    extra = sorted(set(saved) - set(data))
    # An evaluation that rl train or rl eval did not record (theirs name trained_env_id); the
    # keys of a file without one (a fit's validation metrics) are kept beside the new one.
    if extra and "episodes" in saved and "trained_env_id" not in saved:
        return (
            f"more than an evaluation ({', '.join(extra[:4])}{', ...' if len(extra) > 4 else ''})"
        )
    try:
        if int(saved.get("episodes", 0)) > int(data["episodes"]):
            return "an evaluation of more episodes"
    except (ValueError, TypeError):
        pass  # unreadable: write it
    return None
