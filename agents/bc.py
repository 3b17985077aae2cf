"""Behaviour cloning (BC): learn a policy by imitating a teacher, as plain classification.

A teacher — DogTraining's scripted expert (:func:`envs.dog_training.expert_policy`) or a person
playing with ``rl play --record-demos`` — acts in the env; every step gives one labelled example
``(observation, action)``. A classifier (an MLP from :func:`rl.supervised.mlp`) learns to predict
the action from the observation with :func:`rl.supervised.fit` (cross-entropy), the same loop
as the ``rl supervised`` baselines, logged and checkpointed like every agent. The classifier's
most likely action is the policy. No reward is used: BC learns *what* the teacher did, not why,
so it can only be as good as its teacher, and it can drift into states the teacher never showed.

Reading order: demo files (:func:`save_demos`, :func:`load_demos`) → :func:`collect_expert_demos`
→ :class:`Config` → :func:`train` → :func:`expert_steps_needed`.

Demonstration files (what ``rl play --record-demos`` writes)
----------------------------------------------------------------
A ``.pt`` file written with :func:`save_demos` (or :func:`rl.checkpoint.atomic_save` /
``torch.save``) holding one dict of tensors and plain values, so it loads with
``torch.load(weights_only=True)``:

=================  ==================================  ===========================================
key                value                               meaning
=================  ==================================  ===========================================
``obs``            float32 tensor ``(T, *obs_shape)``  the observation the player saw at step t
``actions``        int64 tensor ``(T,)``               the (discrete) action chosen at step t
``env_id``         str                                 e.g. ``"sandbox/DogTraining-v0"``
``format``         ``"rl-sandbox-demos"`` (optional)   marks the file
``format_version`` ``1`` (optional)                    this layout
``env_kwargs``     dict of plain values (optional)     how the env was made (e.g. the layout)
``episode_ids``    int64 tensor ``(T,)`` (optional)    which episode each step belongs to
=================  ==================================  ===========================================

Steps of several episodes are concatenated in time order. Other keys are kept but ignored.

Run it: ``python -m agents.bc`` (or ``rl supervised bc``).
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

import envs  # noqa: F401  (registers the sandbox/ env ids)
from agents.base import (
    PolicyView,
    TrainResult,
    parse_config_args,
    read_policy_checkpoint,
    refuse_empty_run_dir,
    run_command,
    sample_categorical,
    space_spec,
)
from rl.checkpoint import (
    DEMOS_FORMAT,
    DEMOS_FORMAT_VERSION,
    CheckpointError,
    atomic_save,
    read_torch_file,
)
from rl.config import (
    check_field_types,
    config_from_dict,
    config_to_dict,
    is_int,
    replace_config,
    require_int,
)
from rl.device import configure_threads, resolve_device, restores_thread_count
from rl.evaluation import EvalResult, evaluate, require_episodes
from rl.runs import RUNS_ROOT, run_name, write_json
from rl.seeding import seed_everything
from rl.supervised import FitConfig, fit, mlp
from rl.vector import check_env_kwargs, check_env_values, make_vector_env

ALGO = "bc"
DOG_ENV_ID = "sandbox/DogTraining-v0"
MAX_EXPERT_STEPS = 10_000_000
"""The most ``num_expert_steps``: the demonstration is held in memory whole (DogTraining's
observations are 444 bytes a step, so this is 4.4 GB)."""


# -- demonstrations --------------------------------------------------------------------------
def save_demos(
    path: str | os.PathLike,
    obs: torch.Tensor,
    actions: torch.Tensor,
    env_id: str,
    *,
    env_kwargs: dict[str, Any] | None = None,
    episode_ids: torch.Tensor | None = None,
) -> Path:
    """Write a demonstration file in the format above, atomically.

    Args:
        path: the ``.pt`` file to write (folders are created).
        obs: ``(T, obs_dim)`` observations (converted to float32 on the CPU).
        actions: ``(T,)`` integer actions.
        env_id: the env the demonstrations come from.
        env_kwargs: plain values the env was made with.
        episode_ids: ``(T,)`` episode number of each step.

    Raises:
        ValueError: no steps (``T == 0``), mismatched lengths, or the wrong shapes or dtypes.
    """
    if not isinstance(env_id, str) or not env_id:
        raise TypeError(f"save_demos: env_id must be an env id string, got {env_id!r}")
    obs, actions = _check_demos(
        torch.as_tensor(obs), torch.as_tensor(actions), f"save_demos({str(path)!r})"
    )
    payload: dict[str, Any] = {
        "format": DEMOS_FORMAT,
        "format_version": DEMOS_FORMAT_VERSION,
        "env_id": env_id,
        "obs": obs,
        "actions": actions,
        "env_kwargs": dict(env_kwargs or {}),
    }
    if episode_ids is not None:
        payload["episode_ids"] = _check_episode_ids(
            torch.as_tensor(episode_ids), obs.shape[0], f"save_demos({str(path)!r})"
        )
    return atomic_save(payload, path)


def load_demos(
    path: str | os.PathLike, env_id: str | None = None, spaces: dict[str, Any] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(obs, actions)`` from a demonstration file, as float32 ``(T, D)`` and int64 ``(T,)``.

    Args and errors: :func:`load_demo_episodes`'s.
    """
    obs, actions, _ = load_demo_episodes(path, env_id, spaces)
    return obs, actions


def load_demo_episodes(
    path: str | os.PathLike, env_id: str | None = None, spaces: dict[str, Any] | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(obs, actions, episode_ids)`` from a demonstration file: float32 ``(T, D)``, int64
    ``(T,)``, and the file's int64 ``(T,)`` episode ids (``None`` where it has none).

    Args:
        path: a file written by ``rl play --record-demos`` or :func:`save_demos`.
        env_id: when given, the file must come from this env.
        spaces: when given (:func:`rl.vector.space_spec`), the observations must have its
            ``obs_shape`` and the actions lie in ``[0, action_n)``.

    Raises:
        ValueError: a missing, unsafe, truncated or malformed file, or one from another env.
    """
    path = Path(path)
    where = f"demonstration file {path}"
    data = _read_demo_file(path, where)
    if not isinstance(data, dict):
        raise ValueError(f"{where} holds a {type(data).__name__}, expected a dict ({_WRITTEN_BY})")
    marker = data.get("format", DEMOS_FORMAT)
    if marker != DEMOS_FORMAT:
        raise ValueError(
            f"{where} is not a demonstration file: its format marker is {marker!r}, not "
            f"{DEMOS_FORMAT!r}; expected {_WRITTEN_BY}"
        )
    missing = [key for key in ("obs", "actions", "env_id") if key not in data]
    if missing:
        raise ValueError(
            f"{where} lacks {', '.join(missing)}; expected a dict with "
            "'obs' (T, obs_dim) float32, 'actions' (T,) int64 and 'env_id' (see agents/bc.py)"
        )
    version = data.get("format_version", DEMOS_FORMAT_VERSION)
    if not is_int(version, 1):
        raise ValueError(
            f"{where} is malformed: 'format_version' must be an integer >= 1, got {version!r} "
            f"({type(version).__name__}); expected {_WRITTEN_BY}"
        )
    if version > DEMOS_FORMAT_VERSION:
        raise ValueError(
            f"{where} has format version {version}, newer than "
            f"this RL Sandbox reads ({DEMOS_FORMAT_VERSION}); upgrade rl-sandbox"
        )
    if not isinstance(data["env_id"], str):
        raise ValueError(
            f"{where} is malformed: 'env_id' must be a string such as {DOG_ENV_ID!r}, got "
            f"{data['env_id']!r}"
        )
    if env_id is not None and data["env_id"] != env_id:
        raise ValueError(f"{where} was recorded in {data['env_id']!r}, not {env_id!r}")
    obs, actions = _check_demos(data["obs"], data["actions"], where)
    episode_ids = data.get("episode_ids")
    if episode_ids is not None:
        episode_ids = _check_episode_ids(episode_ids, obs.shape[0], where)
    if spaces is not None:
        shape = tuple(spaces["obs_shape"])
        # The env's shape, or flattened as save_demos writes them.
        if tuple(data["obs"].shape[1:]) not in (shape, (math.prod(shape),)):
            raise ValueError(
                f"{where}: observations of shape {tuple(data['obs'].shape[1:])}, but the env's "
                f"are {shape}; record them in the same env (and env arguments)"
            )
        low, high = int(actions.min()), int(actions.max())
        if low < 0 or high >= spaces["action_n"]:
            raise ValueError(
                f"{where}: actions from {low} to {high}, but the env's lie in "
                f"[0, {spaces['action_n'] - 1}]"
            )
    return obs, actions, episode_ids


def _check_episode_ids(episode_ids: Any, steps: int, where: str) -> torch.Tensor:
    if (
        not isinstance(episode_ids, torch.Tensor)
        or episode_ids.shape != (steps,)
        or episode_ids.is_floating_point()
        or episode_ids.dtype == torch.bool
    ):
        got = (
            f"{tuple(episode_ids.shape)} {episode_ids.dtype}"
            if isinstance(episode_ids, torch.Tensor)
            else type(episode_ids).__name__
        )
        raise ValueError(
            f"{where}: 'episode_ids' must be a ({steps},) integer tensor, one id per step, "
            f"got {got}"
        )
    return episode_ids.detach().long().cpu()


_WRITTEN_BY = "a .pt file written by `rl play --record-demos` or agents.bc.save_demos"


def _read_demo_file(path: Path, where: str) -> Any:
    """The demonstration file's contents, read safely (:func:`rl.checkpoint.read_torch_file`)."""
    try:
        return read_torch_file(path, where, _WRITTEN_BY)
    except CheckpointError as exc:
        hint = (
            " (from arrays: agents.bc.save_demos(path, torch.from_numpy(obs), "
            "torch.from_numpy(actions), env_id))"
            if "NumPy .npz" in str(exc)
            else ""
        )
        raise ValueError(f"{exc}{hint}") from None


def _check_demos(obs: Any, actions: Any, where: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(obs, torch.Tensor) or not isinstance(actions, torch.Tensor):
        raise ValueError(f"{where}: 'obs' and 'actions' must be tensors")
    if obs.dim() < 2 or not obs.is_floating_point():
        raise ValueError(
            f"{where}: 'obs' must be a (T, *obs_shape) float tensor, got {tuple(obs.shape)} {obs.dtype}"
        )
    if actions.dim() != 1 or actions.is_floating_point() or actions.dtype == torch.bool:
        raise ValueError(
            f"{where}: 'actions' must be a (T,) integer tensor (behaviour cloning here reads "
            f"discrete actions), got {tuple(actions.shape)} {actions.dtype}"
        )
    if obs.shape[0] != actions.shape[0]:
        raise ValueError(f"{where}: {obs.shape[0]} observations but {actions.shape[0]} actions")
    if obs.shape[0] == 0:
        raise ValueError(
            f"{where}: no steps (0 observations and actions); a demonstration needs at least one"
        )
    if not bool(obs.isfinite().all()):
        raise ValueError(f"{where}: 'obs' holds NaN or infinite values")
    # (T, *obs_shape) → (T, D): the classifier reads flat observations.
    return obs.detach().flatten(1).float().cpu(), actions.detach().long().cpu()


def expert_for(env_id: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The scripted expert of ``env_id`` (observations → actions).

    Raises:
        ValueError: the env has no scripted expert (record demonstrations instead).
    """
    if env_id == DOG_ENV_ID:
        from envs.dog_training import expert_policy

        return expert_policy
    raise ValueError(
        f"{env_id} has no scripted expert (only {DOG_ENV_ID} has one); give demonstration files "
        "recorded with `rl play --record-demos` and no expert steps (`rl supervised bc "
        "--expert-steps 0`, or num_expert_steps=0)"
    )


@torch.no_grad()
def collect_expert_demos(
    env_id: str,
    num_steps: int,
    *,
    num_envs: int = 16,
    seed: int = 0,
    device: str | torch.device = "cpu",
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``num_steps`` ``(obs, action)`` pairs of the scripted expert acting in ``env_id``, with
    the episode of each: ``(obs, actions, episode_ids)``.

    The steps are ordered row by row (row 0's whole trajectory, then row 1's, ...), so the first
    ``k`` steps are whole consecutive episodes, as one teacher would show them, rather than the
    first few steps of many episodes. ``episode_ids`` number the episodes 0, 1, ... in that
    order (the last one may be cut short).
    """
    for name, value in (("num_steps", num_steps), ("num_envs", num_envs)):
        require_int(name, value, 1)
    expert = expert_for(env_id)
    env = make_vector_env(env_id, num_envs, device, env_kwargs=env_kwargs)
    try:
        obs, _ = env.reset(seed=seed)
        num_rows = math.ceil(num_steps / num_envs)
        all_obs = torch.empty(num_rows, num_envs, *obs.shape[1:], device=obs.device)
        all_actions = torch.empty(num_rows, num_envs, dtype=torch.long, device=obs.device)
        # Episodes each row has finished before step t: which episode the step belongs to.
        finished = torch.zeros(num_rows, num_envs, dtype=torch.long, device=obs.device)
        for t in range(num_rows):
            actions = expert(obs)
            all_obs[t], all_actions[t] = obs, actions
            obs, _, terminated, truncated, _ = env.step(actions)
            if t + 1 < num_rows:
                finished[t + 1] = finished[t] + (terminated | truncated).long()
    finally:
        env.close()
    # (T, N, ...) → (N, T, ...) → (N * T, ...): row-major, each row's episodes in order.
    obs_rows = all_obs.transpose(0, 1).flatten(0, 1)
    action_rows = all_actions.transpose(0, 1).flatten()
    env_row = torch.arange(num_envs, device=obs.device).unsqueeze(0).expand(num_rows, -1)
    episode_rows = (env_row * num_rows + finished).transpose(0, 1).flatten()
    # Renumbered 0, 1, ... in order (unique ids, sorted: the row-major order's).
    episode_ids = torch.unique(episode_rows[:num_steps], return_inverse=True)[1]
    return obs_rows[:num_steps].cpu(), action_rows[:num_steps].cpu(), episode_ids.cpu()


# -- config and policy -------------------------------------------------------------------------
class DogDefault(dict):
    """A default env-arguments dict that belongs to DogTraining (its houses): a config for
    another ``env_id`` drops it for that env's own defaults, rather than handing ``layout`` to
    CartPole. Marked by its type, so it stays a default through ``dataclasses.replace``."""


def drop_dog_defaults(config: Any, replacements: dict[str, Any]) -> None:
    """For a frozen config whose ``env_id`` is not DogTraining: each field named in
    ``replacements`` that still holds a :class:`DogDefault` takes its replacement (that env's
    own defaults)."""
    if config.env_id == DOG_ENV_ID:
        return
    for name, value in replacements.items():
        if isinstance(getattr(config, name), DogDefault):
            object.__setattr__(config, name, value)


def _train_houses() -> dict[str, Any]:
    return DogDefault(layout="random", num_layouts=100)


def _unseen_houses() -> dict[str, Any]:
    return DogDefault(layout="random", num_layouts=100, layout_offset=1000)


@dataclass(frozen=True)
class Config:
    """Behaviour-cloning settings."""

    env_id: str = DOG_ENV_ID
    """The env to imitate in; the scripted expert exists for sandbox/DogTraining-v0 only."""
    env_kwargs: dict[str, Any] = field(default_factory=_train_houses)
    """Env arguments while the expert demonstrates (default: houses 0-99 for DogTraining, the
    env's own defaults for another ``env_id``)."""
    eval_env_kwargs: dict[str, Any] | None = field(default_factory=_unseen_houses)
    """Env arguments for evaluation (default: houses 1000-1099 for DogTraining, never
    demonstrated); ``None`` (the default for another ``env_id``) evaluates in the
    demonstration env."""
    seed: int = 1
    """Seeds the demonstrations, the network and the evaluation."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:K``."""
    num_threads: int | None = None
    """torch CPU threads; ``None`` picks 1 on CPU (see rl.device)."""
    num_expert_steps: int = 2000
    """Steps the scripted expert demonstrates (labelled examples); 0 uses ``demos`` only. At
    most :data:`MAX_EXPERT_STEPS`."""
    demos: tuple[str, ...] = ()
    """Demonstration files (``rl play --record-demos``) added to the expert's steps; one path
    alone is read as a one-file tuple."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden layer widths of the classifier."""
    activation: Literal["tanh", "relu"] = "tanh"
    """Hidden activation."""
    learning_rate: float = 3e-3
    """Adam's step size."""
    batch_size: int = 256
    """Examples per gradient step."""
    epochs: int = 60
    """The most passes over the demonstrations (early stopping may end sooner)."""
    patience: int = 10
    """Stop after this many epochs without the validation loss improving by ``min_delta``."""
    min_delta: float = 1e-3
    """The smallest drop in validation loss that counts as an improvement."""
    val_fraction: float = 0.2
    """Share of the examples held out to pick the best epoch: whole episodes, shuffled, until
    at least this share is (the last steps where there is one episode)."""
    eval_episodes: int = 100
    """Evaluation episodes for the clone, the expert and the random policy; 0 skips them. At
    most :data:`rl.evaluation.MAX_EPISODES`."""
    write_run: bool = True
    """Write the run folder (TensorBoard, config.json, checkpoints, eval.json)."""
    run_dir: str | None = None
    """Run folder; ``None`` picks ``runs/<env>__bc__<seed>__<timestamp>``."""
    progress: bool = False
    """Show a progress bar over epochs (on stderr)."""

    def __post_init__(self) -> None:
        # A single path is one file, not a sequence of one-letter file names.
        demos = self.demos
        if isinstance(demos, (str, os.PathLike)):
            demos = (demos,)
        if not isinstance(demos, (tuple, list)):
            raise TypeError(f"demos must be a tuple of file paths, got {demos!r}")
        for path in demos:
            if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
                raise TypeError(f"demos must hold file paths (str or Path), got {path!r}")
        object.__setattr__(self, "demos", tuple(os.fspath(path) for path in demos))
        check_field_types(self)
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(
                f"env_id must be an env id such as {DOG_ENV_ID!r}, got {self.env_id!r}"
            )
        # The houses are DogTraining's arguments only.
        drop_dog_defaults(self, {"env_kwargs": {}, "eval_env_kwargs": None})
        if not isinstance(self.env_kwargs, dict):
            raise ValueError(f"env_kwargs must be a dict, got {self.env_kwargs!r}")
        if self.eval_env_kwargs is not None and not isinstance(self.eval_env_kwargs, dict):
            raise ValueError(
                f"eval_env_kwargs must be a dict or None, got {self.eval_env_kwargs!r}"
            )
        check_env_kwargs("env_kwargs", self.env_id, self.env_kwargs)
        if self.eval_env_kwargs is not None:
            check_env_kwargs("eval_env_kwargs", self.env_id, self.eval_env_kwargs)
        for name in ("num_expert_steps", "seed"):
            require_int(name, getattr(self, name), 0)
        require_episodes("eval_episodes", self.eval_episodes)
        if self.num_expert_steps > MAX_EXPERT_STEPS:
            raise ValueError(
                f"num_expert_steps must be at most {MAX_EXPERT_STEPS:,}, got "
                f"{self.num_expert_steps:,}: the demonstration is held in memory whole"
            )
        if self.num_expert_steps == 0 and not self.demos:
            raise ValueError(
                "nothing to imitate: set num_expert_steps > 0 (rl supervised bc --expert-steps N) "
                "or give demos files (--demos FILE, from rl play --record-demos)"
            )
        if isinstance(self.hidden_sizes, list):
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        if (
            not isinstance(self.hidden_sizes, tuple)
            or not self.hidden_sizes
            or not all(is_int(h, 1) for h in self.hidden_sizes)
        ):
            raise ValueError(
                f"hidden_sizes must be one or more layer widths >= 1, e.g. (64, 64) "
                f"(--set hidden_sizes=64,64), got {self.hidden_sizes!r}"
            )
        if self.activation not in ("tanh", "relu"):
            raise ValueError(f"activation must be 'tanh' or 'relu', got {self.activation!r}")
        # The fit loop's own checks (epochs, batch_size, learning_rate, ...) run here too.
        self.fit_config()

    @property
    def evaluation_env_kwargs(self) -> dict[str, Any]:
        """The env arguments evaluation uses."""
        return self.env_kwargs if self.eval_env_kwargs is None else self.eval_env_kwargs

    def fit_config(self, run_dir: str | None = None) -> FitConfig:
        """The :class:`rl.supervised.FitConfig` this BC run trains with."""
        return FitConfig(
            task="classification",
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            val_fraction=self.val_fraction,
            patience=self.patience,
            min_delta=self.min_delta,
            seed=self.seed,
            device=self.device,
            run_dir=run_dir,
            progress=self.progress,
        )


def default_config(env_id: str = DOG_ENV_ID, **overrides: Any) -> Config:
    """BC's defaults for ``env_id`` with ``overrides`` (typed values or ``--set`` strings)."""
    return replace_config(Config(env_id=env_id), overrides)


class BCPolicy:
    """The cloned classifier as an :class:`agents.base.Policy`.

    BC learns no value function: :meth:`explain` reports a value of 0 for every state.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model.eval()
        self.device = next(model.parameters()).device

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """``(N, obs_dim)`` → ``(N,)`` actions: the most likely one, or sampled."""
        logits = self.model(torch.as_tensor(obs, dtype=torch.float32, device=self.device))
        actions = logits.argmax(-1) if deterministic else sample_categorical(logits)
        return actions.to(obs.device) if isinstance(obs, torch.Tensor) else actions

    @torch.no_grad()
    def explain(self, obs: torch.Tensor) -> PolicyView:
        probs = self.model(torch.as_tensor(obs, dtype=torch.float32, device=self.device)).softmax(
            -1
        )
        # No critic: NaN, which the HUD shows as "this policy has none" (not a value of 0).
        return PolicyView(value=probs.new_full((probs.shape[0],), math.nan), probs=probs)


def build_model(spaces: dict[str, Any], cfg: Config) -> nn.Sequential:
    """The classifier: observation → hidden layers → one logit per action."""
    if spaces["action_kind"] != "discrete":
        raise ValueError("behaviour cloning here needs a Discrete action space (a classifier)")
    return mlp(math.prod(spaces["obs_shape"]), cfg.hidden_sizes, spaces["action_n"], cfg.activation)


def _spaces(env_id: str, env_kwargs: dict[str, Any]) -> dict[str, Any]:
    env = make_vector_env(env_id, 1, "cpu", env_kwargs=env_kwargs)
    try:
        return space_spec(env.single_observation_space, env.single_action_space)
    finally:
        env.close()


# -- training ------------------------------------------------------------------------------------
def gather_dataset(
    cfg: Config, device: torch.device, spaces: dict[str, Any]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """The expert's steps followed by every demo file's: ``(obs, actions, episodes,
    demo_steps)``, ``episodes`` an id per step: the expert's episodes, each file's own (a file
    without ``episode_ids`` is one episode), all apart.

    The demo files are read first, and checked against the env's ``spaces``, so a bad file
    fails before the expert demonstrates.
    """
    seen: dict[Path, str] = {}
    for path in cfg.demos:  # a file given twice lands on both sides of the held-out split
        resolved = Path(path).resolve()
        if resolved in seen:
            raise ValueError(
                f"demonstration file {path} is given twice (as {seen[resolved]} too): its steps "
                "would be both learned from and held out, inflating the agreement"
            )
        seen[resolved] = str(path)
    demos = [load_demo_episodes(path, cfg.env_id, spaces) for path in cfg.demos]
    demo_steps = sum(obs.shape[0] for obs, _, _ in demos)
    if cfg.num_expert_steps > 0:
        expert = collect_expert_demos(
            cfg.env_id,
            cfg.num_expert_steps,
            seed=cfg.seed,
            device=device,
            env_kwargs=cfg.env_kwargs,
        )
        demos.insert(0, expert)
    parts_episodes, first = [], 0
    for obs, _, episode_ids in demos:
        if episode_ids is None:
            episode_ids = torch.zeros(obs.shape[0], dtype=torch.long)
        ids = torch.unique(episode_ids, return_inverse=True)[1]  # 0, 1, ...
        parts_episodes.append(ids + first)
        first += int(ids.max()) + 1
    return (
        torch.cat([obs for obs, _, _ in demos]),
        torch.cat([actions for _, actions, _ in demos]),
        torch.cat(parts_episodes),
        demo_steps,
    )


def evaluate_baselines(cfg: Config, device: torch.device) -> tuple[EvalResult, EvalResult]:
    """The scripted expert and a uniformly random policy in the evaluation env (DogTraining only).

    The scripted expert is the yardstick even when the clone learned from demo files only.
    """
    from envs.dog_training import random_policy

    expert = expert_for(cfg.env_id)
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    env_kwargs = cfg.env_kwargs if cfg.eval_env_kwargs is None else cfg.eval_env_kwargs
    kwargs = {
        "episodes": cfg.eval_episodes,
        "device": device,
        "seed": cfg.seed,
        "env_kwargs": env_kwargs,
    }
    return (
        evaluate(expert, cfg.env_id, **kwargs),
        evaluate(lambda obs: random_policy(obs, generator), cfg.env_id, **kwargs),
    )


def clone(
    cfg: Config,
    obs: torch.Tensor,
    actions: torch.Tensor,
    spaces: dict[str, Any],
    run_dir: str | None = None,
    episodes: torch.Tensor | None = None,
) -> tuple[BCPolicy, dict[str, float], EvalResult | None, Path | None]:
    """Fit the classifier on ``(obs, actions)`` and evaluate it in the env.

    ``episodes`` (an id per step) makes the held-out steps whole episodes (held out one by one,
    steps would be tested beside their neighbours in the same episode, learned from); ``None``
    holds out single steps.

    Returns:
        ``(policy, metrics, evaluation, run_dir)``; ``metrics`` holds ``val_accuracy``
        (agreement with the teacher on the held-out steps), ``epochs`` and, when
        ``cfg.eval_episodes > 0``, ``bc_success`` and ``bc_return``.
    """
    if not isinstance(obs, torch.Tensor) or not isinstance(actions, torch.Tensor):
        raise TypeError("clone: obs and actions must be tensors (see load_demos)")
    if obs.dim() != 2 or actions.dim() != 1 or obs.shape[0] != actions.shape[0]:
        raise ValueError(
            f"clone: expected obs (T, obs_dim) and actions (T,), got {tuple(obs.shape)} and "
            f"{tuple(actions.shape)}"
        )
    if obs.shape[0] < 2:
        raise ValueError(
            f"clone: behaviour cloning needs at least 2 demonstrated steps (one to learn from, "
            f"one held out to pick the best epoch), got {obs.shape[0]}"
        )
    if list(obs.shape[1:]) != [math.prod(spaces["obs_shape"])]:
        raise ValueError(
            f"demonstrations have observations of size {obs.shape[1]}, but {cfg.env_id} has "
            f"{spaces['obs_shape']}; record them in the same env (and env arguments)"
        )
    if int(actions.min()) < 0 or int(actions.max()) >= spaces["action_n"]:
        raise ValueError(f"demonstrated actions must lie in [0, {spaces['action_n'] - 1}]")
    torch.manual_seed(cfg.seed)  # the classifier's initial weights
    result = fit(
        build_model(spaces, cfg),
        obs,
        actions,
        cfg.fit_config(run_dir),
        run_config={"bc": config_to_dict(cfg)},
        checkpoint_extra={
            "algo": ALGO, "config": config_to_dict(cfg), "env_id": cfg.env_id, "spaces": spaces,
        },
        groups=episodes,
    )  # fmt: skip
    policy = BCPolicy(result.model)
    metrics = {"val_accuracy": result.val_metrics["accuracy"], "epochs": float(result.epochs_run)}
    evaluation = None
    if cfg.eval_episodes > 0:
        evaluation = evaluate(
            policy.act, cfg.env_id, episodes=cfg.eval_episodes, device=policy.device,
            seed=cfg.seed, env_kwargs=cfg.evaluation_env_kwargs,
        )  # fmt: skip
        metrics.update(bc_success=evaluation.success_rate, bc_return=evaluation.mean_return)
    return policy, metrics, evaluation, result.run_dir


@restores_thread_count
def train(cfg: Config, *, resume: str | Path | None = None) -> TrainResult:
    """Clone the teacher: gather demonstrations, fit the classifier, evaluate it.

    ``metrics`` holds :func:`clone`'s, ``expert_steps``, ``demo_steps`` and, for DogTraining
    with evaluation, ``expert_success``/``random_success`` and their returns (the teacher and a
    uniformly random policy on the same evaluation houses).

    Raises:
        ValueError: ``resume`` (BC trains in seconds; rerun instead), bad demo files, or no
            scripted expert for ``cfg.env_id`` while ``num_expert_steps > 0``.
    """
    if resume is not None:
        raise ValueError("behaviour cloning takes seconds and cannot be resumed; run it again")
    device = resolve_device(cfg.device)
    configure_threads(device, cfg.num_threads)
    seed_everything(cfg.seed)
    spaces = _spaces(cfg.env_id, cfg.env_kwargs)
    if cfg.eval_episodes > 0 and cfg.eval_env_kwargs is not None:  # checked before training
        check_env_values("eval_env_kwargs", cfg.env_id, cfg.eval_env_kwargs)
    obs, actions, episodes, demo_steps = gather_dataset(cfg, device, spaces)
    run_dir = None
    if cfg.write_run:
        run_dir = cfg.run_dir or str(Path(RUNS_ROOT) / run_name(cfg.env_id, ALGO, cfg.seed))
    policy, metrics, evaluation, out_dir = clone(cfg, obs, actions, spaces, run_dir, episodes)
    metrics.update(expert_steps=float(cfg.num_expert_steps), demo_steps=float(demo_steps))
    if evaluation is not None:
        if cfg.env_id == DOG_ENV_ID:
            expert, random = evaluate_baselines(cfg, device)
            metrics.update(
                expert_success=expert.success_rate, expert_return=expert.mean_return,
                random_success=random.success_rate, random_return=random.mean_return,
            )  # fmt: skip
        if out_dir is not None:
            write_json(out_dir / "eval.json", {**evaluation.to_json(), **metrics})
    return TrainResult(
        policy=policy,
        global_step=obs.shape[0],
        run_dir=out_dir,
        metrics=metrics,
        evaluation=evaluation,
    )


@restores_thread_count
def expert_steps_needed(
    cfg: Config,
    sizes: tuple[int, ...] = (20, 40, 80, 160, 320, 640, 1280, 2560),
    target_success: float | None = None,
) -> dict[str, Any]:
    """How many expert steps BC needs: clone from growing prefixes of one demonstration.

    Args:
        cfg: the BC settings (its ``demos`` and ``num_expert_steps`` are not used).
        sizes: dataset sizes to try, in increasing order.
        target_success: the success rate that counts as learned; ``None`` uses DogTraining's
            :data:`~envs.dog_training.SOLVED_SUCCESS_RATE`.

    Returns:
        ``{"expert_steps_needed": the smallest size reaching the target (None if none did),
        "target_success": ..., "curve": [[size, success_rate], ...]}``.
    """
    if target_success is None:
        from envs.dog_training import SOLVED_SUCCESS_RATE

        target_success = SOLVED_SUCCESS_RATE
    if cfg.eval_episodes < 1:
        raise ValueError("expert_steps_needed evaluates each clone: set eval_episodes >= 1")
    if not sizes or any(b <= a for a, b in itertools.pairwise(sizes)) or sizes[0] < 2:
        raise ValueError(f"sizes must increase and start at >= 2 steps, got {sizes}")
    device = resolve_device(cfg.device)
    configure_threads(device, cfg.num_threads)
    spaces = _spaces(cfg.env_id, cfg.env_kwargs)
    # One demonstration, cut into growing prefixes: each size adds to what the smaller saw.
    obs, actions, episodes = collect_expert_demos(
        cfg.env_id, sizes[-1], seed=cfg.seed, device=device, env_kwargs=cfg.env_kwargs
    )
    curve, needed = [], None
    for size in sizes:
        _, metrics, _, _ = clone(cfg, obs[:size], actions[:size], spaces, None, episodes[:size])
        curve.append([size, metrics["bc_success"]])
        if needed is None and metrics["bc_success"] >= target_success:
            needed = size
    return {"expert_steps_needed": needed, "target_success": target_success, "curve": curve}


def plot_sweep(sweep: dict[str, Any], baselines: dict[str, Any], path: str | Path) -> Path:
    """The clone's success rate against expert steps, with the expert's and random's rates.

    Args:
        sweep: :func:`expert_steps_needed`'s result.
        baselines: ``expert_success`` and ``random_success`` (as in :func:`train`'s metrics).
        path: the PNG to write.
    """
    import matplotlib  # Lazy: slow to import.

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes, success = zip(*sweep["curve"], strict=True)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(sizes, success, marker="o", label="behaviour cloning")
    for key, style in (("expert_success", "g--"), ("random_success", "r:")):
        if baselines.get(key) is not None:
            ax.axhline(baselines[key], color=style[0], ls=style[1:], label=key.split("_")[0])
    if sweep["expert_steps_needed"] is not None:
        ax.axvline(sweep["expert_steps_needed"], color="gray", lw=0.8,
                   label=f"{sweep['target_success']:.0%} reached")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(n) for n in sizes])
    ax.minorticks_off()
    ax.set(xlabel="expert steps demonstrated", ylabel="success rate on unseen houses",
           ylim=(-0.03, 1.03), title="How many expert steps does cloning need?")  # fmt: skip
    ax.legend(loc="center right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def load_policy(checkpoint: dict[str, Any] | str | Path, device: str = "cpu") -> BCPolicy:
    """A :class:`BCPolicy` from a BC checkpoint dict (or a ``.pt`` path), on ``device``.

    Raises:
        rl.checkpoint.CheckpointError: an unreadable file.
        ValueError: a checkpoint of another algorithm or with missing entries.
    """
    checkpoint = read_policy_checkpoint(checkpoint, ALGO)
    cfg = config_from_dict(Config, checkpoint["config"])
    model = build_model(checkpoint["spaces"], cfg)
    model.load_state_dict(checkpoint["model"])
    return BCPolicy(model.to(resolve_device(device)))


# -- python -m agents.bc -------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Clone from the command line: ``--field-name VALUE`` for every :class:`Config` field. Bad
    input is one line on stderr and exit code 2, as with ``rl supervised bc``."""
    prog = "python -m agents.bc"
    args = parse_config_args(prog, "Behaviour cloning.", Config, argv)
    args = {k: v for k, v in args.items() if v is not None}

    def make_config() -> Config:
        refuse_empty_run_dir(args.get("run_dir"))
        return default_config(args.pop("env_id", DOG_ENV_ID), **args)

    code, result = run_command(prog, make_config, train)
    if code:
        return code
    for key, value in result.metrics.items():
        print(f"{key}: {value:.3f}")
    print(f"run: {result.run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
