"""The ``rl`` command line: the face that composes ``rl``'s core, ``envs`` and ``agents``.

Each subcommand lives in its own module here with two functions, ``add_parser(subparsers)`` and
``run(args) -> int``; this module only builds the parser and dispatches. Unlike the rest of
``rl``, the CLI may import ``envs`` and ``agents``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

# Order is the order of `rl --help`.
COMMANDS = (
    "train",
    "eval",
    "watch",
    "play",
    "record",
    "plot",
    "envs",
    "check",
    "supervised",
)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class CLIError(Exception):
    """A user error: printed as one line with the exit code 2, no traceback."""


def parse_env_value(text: str) -> Any:
    """A ``--set`` env value: JSON where it parses (numbers, ``true``, dicts), else the text
    (``--set reward_scheme=treats``). Python's ``True``, ``False`` and ``None`` (any case) are
    the bools and None too: as text, ``"False"`` would be true. Text that opens as JSON (``{``,
    ``[``, ``"``) must parse: a brace left out is an error, not a preset name."""
    text = text.strip()
    word = text.lower()
    if word in ("true", "false"):
        return word == "true"
    if word in ("none", "null"):
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if text[:1] in ("{", "[", '"'):
            raise CLIError(
                f"--set value {text!r} is not valid JSON ({exc.msg} at character {exc.pos}); "
                """e.g. --set reward_scheme='{"relief_outdoors": 1, "on_sofa": -0.5}'"""
            ) from None
        return text


def seed_number(text: str) -> int:
    """A ``--seed`` value (argparse ``type``): an integer in ``[0, 2**63)``, what every seed
    consumer takes (torch, NumPy, the envs)."""
    from rl.config import MAX_INT, parse_int

    try:
        seed = parse_int(text, "seed")
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= seed <= MAX_INT:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**63), got {text!r}")
    return seed


def whole_number(text: str) -> int:
    """An integer written as 300000, 300_000 or 3e5 (argparse ``type``)."""
    from rl.config import parse_int

    try:
        return parse_int(text, "value")
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a whole number below 2**63, got {text!r}"
        ) from None


def nonempty(text: str) -> str:
    """A path or id flag's value (argparse ``type``): ``--env ''`` is a slip, not the default."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a value, got an empty string")
    return text


# Folders the checks below made for a command's output: (the folder, the outermost one made).
_MADE_FOLDERS: list[tuple[Path, Path]] = []


def _make_folder(folder: Path) -> None:
    """``folder.mkdir(parents=True)``, noting what it made for :func:`_remove_made_if_empty`."""
    outermost = None
    for path in (folder, *folder.parents):
        if path.exists():
            break
        outermost = path
    folder.mkdir(parents=True, exist_ok=True)
    if outermost is not None:
        _MADE_FOLDERS.append((folder, outermost))


def note_made_folder(folder: Path) -> None:
    """Have :func:`_remove_made_if_empty` remove ``folder`` (made by the command itself) too."""
    _MADE_FOLDERS.append((folder, folder))


def _remove_made_if_empty() -> None:
    """Remove the folders the checks made that the command left empty (it failed before writing
    anything), innermost first, so a mistyped flag leaves no empty ``runs/`` behind. A run
    folder holding nothing but its released lock counts as empty."""
    from rl.runs import LOCK_NAME

    while _MADE_FOLDERS:
        folder, outermost = _MADE_FOLDERS.pop()
        for path in (folder, *folder.parents):
            try:
                if [p.name for p in path.iterdir()] == [LOCK_NAME]:
                    (path / LOCK_NAME).unlink()
                path.rmdir()
            except OSError:  # it holds something, and so do its parents
                break
            if path == outermost:
                break


def check_writable(path: str | os.PathLike, what: str, *, make_folder: bool = False) -> None:
    """A CLIError unless a file can be written at ``path`` (its folder exists, or is made with
    ``make_folder``, and takes a new file): said before the work whose result it would hold."""
    import tempfile

    target = Path(path)
    if target.is_dir():
        raise CLIError(f"{what} {target} is a folder; expected a file name")
    folder = target.parent
    try:
        if make_folder:
            _make_folder(folder)
        elif not folder.is_dir():
            raise CLIError(f"cannot write {what} {target}: its folder {folder} does not exist")
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise CLIError(f"cannot write {what} {target}: {exc.strerror or exc}") from None


def check_folder(path: str | os.PathLike, what: str) -> None:
    """A CLIError unless ``path`` is a folder that takes new files, made if missing: said
    before training or fitting whose results it would hold."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CLIError(f"{what} {folder} is a file; expected a folder")
    try:
        _make_folder(folder)
    except OSError as exc:
        raise CLIError(f"cannot make {what} {folder}: {exc.strerror or exc}") from None
    check_writable(folder / "probe", what)


class OneLineParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (what was wrong, and where the
    options are listed), as every other ``rl`` error is, instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="rl",
        description="RL Sandbox: train, evaluate, watch and play reinforcement-learning agents.",
        epilog="Run `rl COMMAND --help` for a command's options. With no arguments, "
        "`rl train` trains PPO on sandbox/DogTraining-v0.",
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=OneLineParser
    )
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"rl.cli.{name}_cmd")
        except ModuleNotFoundError as exc:
            # A command whose module is not written (yet) is left out; a missing dependency
            # of an existing command module is a real error and propagates.
            if exc.name == f"rl.cli.{name}_cmd":
                continue
            raise
        module.add_parser(subparsers)
    parser.commands = subparsers.choices  # name → its parser, for main's usage errors
    return parser


# What rl train's out-of-memory line adds: what to lower, and where (a resume keeps the sizes).
_OUT_OF_MEMORY_HINT = (
    "; fewer envs (--num-envs), a shorter rollout (--set num_steps=..., PPO and A2C) or a "
    "smaller replay buffer (--set buffer_size=..., DQN) need less memory; a --resume keeps the "
    "run's sizes, so train into a new --run-dir"
)


def main(argv: list[str] | None = None) -> int:
    from gymnasium.error import DependencyNotInstalled

    from rl.checkpoint import CheckpointError
    from rl.console import plain_where_needed
    from rl.evaluation import EpisodesUnfinished
    from rl.runs import describe_os_error

    plain_where_needed()  # `rl train > log.txt` on Windows: "->" for "→", not a traceback
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # said by the command's parser, whose --help lists its options
        command = parser.commands.get(args.command)
        (command or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    oom_hint = _OUT_OF_MEMORY_HINT if args.command == "train" else ""
    try:
        return int(args.run(args) or 0)
    except (CLIError, CheckpointError) as exc:
        print(f"rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except EpisodesUnfinished as exc:  # an env without a time limit, evaluated
        print(f"rl {args.command}: error: {exc}", file=sys.stderr)
        return 2  # as rl train, which reports it as the ValueError it is
    except DependencyNotInstalled as exc:  # an env that needs an extra (Box2D, MuJoCo)
        print(f"rl {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:  # an env's module needs a package not installed (jax, shimmy)
        if (exc.name or "").partition(".")[0] in ("rl", "agents", "envs", "benchmarks"):
            raise  # the sandbox's own: a bug, with its traceback
        missing = isinstance(exc, ModuleNotFoundError) and exc.name
        why = ": a package it needs is not installed here" if missing else ""
        print(f"rl {args.command}: error: {exc}{why}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"rl {args.command}: error: out of memory{oom_hint}", file=sys.stderr)
        return 1
    except RuntimeError as exc:
        if "can't allocate memory" not in str(exc) and "out of memory" not in str(exc):
            raise
        first = str(exc).strip().splitlines()[0]
        print(f"rl {args.command}: error: out of memory ({first}){oom_hint}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # The reader went away (`rl envs | head`): stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0
    except OSError as exc:  # a folder that cannot be made or written, a full disk
        print(f"rl {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") == "0":  # torchrun interrupts every rank: one line
            print(f"\nrl {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        _remove_made_if_empty()


if __name__ == "__main__":
    sys.exit(main())
