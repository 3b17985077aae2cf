"""``rl train``: train an agent; with no arguments, PPO on sandbox/DogTraining-v0 until solved.

``--set KEY=VALUE`` sets a field of the algorithm's ``Config`` (``learning_rate=3e-4``) or, for
keys the env's constructor takes, an env argument (``reward_scheme=treats``, ``layout=random``).
Every user error is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from rl.checkpoint import CheckpointError
from rl.cli import (
    EXIT_INTERRUPTED,
    CLIError,
    check_folder,
    nonempty,
    note_made_folder,
    parse_env_value,
    seed_number,
    whole_number,
)
from rl.config import (
    config_from_dict,
    field_types,
    parse_overrides,
    replace_config,
    resume_config,
)
from rl.device import DEVICE_CHOICES, resolve_device, resolve_threads
from rl.evaluation import solved_thresholds
from rl.runs import (
    RUNS_ROOT,
    RunInUse,
    TrainingDiverged,
    default_run_dir,
    describe_os_error,
    load_resume_checkpoint,
    refuse_another_run_in,
    run_folder_lock,
    stop_on_interrupt,
)

DEFAULT_ENV = "sandbox/DogTraining-v0"
DEFAULT_ALGO = "ppo"
ALGO_CHOICES = ("ppo", "a2c", "dqn")
# Constructor arguments that the vector-env machinery sets itself, never ``--set``.
_RESERVED_ENV_ARGS = {
    "self",
    "num_envs",
    "device",
    "dtype",
    "render_mode",
    "validate_actions",
}


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an agent (default: PPO on sandbox/DogTraining-v0)",
        description="Train an agent and write a run folder (TensorBoard events, config.json, "
        "checkpoints, eval.json). With no arguments: PPO on sandbox/DogTraining-v0 until it "
        "is house-trained (well under a minute on a laptop CPU).",
        epilog="examples:  rl train --env sandbox/CartPole-v1 --seed 2 | "
        "rl train --set reward_scheme=treats | rl train --set learning_rate=3e-4 | "
        "rl train --resume runs/<run>",
    )
    parser.add_argument(
        "--env", type=nonempty, metavar="ID", help=f"environment id (default {DEFAULT_ENV})"
    )
    parser.add_argument("--algo", choices=ALGO_CHOICES, help=f"algorithm (default {DEFAULT_ALGO})")
    parser.add_argument("--seed", type=seed_number, metavar="S", help="random seed (default 1)")
    parser.add_argument(
        "--seeds",
        metavar="SPEC",
        help="train one PPO agent per seed together in one process (e.g. 0-63 or 0,1,5): a run "
        "folder per seed and a summary JSON (agents/multiseed.py)",
    )
    parser.add_argument(
        "--device", metavar="|".join(DEVICE_CHOICES), help="where to train (default auto)"
    )
    parser.add_argument(
        "--num-envs", type=whole_number, metavar="N", help="environments stepped together"
    )
    parser.add_argument(
        "--total-timesteps",
        type=whole_number,
        metavar="N",
        help="env steps to train for (300000, 300_000 or 3e5); with --resume, the total to "
        "reach, not the steps to add",
    )
    parser.add_argument(
        "--run-dir",
        type=nonempty,
        metavar="DIR",
        help="run folder (default runs/<name>); with --seeds, the folder the group's and the "
        "seeds' run folders go in (default runs)",
    )
    parser.add_argument(
        "--resume",
        type=nonempty,
        metavar="RUN_DIR",
        help="continue a run from its latest.pt (or every seed of a --seeds run from its group "
        "folder, runs/<env>__ppo-seeds__...)",
    )
    parser.add_argument(
        "--resume-if-exists",
        action="store_true",
        help="with --run-dir: continue from its latest.pt when there is one, else start "
        "fresh (the command torchrun --max-restarts re-runs after a crash)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel over torchrun's ranks (PPO, A2C): torchrun --nproc-per-node N "
        "-m rl train --distributed ...; --num-envs is per rank (docs/DISTRIBUTED.md)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a Config field (learning_rate=3e-4) or an env argument (reward_scheme=treats); "
        "repeatable",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--capture-video",
        action="store_true",
        help="after training, record one episode per snapshot (0 %%, 10 %%, ..., 100 %%) as "
        "GIFs in RUN/videos/ and as animations in TensorBoard's Images tab",
    )
    parser.set_defaults(run=run)


def load_algo(name: str) -> ModuleType:
    """``agents.<name>``, or a CLIError that says why it cannot be used."""
    from agents import get_algo

    try:
        return get_algo(name)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    except ImportError as exc:
        raise CLIError(
            f"algorithm {name!r} is not available: agents/{name}.py could not be imported ({exc})"
        ) from None


def register_envs() -> None:
    try:
        import envs  # noqa: F401  (registers the sandbox/ ids)
    except ImportError as exc:
        raise CLIError(f"the sandbox environments could not be imported ({exc})") from None


def check_env_id(env_id: str) -> None:
    from rl.vector import env_spec

    try:
        env_spec(env_id)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def env_arg_names(env_id: str) -> list[str]:
    """Constructor arguments ``--set`` may give the env (what ``make_vector_env`` builds)."""
    return [p.name for p in env_parameters(env_id)]


def env_parameters(env_id: str) -> list[inspect.Parameter]:
    """The constructor parameters behind :func:`env_arg_names`, with their defaults."""
    from rl.vector import env_parameters as all_parameters

    return [p for p in all_parameters(env_id) or [] if p.name not in _RESERVED_ENV_ARGS]


def split_overrides(
    items: list[str], config_cls: type, env_id: str, *, other_algos: bool = True
) -> tuple[dict[str, str], dict[str, Any]]:
    """``--set`` items → (Config field overrides, env constructor arguments); ``other_algos``:
    a field of another algorithm's Config may be suggested with ``--algo``."""
    try:
        overrides = parse_overrides(items)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    fields = field_types(config_cls)
    env_args = env_arg_names(env_id)
    cfg_overrides: dict[str, str] = {}
    env_kwargs: dict[str, Any] = {}
    for key, value in overrides.items():
        if key in fields:
            cfg_overrides[key] = value
        elif key in env_args:
            env_kwargs[key] = parse_env_value(value)
        else:
            this = config_cls.__module__.rsplit(".", 1)[-1]
            owners = [a for a in _algos_with_field(key) if a != this]
            if owners:
                fix = (
                    f"pass --algo {owners[0]} to train with it, or drop it"
                    if other_algos
                    else "--seeds trains PPO only: drop it"
                )
                raise CLIError(
                    f"--set {key} is a field of {' and '.join(a.upper() for a in owners)}, not "
                    f"of {this.upper()}: {fix}"
                )
            close = difflib.get_close_matches(key, [*fields, *env_args], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise CLIError(
                f"unknown --set key {key!r}: {hint}Config fields are "
                f"{', '.join(sorted(fields))}; {env_id} arguments are "
                f"{', '.join(env_args) or '(none)'}"
            )
    return cfg_overrides, env_kwargs


def _algos_with_field(key: str) -> list[str]:
    """The algorithms whose Config has the field ``key`` (for a --set meant for another)."""
    from agents import ALGOS, get_algo

    return [a for a in ALGOS if key in field_types(get_algo(a).Config)]


def check_env_kwargs(env_id: str, env_kwargs: dict[str, Any], module: ModuleType) -> None:
    """Build the env once with these arguments and take one step, so a bad value fails here,
    in one line (``--set g=abc`` for Pendulum fails only in its step), and so does an env whose
    actions the algorithm cannot take (DQN on Box actions): before the header line says
    training started, and before the run folder holds anything."""
    import gymnasium
    import torch

    from rl.vector import make_vector_env

    try:
        env = make_vector_env(env_id, 1, "cpu", env_kwargs=env_kwargs)
    except (ValueError, TypeError, gymnasium.error.Error) as exc:
        raise CLIError(f"cannot make {env_id} with {env_kwargs}: {exc}") from None
    from agents.base import space_spec

    try:
        if hasattr(module, "check_discrete"):
            module.check_discrete(env.single_action_space, env_id)
        try:  # spaces no agent takes (actions from 1): said before the header, with the env
            space_spec(env.single_observation_space, env.single_action_space)
        except ValueError as exc:
            raise CLIError(f"{env_id}: {exc}") from None
        if env_kwargs:  # (the env's defaults are its own to get right)
            env.reset(seed=0)
            try:
                env.step(torch.as_tensor(env.action_space.sample()))
            except Exception as exc:  # whatever the env raises: its arguments are the suspects
                raise CLIError(
                    f"{env_id} with {env_kwargs} fails in its first step: "
                    f"{type(exc).__name__}: {exc}"
                ) from None
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    finally:
        env.close()


def require_distributed(module: ModuleType) -> None:
    """A CLIError unless the algorithm trains data-parallel (its Config has ``distributed``)."""
    if "distributed" not in field_types(module.Config):
        algo = module.__name__.rsplit(".", 1)[-1]
        raise CLIError(
            f"{algo.upper()} trains in one process (its replay buffer and target network are "
            "not data-parallel here): --distributed works with --algo ppo and --algo a2c; "
            "drop --distributed and torchrun for this algorithm"
        )


# Config fields that have a flag of their own: --set may not give them a second value.
_FLAG_OF = {
    "env_id": "--env",
    "seed": "--seed",
    "device": "--device",
    "num_envs": "--num-envs",
    "total_timesteps": "--total-timesteps",
    "run_dir": "--run-dir",
    "progress": "--no-progress",
    "distributed": "--distributed",
}


def flag_overrides(args: argparse.Namespace, cfg_overrides: dict[str, Any]) -> dict[str, Any]:
    """The config changes the flags ask for, with ``cfg_overrides`` (from ``--set``) added. A
    field given both ways is an error, even with equal values: one of the two is a slip."""
    for key in cfg_overrides:
        if key in ("env_id", "distributed"):
            raise CLIError(f"--set {key}=... is not read here; pass {_FLAG_OF[key]} instead")
    flags = {
        "seed": args.seed,
        "device": args.device,
        "num_envs": args.num_envs,
        "total_timesteps": args.total_timesteps,
        "run_dir": args.run_dir,
        "progress": False if args.no_progress else None,
    }
    overrides: dict[str, Any] = {k: v for k, v in flags.items() if v is not None}
    for key in overrides.keys() & cfg_overrides.keys():
        raise CLIError(
            f"{_FLAG_OF[key]} and --set {key}={cfg_overrides[key]} both set {key}; give one"
        )
    return {**overrides, **cfg_overrides}


def check_config_device(cfg: Any) -> None:
    """A CLIError unless the config's device (``--device`` or ``--set device=``) and CPU thread
    count (``num_threads`` or ``RL_NUM_THREADS``) are usable: said before the header line."""
    try:
        resolve_threads(resolve_device(cfg.device), cfg.num_threads)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def build_config(args: argparse.Namespace, module: ModuleType, *, name_run: bool = True) -> Any:
    """The algorithm's Config from the env's preset, the flags and ``--set``; with
    ``name_run``, a run folder made new under ``runs/`` unless one was named."""
    env_id = DEFAULT_ENV if args.env is None else args.env
    check_env_id(env_id)
    cfg_overrides, env_kwargs = split_overrides(
        args.set, module.Config, env_id, other_algos=getattr(args, "seeds", None) is None
    )
    overrides = flag_overrides(args, cfg_overrides)
    if args.distributed:
        require_distributed(module)
        overrides["distributed"] = True
    try:
        cfg = module.default_config(env_id, **overrides)
        if env_kwargs:
            if "env_kwargs" in cfg_overrides:
                both = sorted(cfg.env_kwargs.keys() & env_kwargs.keys())
                if both:
                    raise CLIError(
                        f"{', '.join(both)} given twice: in --set env_kwargs=... and as --set "
                        f"{both[0]}=...; give each env argument once"
                    )
            cfg = replace_config(cfg, {"env_kwargs": {**cfg.env_kwargs, **env_kwargs}})
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    check_config_device(cfg)
    check_env_kwargs(env_id, cfg.env_kwargs, module)
    if cfg.run_dir is None and name_run:
        # Made now, under a name no other training holds (two started in the same second get
        # <name> and <name>-2); torchrun's other ranks write nothing, so they only name it.
        make = cfg.write_run and os.environ.get("RANK", "0") == "0"
        if make:
            check_folder(RUNS_ROOT, "the runs folder")
        folder = default_run_dir(env_id, args.algo or DEFAULT_ALGO, cfg.seed, make=make)
        if make:
            note_made_folder(folder)
        cfg = replace_config(cfg, {"run_dir": str(folder)})
    return cfg


def resume_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The config changes a resume asks for: ``--set`` and the flags that map to fields. The
    run folder is the one resumed: ``--run-dir`` or ``--set run_dir`` elsewhere is an error."""
    try:
        cfg_overrides = parse_overrides(args.set)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if "run_dir" in cfg_overrides or (args.run_dir is not None and args.run_dir != args.resume):
        raise CLIError(
            f"--resume {args.resume} continues that run in its own folder; drop --run-dir and "
            "--set run_dir (to branch a run elsewhere, copy its folder first)"
        )
    return {k: v for k, v in flag_overrides(args, cfg_overrides).items() if k != "run_dir"}


def build_resume_config(args: argparse.Namespace) -> tuple[ModuleType, Any]:
    """The checkpoint's algorithm and config, with the flags a resume may change."""
    try:
        checkpoint = load_resume_checkpoint(args.resume)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    algo = str(checkpoint.get("algo"))
    if args.algo is not None and args.algo != algo:
        raise CLIError(f"{args.resume} is a {algo} run; drop --algo or pass --algo {algo}")
    module = load_algo(algo)
    args.resumed_from_step = int(checkpoint.get("global_step", 0))  # for the summary
    if args.env is not None and args.env != checkpoint.get("env_id"):
        raise CLIError(f"{args.resume} trains on {checkpoint.get('env_id')}, not {args.env}")
    overrides = resume_overrides(args)
    fields = field_types(module.Config)
    env_id = checkpoint.get("env_id") or (checkpoint.get("config") or {}).get("env_id")
    saved_kwargs = (checkpoint.get("config") or {}).get("env_kwargs") or {}
    for key in list(overrides):
        if key not in fields and env_id and key in env_arg_names(env_id):
            if key in saved_kwargs and parse_env_value(overrides[key]) == saved_kwargs[key]:
                del overrides[key]  # the run's own value: a restart's repeated command
                continue
            kwargs = saved_kwargs
            raise CLIError(
                f"cannot resume {args.resume} with --set {key}: a run's env arguments are "
                f"fixed (it trains with {kwargs or 'the defaults'}); train a new run for another"
            )
    try:
        cfg = config_from_dict(module.Config, checkpoint["config"])
        if args.distributed:
            require_distributed(module)
            overrides["distributed"] = True
        elif getattr(cfg, "distributed", False):
            ranks = int(checkpoint.get("world_size", 1))
            if ranks > 1:  # its envs and random streams are per rank
                raise CLIError(
                    f"{args.resume} trained over {ranks} ranks: continue it with "
                    f"torchrun --nproc-per-node {ranks} -m rl train --distributed --resume "
                    f"{args.resume} (the same number of ranks)"
                )
            overrides["distributed"] = False  # one rank: a plain run, bit for bit
        cfg = replace_config(cfg, {**overrides, "run_dir": str(args.resume)})
        # What module.train refuses, refused before the "Resuming ..." line says otherwise.
        resume_config(cfg, checkpoint["config"], getattr(module, "RESUMABLE_FIELDS", ()))
    except (ValueError, KeyError) as exc:
        raise CLIError(f"cannot resume {args.resume}: {exc}") from None
    check_config_device(cfg)
    threads = checkpoint.get("torch_threads")
    now = resolve_threads(resolve_device(cfg.device), cfg.num_threads)
    if threads is not None and threads != now and os.environ.get("RANK", "0") == "0":
        print(
            f"note: {args.resume} trained on {threads} CPU thread(s), this resume uses {now}: it "
            f"continues, but not bit for bit (--set num_threads={threads} keeps the run's)",
            file=sys.stderr,
        )
    # What the job trains in whole iterations of every rank's steps (the algorithms'
    # job_iterations; the process group does not exist yet): a total below one still trains one.
    from agents.base import refuse_a_smaller_total

    ranks = launched_ranks(args.distributed)
    try:
        refuse_a_smaller_total(
            cfg, args.resumed_from_step, args.resume, ranks, name="--total-timesteps"
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return module, cfg


def launched_ranks(distributed: bool) -> int:
    """The ranks a ``--distributed`` job runs on (torchrun's ``WORLD_SIZE``; read from the
    environment, as the process group may not exist yet or any more), else 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) if distributed else 1


def run(args: argparse.Namespace) -> int:
    register_envs()
    world = os.environ.get("WORLD_SIZE", "1")
    if world.isdigit() and int(world) > 1 and not args.distributed:
        # Each rank would train its own copy into the same folder (the second finds it locked).
        raise CLIError(
            f"launched by torchrun with {world} ranks but without --distributed: add "
            "--distributed to train one run over the ranks (docs/DISTRIBUTED.md), or run rl "
            "train without torchrun"
        )
    if args.distributed:
        from rl.distributed import missing_torchrun

        problem = missing_torchrun()
        if problem:  # before the header line says training started
            raise CLIError(problem)
    if args.num_envs is not None and args.num_envs < 1:
        raise CLIError(f"--num-envs must be >= 1, got {args.num_envs}")
    if args.total_timesteps is not None and args.total_timesteps < 1:
        raise CLIError(f"--total-timesteps must be >= 1, got {args.total_timesteps}")
    if args.device is not None:
        try:
            resolve_device(args.device)
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if args.resume is not None:
        from agents import multiseed

        if multiseed.is_group(args.resume):
            return resume_seeds(args)
    if args.seeds is not None:
        return run_seeds(args)
    if args.resume_if_exists and (args.resume is not None or args.run_dir is None):
        raise CLIError(
            "--resume-if-exists needs --run-dir DIR (and no --resume): it continues DIR "
            "when DIR/checkpoints/latest.pt exists and starts DIR fresh otherwise"
        )
    # torchrun sets RANK; only rank 0 talks (and writes), so N ranks do not print N copies.
    rank0 = os.environ.get("RANK", "0") == "0"
    with contextlib.ExitStack() as held:

        def hold(folder: str | Path) -> None:
            """Lock the run folder from before its checkpoint is read until eval.json is
            written: a second training into it meanwhile is refused, not interleaved."""
            if rank0:
                check_folder(folder, "the run folder")  # made here: gone if nothing is written
                try:
                    held.enter_context(run_folder_lock(folder))
                except RunInUse as exc:
                    raise CLIError(str(exc)) from None

        if args.resume_if_exists:
            hold(args.run_dir)
            if (Path(args.run_dir) / "checkpoints" / "latest.pt").is_file():
                args.resume = args.run_dir
        if args.resume is not None:
            if (Path(args.resume) / "checkpoints" / "latest.pt").is_file():
                hold(args.resume)  # (no .lock left in a folder that holds no run)
            module, cfg = build_resume_config(args)
        else:
            module = load_algo(args.algo or DEFAULT_ALGO)
            cfg = build_config(args, module)
            if cfg.write_run:
                hold(cfg.run_dir)
            if rank0:  # the folder is rank 0's: other ranks only name it, by their own clock
                refuse_a_used_run_dir(cfg.run_dir)
        return _train_and_report(args, module, cfg, rank0)


def _train_and_report(args: argparse.Namespace, module: ModuleType, cfg: Any, rank0: bool) -> int:
    """Train (or continue) one run from its config and print the summary, as ``rl train``."""
    algo = module.__name__.rsplit(".", 1)[-1]
    action = "Resuming" if args.resume else "Training"
    if rank0:
        device = resolve_device(cfg.device)
        envs = f"{cfg.num_envs} env{'s' if cfg.num_envs != 1 else ''}"
        what = f"{envs}, {planned_steps(cfg)}, device {device}"
        if args.distributed:  # what rl.distributed.init will pick: the same rule
            ranks = os.environ.get("WORLD_SIZE", "1")
            backend = "nccl" if device.type == "cuda" else "gloo"
            what = (
                f"{envs} per rank, {cfg.total_timesteps:,} steps in all, {ranks} rank(s) on "
                f"{device.type} over {backend}"
            )
        print(f"{action} {algo.upper()} on {cfg.env_id} (seed {cfg.seed}, {what}) → {cfg.run_dir}")
    try:
        # Ctrl-C stops after the iteration, checkpointed; ranks of a distributed run would
        # each stop at their own iteration, so they keep the plain interrupt.
        with contextlib.nullcontext() if args.distributed else stop_on_interrupt():
            result = module.train(cfg, resume=args.resume)
    except TrainingDiverged as exc:
        print(
            f"rl train: {exc} ({cfg.run_dir}/checkpoints/latest.pt). A --resume keeps the run's "
            "settings: to train with others, start a new --run-dir",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:  # e.g. a resume that changes a fixed field
        raise CLIError(str(exc)) from None
    except KeyboardInterrupt:
        latest = Path(cfg.run_dir) / "checkpoints" / "latest.pt"
        if rank0 and latest.is_file():  # torchrun interrupts every rank: one hint
            hint = resume_hint(
                latest, cfg.run_dir, distributed=args.distributed, if_exists=args.resume_if_exists
            )
            print(f"\n{hint}", file=sys.stderr)
        raise
    except OSError as exc:  # a full disk, a folder made read-only: the last checkpoint stands
        print(f"rl train: error: {describe_os_error(exc)}", file=sys.stderr)
        latest = Path(cfg.run_dir) / "checkpoints" / "latest.pt"
        if rank0 and latest.is_file():
            hint = resume_hint(
                latest, cfg.run_dir, distributed=args.distributed, if_exists=args.resume_if_exists
            )
            print(hint, file=sys.stderr)
        return 1
    except RuntimeError as exc:  # e.g. --distributed without torchrun
        if "torchrun" not in str(exc):
            raise
        raise CLIError(str(exc)) from None
    if rank0:
        if getattr(args, "capture_video", False) and result.run_dir is not None:
            _capture_videos(result.run_dir)
        print_summary(result, cfg, getattr(args, "resumed_from_step", None))
    # Stopped by Ctrl-C (checkpointed, evaluated): not the run asked for, so a script's
    # `rl train ... && next` stops here too, as after any interrupt.
    return EXIT_INTERRUPTED if result.metrics.get("stopped_on_request") else 0


def run_seeds(args: argparse.Namespace) -> int:
    """``--seeds``: K PPO agents trained together (agents.multiseed), one run folder each."""
    from agents import multiseed

    if args.resume is not None or args.resume_if_exists or args.distributed:
        raise CLIError(
            "--seeds cannot be combined with --resume (of a single run), --resume-if-exists or "
            "--distributed: continue a multi-seed run with rl train --resume <its group folder, "
            "runs/<env>__ppo-seeds__...>, or one seed's run folder on its own with --resume"
        )
    if (args.algo or DEFAULT_ALGO) != "ppo":
        raise CLIError(f"--seeds trains PPO only, not {args.algo}; drop --algo or pass --algo ppo")
    if args.seed is not None:
        raise CLIError("--seeds gives each agent its own seed: drop --seed")
    try:
        seeds = multiseed.parse_seeds(args.seeds)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    # --run-dir names the folder the group goes in; each seed's run folder is made there.
    root, args.run_dir = args.run_dir or RUNS_ROOT, None
    cfg = build_config(args, load_algo("ppo"), name_run=False)
    if cfg.write_run:
        check_folder(root, "the folder for the seeds' runs")
    try:
        seeds_cfg = multiseed.MultiSeedConfig(
            ppo=cfg,
            seeds=seeds,
            write_runs=cfg.write_run,
            runs_root=root,
            eval_episodes=cfg.eval_episodes,
            progress=cfg.progress,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    print(
        f"Training {len(seeds)} PPO agents on {cfg.env_id} (seeds {args.seeds}, {cfg.num_envs} "
        f"envs and {cfg.total_timesteps:,} steps each, device {resolve_device(cfg.device)}) "
        f"→ {root}/"
    )
    return _train_group(seeds_cfg, capture_video=args.capture_video)


def resume_seeds(args: argparse.Namespace) -> int:
    """``--resume GROUP``: continue a multi-seed run from its group folder's multiseed.pt."""
    from agents import multiseed

    if (
        args.algo not in (None, "ppo")
        or args.distributed
        or args.run_dir is not None
        or args.resume_if_exists
    ):
        raise CLIError(
            f"{args.resume} is a multi-seed PPO run: drop --algo, --run-dir, --distributed and "
            "--resume-if-exists"
        )
    try:
        cfg = multiseed.saved_config(args.resume, **resume_overrides(args))
        if args.seeds is not None and multiseed.parse_seeds(args.seeds) != cfg.seeds:
            raise ValueError(f"{args.resume} trains seeds {list(cfg.seeds)}, not {args.seeds}")
        if args.env is not None and args.env != cfg.ppo.env_id:
            raise ValueError(f"{args.resume} trains on {cfg.ppo.env_id}, not {args.env}")
    except (CheckpointError, ValueError, KeyError) as exc:
        raise CLIError(f"cannot resume {args.resume}: {exc}") from None
    print(
        f"Resuming {cfg.num_agents} PPO agents on {cfg.ppo.env_id} (seeds "
        f"{','.join(map(str, cfg.seeds))}, {cfg.ppo.total_timesteps:,} steps each, device "
        f"{resolve_device(cfg.ppo.device)}) → {args.resume}"
    )
    return _train_group(cfg, resume=args.resume, capture_video=args.capture_video)


def _train_group(cfg: Any, resume: str | None = None, *, capture_video: bool = False) -> int:
    """Train (or continue) a multi-seed group, reporting as a single run does: a divergence on
    stderr (exit 1), a bad resume as a CLI error, on Ctrl-C how to continue, and with
    ``capture_video`` each seed's snapshot videos."""
    from agents import multiseed

    try:
        with stop_on_interrupt():  # Ctrl-C stops after the iteration, checkpointed
            result = multiseed.train(cfg, resume=resume)
    except TrainingDiverged as exc:
        print(f"rl train: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. a resume that changes a fixed field
        raise CLIError(str(exc)) from None
    except KeyboardInterrupt as exc:
        group = getattr(exc, "group_dir", None) or resume  # this run's group (train made it)
        if group is not None and multiseed.is_group(group):
            print(f"\nto continue: rl train --resume {group}", file=sys.stderr)
        raise
    if capture_video:
        for run_dir in filter(None, result.run_dirs):
            _capture_videos(run_dir)
    print(multiseed.format_summary(result))
    return EXIT_INTERRUPTED if result.summary.get("stopped_on_request") else 0


def _capture_videos(run_dir: str | Path) -> None:
    """``--capture-video``: one episode per snapshot of the run, as GIFs in RUN/videos/."""
    from rl.cli.record_cmd import capture_run_videos

    videos = capture_run_videos(run_dir)
    print(f"Recorded {len(videos)} episode videos in {Path(run_dir) / 'videos'}")


def refuse_a_used_run_dir(run_dir: str | Path | None) -> None:
    """A CLIError if ``run_dir`` already holds a run (:func:`rl.runs.refuse_another_run_in`),
    in ``rl train``'s words."""
    if run_dir is None:
        return
    try:
        refuse_another_run_in(
            run_dir,
            hint=f"continue it with --resume {run_dir}, or train into a new folder (e.g. "
            f"--run-dir {run_dir}-2)",
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def resume_hint(
    latest: Path, run_dir: str | Path, *, distributed: bool = False, if_exists: bool = False
) -> str:
    """How to continue an interrupted run, and from which step: the steps trained after the
    last checkpoint (up to ``checkpoint_every`` iterations) are trained again. ``if_exists``:
    the command had ``--resume-if-exists``, so the same command continues it."""
    from rl.checkpoint import load_checkpoint

    if if_exists:
        command = "the same command (--resume-if-exists continues the run)"
    elif distributed:
        command = f"the same torchrun command with --resume {run_dir}"
    else:
        command = f"rl train --resume {run_dir}"
    try:
        step = int(load_checkpoint(latest).get("global_step", 0))
    except (CheckpointError, TypeError, ValueError):
        return f"to continue: {command}"
    return (
        f"to continue from the last checkpoint (step {step:,}; later steps are trained "
        f"again): {command}"
    )


def logdir_for(run_dir: str | Path) -> Path:
    """The folder to point TensorBoard at after a run: its parent where that is a folder of
    runs (``runs/``, or ``runs/lesson`` holding the other schemes) so the curves compare, else
    the run itself (``--run-dir /tmp/x`` should not make TensorBoard scan all of /tmp)."""
    run = Path(run_dir)
    parent = run.parent
    try:
        others = any(
            (sibling / "config.json").is_file() for sibling in parent.iterdir() if sibling != run
        )
    except OSError:
        others = False
    return parent if others or parent == Path(RUNS_ROOT) else run


def planned_steps(cfg: Any) -> str:
    """``"2,048 steps (--total-timesteps 3,000 in whole iterations of 1,024)"``: what the run
    will train, where whole iterations round ``total_timesteps`` down."""
    from agents.base import iteration_steps

    per = iteration_steps(cfg)
    total = cfg.total_timesteps
    if total % per == 0:
        return f"{total:,} steps"
    planned = cfg.num_iterations * per
    return f"{planned:,} steps (--total-timesteps {total:,} in whole iterations of {per:,})"


def print_summary(result: Any, cfg: Any, resumed_from: int | None = None) -> None:
    """The evaluation against the env's solved bar, and what to run next."""
    from rich.console import Console

    console = Console(soft_wrap=True)  # piped into a log: whole lines, never cut mid-word
    run_dir = result.run_dir or cfg.run_dir
    seconds = result.metrics.get("train_seconds")
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    if resumed_from is None:
        console.print(f"Trained {result.global_step:,} steps{took}.")
    else:
        console.print(
            f"Trained {result.global_step - resumed_from:,} steps{took}, from step "
            f"{resumed_from:,} to {result.global_step:,}."
        )
        if result.global_step == resumed_from and "target_reached_return" not in result.metrics:
            from agents.base import iteration_steps

            # Totals are counted in whole iterations: the next one ends this many steps on.
            ranks = launched_ranks(getattr(cfg, "distributed", False))
            step = iteration_steps(cfg, ranks)
            console.print(
                f"The run had trained its {resumed_from:,} steps already: --total-timesteps is "
                f"the total, so pass at least {resumed_from + step:,} to train on."
            )
    if result.metrics.get("stopped_on_request"):
        console.print(
            f"Stopped at your request (Ctrl-C), checkpointed at step {result.global_step:,}: "
            f"rl train --resume {run_dir} continues."
        )
    reached = result.metrics.get("target_reached_return")
    if reached is not None and getattr(cfg, "target_return", None) is not None:
        checked = getattr(cfg, "target_check_episodes", 0)
        how = f"training episodes averaged {reached:.1f}"
        if checked:
            how = f"{checked} deterministic episode{'s' * (checked > 1)} averaged {reached:.1f}"
            confidence = getattr(cfg, "target_confidence", 0.5)
            if confidence > 0.5 and checked > 1:  # (one episode has no spread to be sure of)
                how += f", above it at {confidence * 100:g}% confidence"
        console.print(f"Stopped early at the target return {cfg.target_return:g}: {how}.")
    evaluation = result.evaluation
    if evaluation is not None:
        bar = solved_thresholds(cfg.env_id, cfg.env_kwargs)
        line = (
            f"Evaluation ({evaluation.episodes} deterministic episodes): mean return "
            f"{evaluation.mean_return:.2f} ± {evaluation.std_return:.2f}"
        )
        if "mean_return" in bar:
            line += f" (solved at ≥ {bar['mean_return']:g})"
        rate = evaluation.success_rate
        if rate is not None:
            line += f", success rate {rate:.0%}"
            if "success_rate" in bar:
                line += f" (solved at ≥ {bar['success_rate']:.0%})"
        console.print(line)
        if bar:
            solved = evaluation.meets(bar)
            if solved:
                console.print("[bold green]Solved.[/]")
            elif reached is not None and getattr(cfg, "target_check_episodes", 0):
                console.print(
                    "[bold yellow]Not solved by this evaluation[/]: the stop's check, on other "
                    f"episodes, averaged {reached:.1f}: a policy at the bar passes one set of "
                    "episodes and not another"
                )
            else:
                console.print("[bold yellow]Not solved yet.[/]")
    console.print("Next:")
    console.print(
        f"  rl eval {run_dir}        # evaluate again (--json for a machine-readable line)"
    )
    console.print(f"  rl watch {run_dir}       # watch the agent in a window")
    console.print(f"  tensorboard --logdir {logdir_for(run_dir)}   # the learning curves")
