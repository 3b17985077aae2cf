"""What ``rl watch`` and ``rl record`` are pointed at: a run, a checkpoint or an env id.

A ``TARGET`` resolves to a :class:`Target`: the env (id and constructor arguments, as trained)
and a policy. A run directory gives its latest checkpoint (the weights training ended with), a
``.pt`` file that checkpoint, and an env id a uniformly random policy — the "before" picture a
learner compares a trained agent with.
:func:`progress_targets` lists a run's training snapshots (0 %, 10 %, ..., 100 %) in order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import torch
from gymnasium import spaces

from agents.base import PolicyView
from rl.checkpoint import CheckpointError, load_checkpoint
from rl.cli import CLIError, parse_env_value
from rl.cli.eval_cmd import check_spaces, load_policy, policy_env
from rl.cli.train_cmd import register_envs
from rl.runs import did_you_mean_path, find_checkpoint, list_snapshots
from rl.vector import did_you_mean, env_spec


def sampling_generator(seed: int | None) -> torch.Generator:
    """A CPU generator to sample actions from: seeded, or from the OS when ``seed`` is None."""
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


class RandomPolicy:
    """Uniformly random actions: what every agent does before it has learned anything.

    ``explain`` reports the uniform probabilities (or the Box's centre and spread) and no value
    estimate (NaN), so the HUD can say that a random policy has none.
    """

    def __init__(self, action_space: spaces.Space, seed: int | None = None) -> None:
        if not isinstance(action_space, (spaces.Discrete, spaces.Box)):
            raise CLIError(
                f"a random policy needs a Discrete or Box action space, got {action_space}"
            )
        self.action_space = action_space
        self.generator = sampling_generator(seed)

    def act(self, obs: torch.Tensor, deterministic: bool = False) -> torch.Tensor:
        """One random action per row of ``obs`` (``deterministic`` changes nothing)."""
        n = obs.shape[0]
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            actions = int(space.start) + torch.randint(int(space.n), (n,), generator=self.generator)
            return actions.to(obs.device)
        low = torch.as_tensor(space.low, dtype=torch.float32)
        high = torch.as_tensor(space.high, dtype=torch.float32)
        u = torch.rand((n, *space.shape), generator=self.generator)
        return (low + u * (high - low)).to(obs.device)

    def explain(self, obs: torch.Tensor) -> PolicyView:
        n = obs.shape[0]
        value = torch.full((n,), math.nan)
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            return PolicyView(value=value, probs=torch.full((n, int(space.n)), 1.0 / int(space.n)))
        low = torch.as_tensor(space.low, dtype=torch.float32).expand(n, *space.shape)
        high = torch.as_tensor(space.high, dtype=torch.float32).expand(n, *space.shape)
        # The mean and standard deviation of a uniform distribution on [low, high].
        return PolicyView(value=value, mean=(low + high) / 2, std=(high - low) / math.sqrt(12.0))


@dataclass
class Target:
    """An env to show and the policy that acts in it.

    Attributes:
        env_id: the registered id.
        env_kwargs: constructor arguments the run was trained with (e.g. its reward scheme).
        policy: acts on ``(N, *obs_shape)`` float32 tensors.
        is_random: the policy is :class:`RandomPolicy`.
        algo: the algorithm that trained the checkpoint (``None`` for a random policy).
        checkpoint: the checkpoint file, if any.
        global_step: env steps the checkpoint was trained for.
        total_timesteps: the run's planned training length, in whole iterations (for "30 % of
            training").
        solved_early: training stopped at this checkpoint, on reaching its ``target_return``
            before the planned length (its last checkpoint, though not "100 %"); PPO, A2C, DQN
            and multi-seed agents' checkpoints say so (those from before 2026-11-27 do not).
        scaled_rewards: the policy learned from scaled rewards (``norm_reward``): its value
            estimates are in those units, not the env's.
    """

    env_id: str
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    policy: Any = None
    is_random: bool = False
    algo: str | None = None
    checkpoint: Path | None = None
    global_step: int | None = None
    total_timesteps: int | None = None
    solved_early: bool = False
    scaled_rewards: bool = False

    @property
    def percent(self) -> float | None:
        """How far through training the checkpoint was, in percent (``None`` if unknown)."""
        if self.global_step is None or not self.total_timesteps:
            return None
        return min(100.0, 100.0 * self.global_step / self.total_timesteps)


def parse_env_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["reward_scheme=treats", "layout=random"]`` → env constructor arguments.

    Values are read as JSON where they parse (numbers, ``true``, dicts), else kept as text.
    """
    kwargs: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(
                f"--set expects KEY=VALUE (e.g. --set reward_scheme=treats), got {item!r}"
            )
        kwargs[key.strip()] = parse_env_value(value)
    return kwargs


def is_env_id(name: str) -> bool:
    """Whether ``name`` is a registered env id (``env_spec`` knows it)."""
    try:
        env_spec(name)
    except ValueError:
        return False
    return True


def check_env_arguments(env_id: str, env_kwargs: dict[str, Any]) -> None:
    """A CLIError for a ``--set`` key the env does not take, naming the keys it does (before
    the env is made: its own TypeError reads like a traceback's last line)."""
    from rl.vector import check_env_kwargs

    try:
        check_env_kwargs("--set", env_id, env_kwargs, single=True)
    except ValueError as exc:
        raise CLIError(str(exc)) from None


def _single_spaces(env_id: str, env_kwargs: dict[str, Any]) -> tuple[spaces.Space, spaces.Space]:
    try:
        env = gymnasium.make(env_id, **env_kwargs)
    except (TypeError, ValueError, gymnasium.error.Error) as exc:
        raise CLIError(f"cannot make {env_id} with {env_kwargs}: {exc}") from None
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def target_from_checkpoint(
    path: Path,
    *,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> Target:
    """Load the checkpoint at ``path`` and its policy.

    Args:
        path: a ``.pt`` file written by ``rl train``.
        env_id: show the policy in this env instead of the one it was trained in (its spaces
            must match).
        env_kwargs: constructor arguments that replace or add to the run's own.
        device: where the policy runs.

    Raises:
        CLIError: the file is not a usable checkpoint, or the env does not fit the policy.
    """
    from agents import get_algo

    try:
        checkpoint = load_checkpoint(path)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    config = checkpoint.get("config") or {}
    algo = checkpoint.get("algo")
    try:
        module = get_algo(str(algo))
    except ValueError as exc:
        raise CLIError(f"{path}: {exc}") from None
    chosen, _, own = policy_env(checkpoint, path, env_id)
    kwargs = {**own, **(env_kwargs or {})}
    check_spaces(checkpoint, chosen, kwargs)
    policy = load_policy(module, checkpoint, path, device)
    step = checkpoint.get("global_step")
    # The steps training planned (whole iterations): its last snapshot is 100 %, not 98 %.
    total = checkpoint.get("planned_timesteps") or config.get("total_timesteps")
    return Target(
        env_id=chosen,
        env_kwargs=kwargs,
        policy=policy,
        algo=str(algo),
        checkpoint=Path(path),
        global_step=int(step) if step is not None else None,
        total_timesteps=int(total) if total else None,
        solved_early=checkpoint.get("target_reached") is not None
        and bool(total)
        and int(step or 0) < int(total),
        scaled_rewards=bool(config.get("norm_reward")),
    )


def resolve_target(
    target: str,
    *,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    seed: int | None = None,
) -> Target:
    """A run directory, a checkpoint file or an env id → :class:`Target`.

    Args:
        target: ``runs/<name>`` (its ``latest.pt``: the weights training ended with), a
            ``.pt`` file, or a registered env id (a random policy acts).
        env_id: override the env (``--env``).
        env_kwargs: env constructor arguments (``--set``), on top of the run's.
        device: where the policy runs.
        seed: seeds the random policy.

    Raises:
        CLIError: ``target`` is none of these, or cannot be loaded.
    """
    path = Path(target)
    if path.exists():
        try:
            checkpoint = find_checkpoint(path)
        except CheckpointError as exc:
            raise CLIError(str(exc)) from None
        return target_from_checkpoint(
            checkpoint, env_id=env_id, env_kwargs=env_kwargs, device=device
        )
    register_envs()
    try:
        env_spec(target)  # "module:Env-v0": imports the module first
    except ValueError as exc:
        if ":" in target:  # say why the module or the id failed
            raise CLIError(str(exc)) from None
        raise CLIError(
            f"{target!r} is neither a run directory, a checkpoint file nor a registered env id; "
            f"{did_you_mean_path(path) or did_you_mean(target)}pass runs/<run name>, a .pt file, or "
            "an id from `rl envs` (e.g. sandbox/DogTraining-v0)"
        ) from None
    if env_id is not None and env_id != target:
        raise CLIError(f"TARGET is the env {target}; --env {env_id} contradicts it")
    kwargs = dict(env_kwargs or {})
    check_env_arguments(target, kwargs)
    _, action_space = _single_spaces(target, kwargs)
    return Target(
        env_id=target,
        env_kwargs=kwargs,
        policy=RandomPolicy(action_space, seed),
        is_random=True,
    )


def progress_targets(
    run_dir: str,
    *,
    env_id: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> list[Target]:
    """Every training snapshot of a run (``checkpoints/step_<N>.pt``), in training order.

    Raises:
        CLIError: ``run_dir`` is not a run directory, or it has no snapshots.
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise CLIError(
            f"--progress needs a run directory (runs/<run name>), got {run_dir!r}: it plays the "
            "run's checkpoints in training order"
        )
    snapshots = list_snapshots(path)
    if not snapshots:
        raise CLIError(
            f"{run_dir} has no training snapshots (checkpoints/step_<N>.pt); train with "
            "`rl train` (it keeps 11 by default) or watch the run without --progress"
        )
    return [
        target_from_checkpoint(file, env_id=env_id, env_kwargs=env_kwargs, device=device)
        for _, file in snapshots
    ]


def parse_percents(text: str) -> list[float]:
    """``"0,50,100"`` → ``[0.0, 50.0, 100.0]``; a CLIError unless each is in [0, 100]."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CLIError(f"--checkpoints expects percentages like 0,50,100, got {text!r}") from None
    if not values or any(not 0 <= v <= 100 for v in values):
        raise CLIError(f"--checkpoints expects percentages in [0, 100] like 0,50,100, got {text!r}")
    return values


def select_checkpoints(targets: list[Target], percents: list[float]) -> list[Target]:
    """The snapshot nearest to each percentage of training, in training order, no repeats."""
    chosen: dict[int, Target] = {}
    for percent in percents:
        index = min(
            range(len(targets)),
            key=lambda i: abs(
                (targets[i].percent if targets[i].percent is not None else i) - percent
            ),
        )
        chosen[index] = targets[index]
    return [chosen[i] for i in sorted(chosen)]


def targets_from_args(args: Any) -> list[Target]:
    """What ``rl watch`` and ``rl record`` show: ``TARGET`` (a run, a checkpoint or an env id),
    or with ``--progress`` the run's snapshots (those ``--checkpoints`` picks), with ``--env``,
    ``--set`` and ``--seed`` applied.

    Raises:
        CLIError: bad flags, or targets that cannot be loaded.
    """
    env_kwargs = parse_env_overrides(args.set)
    if args.checkpoints is not None and not args.progress:
        raise CLIError("--checkpoints picks snapshots for --progress; add --progress")
    if not args.progress:
        return [resolve_target(args.target, env_id=args.env, env_kwargs=env_kwargs, seed=args.seed)]
    targets = progress_targets(args.target, env_id=args.env, env_kwargs=env_kwargs)
    if args.checkpoints is not None:
        targets = select_checkpoints(targets, parse_percents(args.checkpoints))
    return targets
