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


class CLIError(Exception):
    """A user error: printed as one line with the exit code 2, no traceback."""


def parse_env_value(text: str) -> Any:
    """A ``--set`` env value: JSON where it parses (numbers, ``true``, dicts), else the text
    (``--set reward_scheme=treats``). Text that opens as JSON (``{``, ``[``, ``"``) must parse:
    a brace left out is an error, not a preset name."""
    text = text.strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        if text[:1] in ("{", "[", '"'):
            raise CLIError(
                f"--set value {text!r} is not valid JSON ({exc.msg} at character {exc.pos}); "
                """e.g. --set reward_scheme='{"relief_outdoors": 1, "on_sofa": -0.5}'"""
            ) from None
        return text


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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except CLIError as exc:
        print(f"rl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`rl envs | head`): stop quietly, as Unix tools do.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        if os.environ.get("RANK", "0") == "0":  # torchrun interrupts every rank: one line
            print(f"\nrl {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
