"""``rl check ENV_ID``: the CI smoke test for any registered env, the sandbox's or your own.

One line per check and a non-zero exit on failure: Gymnasium's ``check_env`` on the single env,
``envs.check_vector_env`` on the torch vector env where there is one, N short random episodes
and a headless render.
"""

from __future__ import annotations

import argparse
import os
import re
import time
import traceback
import warnings
from collections.abc import Callable

import gymnasium
import numpy as np

from rl.cli import nonempty, seed_number, whole_number


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "check",
        help="smoke-test an environment (for CI)",
        description=(
            "Smoke-test a registered environment: Gymnasium's check_env on the single env, "
            "envs.check_vector_env on its torch vector env, short random episodes and a headless "
            "render. Prints one line per check; exits 1 if any check fails. Your own env: pass "
            "--import MODULE (a module that registers it) or an id of the form 'module:EnvName-v0'."
        ),
    )
    parser.add_argument("env_id", metavar="ENV_ID", help="e.g. sandbox/DogTraining-v0")
    parser.add_argument(
        "--episodes", type=whole_number, default=3, help="random episodes to run (default 3)"
    )
    parser.add_argument(
        "--num-envs", type=whole_number, default=8, help="rows of the vector env (default 8)"
    )
    parser.add_argument("--seed", type=seed_number, default=0, help="seed for resets and actions")
    parser.add_argument(
        "--max-steps",
        type=whole_number,
        default=1000,
        help="step cap per random episode (default 1000)",
    )
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        type=nonempty,
        default=[],
        metavar="MODULE",
        help="import MODULE first (it registers your env); repeatable",
    )
    parser.set_defaults(run=run)


class Skipped(Exception):
    """A check that does not apply to this env (printed SKIP, counted apart)."""


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _plain(text: str) -> str:
    """One line of ``text`` without terminal colour codes (Gymnasium colours its warnings)."""
    text = _ANSI.sub("", str(text)).strip()
    return text.splitlines()[0] if text else ""


def _check(name: str, fn: Callable[[], str | None], results: list[bool | None]) -> None:
    start = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            detail = fn() or ""
        notes = sorted(
            {
                _plain(w.message)[:120]
                for w in caught
                if "check_env" in str(w.filename) or "passive_env_checker" in str(w.filename)
            }
        )
        if notes:
            detail = (detail + "; " if detail else "") + "warnings: " + " | ".join(notes[:3])
        results.append(True)
        print(f"PASS  {name:<24} {detail} ({time.perf_counter() - start:.2f}s)")
    except Skipped as why:
        results.append(None)
        print(f"SKIP  {name:<24} {why}")
    except Exception as exc:  # Report every failure as one line and go on with the other checks.
        results.append(False)
        message = _plain(exc) or type(exc).__name__
        print(f"FAIL  {name:<24} {type(exc).__name__}: {message}")
        if os.environ.get("RL_DEBUG"):
            traceback.print_exc()


def run(args: argparse.Namespace) -> int:
    from rl.cli import CLIError

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if args.episodes < 1:
        raise CLIError(f"--episodes must be >= 1, got {args.episodes}")
    if args.num_envs < 1:
        raise CLIError(f"--num-envs must be >= 1, got {args.num_envs}")
    if args.max_steps < 1:
        raise CLIError(f"--max-steps must be >= 1, got {args.max_steps}")
    import envs
    from envs import check_vector_env
    from rl.vector import env_spec, import_env_module

    for module in args.imports:
        try:
            import_env_module(module)
        except ValueError as exc:
            raise CLIError(f"--import {module}: {exc}") from None
    try:
        spec = env_spec(args.env_id)
    except ValueError as exc:
        hint = (
            ""
            if ":" in args.env_id or args.imports
            else ("; your own env: --import MODULE (the module that registers it) or MODULE:ID")
        )
        raise CLIError(f"{exc}{hint}") from None
    del envs
    results: list[bool | None] = []
    print(f"Checking {spec.id}")

    def single_env_check() -> str:
        from gymnasium.utils.env_checker import check_env

        env = gymnasium.make(spec.id)
        try:
            check_env(env.unwrapped, skip_render_check=True)
            return f"action {env.action_space}, observation {env.observation_space}"
        finally:
            env.close()

    def vector_env_check() -> str:
        if spec.vector_entry_point is None:
            raise Skipped("no vector_entry_point registered")
        env = gymnasium.make_vec(
            spec.id, num_envs=args.num_envs, vectorization_mode="vector_entry_point"
        )
        try:
            if getattr(env, "metadata", {}).get("backend") != "torch":
                raise Skipped(f"{type(env).__name__} is not a torch vector env")
            check_vector_env(env, seed=args.seed)
            return f"{type(env).__name__} with num_envs={args.num_envs}"
        finally:
            env.close()

    def random_episodes() -> str:
        env = gymnasium.make(spec.id)
        env.action_space.seed(args.seed)
        lengths, returns = [], []
        try:
            for episode in range(args.episodes):
                obs, _ = env.reset(seed=args.seed + episode)
                _check_obs(env.observation_space, obs, "reset()")
                total, steps, done = 0.0, 0, False
                while not done and steps < args.max_steps:
                    obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                    _check_obs(env.observation_space, obs, f"step() {steps}")
                    if not np.isfinite(reward):
                        raise ValueError(f"non-finite reward {reward} at step {steps}")
                    total += float(reward)
                    steps += 1
                    done = terminated or truncated
                lengths.append(steps)
                returns.append(total)
        finally:
            env.close()
        return f"{args.episodes} episodes, lengths {lengths}, mean return {np.mean(returns):.2f}"

    def render_check() -> str:
        env = gymnasium.make(spec.id, render_mode="rgb_array")
        try:
            env.reset(seed=args.seed)
            frame = env.render()
            if frame is None:
                raise ValueError("render() returned None in rgb_array mode")
            frame = np.asarray(frame)
            if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
                raise ValueError(
                    f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}"
                )
            if (frame == frame.reshape(-1, 3)[0]).all():
                raise ValueError("the frame is blank (a single colour)")
            return f"rgb_array frame {frame.shape[1]}x{frame.shape[0]}"
        finally:
            env.close()

    _check("check_env", single_env_check, results)
    _check("check_vector_env", vector_env_check, results)
    _check("random episodes", random_episodes, results)
    _check("headless render", render_check, results)
    failed, skipped = results.count(False), results.count(None)
    print(
        f"{results.count(True)} passed, {failed} failed"
        + (f", {skipped} skipped" if skipped else "")
    )
    if not failed:
        # The id as rl train must be given it: with its module where one registers it.
        train_id = args.env_id
        if ":" not in train_id and len(args.imports) == 1:
            train_id = f"{args.imports[0]}:{spec.id}"
        print(_trainable(spec.id, train_id))
    return 1 if failed else 0


def _trainable(env_id: str, train_id: str) -> str:
    """What ``rl train`` can do with the env (a note, not a check: a valid env may be one the
    agents do not support, such as a Discrete observation)."""
    from agents.base import space_spec

    env = gymnasium.make(env_id)
    try:
        spec = space_spec(env.observation_space, env.action_space)
    except ValueError as exc:
        return f"rl train: not supported ({exc})"
    finally:
        env.close()
    algos = (
        "ppo, a2c, dqn"
        if spec["action_kind"] == "discrete"
        else "ppo, a2c (dqn needs Discrete actions)"
    )
    return f"rl train --env {train_id}: --algo {algos}"


def _check_obs(space: gymnasium.Space, obs: object, where: str) -> None:
    """A ValueError naming what differs when ``obs`` is not in ``space``."""
    if space.contains(obs):
        return
    shape, dtype = np.shape(obs), getattr(obs, "dtype", type(obs).__name__)
    if space.shape is not None and (shape != space.shape or dtype != space.dtype):
        raise ValueError(
            f"the observation of {where} is not in the observation space: got shape {shape} "
            f"{dtype}, the space says shape {space.shape} {space.dtype}"
        )
    if isinstance(space, gymnasium.spaces.Box):
        values = np.asarray(obs)
        raise ValueError(
            f"the observation of {where} is outside the observation space's bounds: values "
            f"in [{values.min():.4g}, {values.max():.4g}], the space allows "
            f"[{space.low.min():.4g}, {space.high.max():.4g}]"
        )
    raise ValueError(f"the observation of {where} ({obs!r:.80}) is not in {space}")
