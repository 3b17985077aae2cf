"""Reusing what a network learned: transfer learning and self-supervised pretraining, with PPO.

Both start a PPO run (:mod:`agents.ppo`) from weights learned elsewhere, through PPO's
``Config.init_from`` (a checkpoint whose network weights start the run; optimizer and counters
start fresh), and race it against PPO from random weights on the same houses:

* **Transfer** (:func:`transfer`): PPO learns on one set of DogTraining houses (the *source*,
  houses 0-99), then fine-tunes on houses it never saw (the *target*, 1000-1099).
* **Self-supervised pretraining** (:func:`pretrain`): no reward and no teacher. A dog acting at
  random in the target houses gives unlabelled transitions ``(obs, action, next_obs)``; an encoder
  learns to predict the next observation (a forward model), so its hidden layers come to describe
  the house. Those layers then become the torso (hidden layers) of PPO's actor and critic.

The race is scored by ``steps_to_threshold``: env steps until PPO's stop rule finds the training
return at ``threshold_return`` (its ``target_return``) and stops the run; a run that never stops
is scored by the first iteration whose training episodes average it (``None``: neither). Each learner is one PPO run folder with its TensorBoard curve; the
comparison writes a curve PNG and ``result.json`` next to them.

Reading order: :class:`Config` → :func:`race` → :func:`transfer` → :func:`collect_unlabelled`
→ :class:`ForwardModel` → :func:`pretrain_encoder` → :func:`torso_checkpoint` → :func:`pretrain`.

Run it: ``python -m agents.representation transfer`` or ``... pretrain`` (or ``rl supervised
transfer``/``pretrain``, which also prints a summary).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

import envs  # noqa: F401  (registers the sandbox/ env ids)
from agents import ppo
from agents.base import parse_config_args, refuse_empty_run_dir, run_command, space_spec
from agents.bc import DogDefault, drop_dog_defaults
from rl.checkpoint import save_checkpoint
from rl.config import (
    check_field_types,
    config_to_dict,
    is_int,
    replace_config,
    require_int,
)
from rl.device import configure_threads, resolve_device, restores_thread_count
from rl.evaluation import evaluate, require_episodes
from rl.runs import RUNS_ROOT, run_name, write_json
from rl.seeding import seed_everything
from rl.supervised import FitConfig, fit
from rl.tensors import one_hot
from rl.vector import check_env_kwargs, check_env_values, make_vector_env

DOG_ENV_ID = "sandbox/DogTraining-v0"
MAX_UNLABELLED_STEPS = 10_000_000
"""The most ``unlabelled_steps``: the transitions are held in memory whole (two DogTraining
observations are 888 bytes, so this is 8.9 GB)."""
# PPO fields every run of a comparison sets itself from this Config: the field to set instead.
_SET_PER_RUN = {
    "env_id": "env_id",
    "env_kwargs": "source_env_kwargs or target_env_kwargs",
    "seed": "seed",
    "device": "device",
    "total_timesteps": "source_timesteps or max_timesteps",
    "run_dir": "run_dir",
    "target_return": "threshold_return",
    "eval_episodes": "eval_episodes",
    "progress": "progress",
}


def _source_houses() -> dict[str, Any]:
    return DogDefault(layout="random", num_layouts=100)


def _target_houses() -> dict[str, Any]:
    return DogDefault(layout="random", num_layouts=100, layout_offset=1000)


@dataclass(frozen=True)
class Config:
    """Settings shared by the transfer and pretraining comparisons."""

    env_id: str = DOG_ENV_ID
    """The env (its source and target differ only in ``env_kwargs``)."""
    source_env_kwargs: dict[str, Any] = field(default_factory=_source_houses)
    """Where transfer's first PPO run learns (default: houses 0-99 for DogTraining, the env's
    own defaults for another ``env_id``)."""
    target_env_kwargs: dict[str, Any] = field(default_factory=_target_houses)
    """The unseen houses every learner is raced on (default: houses 1000-1099 for
    DogTraining, the env's own defaults for another ``env_id``)."""
    seed: int = 1
    """Seeds every run (the same seed for each learner, so only the start differs)."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:K``."""
    source_timesteps: int = 150_000
    """PPO steps on the source houses (transfer only)."""
    max_timesteps: int = 200_000
    """Each learner's budget on the target houses; it stops sooner once it reaches the threshold."""
    threshold_return: float = 1.0
    """Mean training-episode return that counts as learned (the scripted expert scores ~1.3,
    a random dog ~-1.2 under the default ``coached`` rewards)."""
    ppo_overrides: dict[str, Any] = field(default_factory=dict)
    """Extra PPO settings for every run, e.g. ``{"learning_rate": 5e-4}``; not the ones this
    Config sets per run (``env_id``, ``seed``, ``total_timesteps``, ...)."""
    unlabelled_steps: int = 20_000
    """Random-policy transitions the encoder learns from (pretraining only); at most
    :data:`MAX_UNLABELLED_STEPS`."""
    pretrain_epochs: int = 40
    """The most passes of the forward model over those transitions."""
    pretrain_learning_rate: float = 3e-3
    """Adam's step size for the forward model."""
    eval_episodes: int = 100
    """Deterministic evaluation episodes on the target houses after each run; at most
    :data:`rl.evaluation.MAX_EPISODES`."""
    run_dir: str | None = None
    """Folder for the comparison; ``None`` picks ``runs/supervised-<task>__ppo__<seed>__<time>``."""
    progress: bool = False
    """Show PPO's progress bars (on stderr; `rl supervised` shows them unless --json)."""

    def __post_init__(self) -> None:
        check_field_types(self)
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(
                f"env_id must be an env id such as {DOG_ENV_ID!r}, got {self.env_id!r}"
            )
        # The houses are DogTraining's arguments only.
        drop_dog_defaults(self, {"source_env_kwargs": {}, "target_env_kwargs": {}})
        for name in ("source_env_kwargs", "target_env_kwargs", "ppo_overrides"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a dict, got {getattr(self, name)!r}")
        for name in ("source_env_kwargs", "target_env_kwargs"):
            check_env_kwargs(name, self.env_id, getattr(self, name))
        for name in ("source_timesteps", "max_timesteps", "pretrain_epochs"):
            require_int(name, getattr(self, name), 1)
        # One transition to learn from and one held out, at least.
        require_int("unlabelled_steps", self.unlabelled_steps, 2)
        require_int("seed", self.seed, 0)
        require_episodes("eval_episodes", self.eval_episodes)
        if self.unlabelled_steps > MAX_UNLABELLED_STEPS:
            raise ValueError(
                f"unlabelled_steps must be at most {MAX_UNLABELLED_STEPS:,}, got "
                f"{self.unlabelled_steps:,}: the transitions are held in memory"
            )
        if not math.isfinite(self.threshold_return):
            raise ValueError(f"threshold_return must be finite, got {self.threshold_return}")
        if not (math.isfinite(self.pretrain_learning_rate) and self.pretrain_learning_rate > 0):
            raise ValueError(
                f"pretrain_learning_rate must be a finite number > 0, got "
                f"{self.pretrain_learning_rate!r}"
            )
        for key in self.ppo_overrides:
            if key in _SET_PER_RUN:
                raise ValueError(
                    f"ppo_overrides cannot set {key!r}: the comparison sets it for each PPO run; "
                    f"set {_SET_PER_RUN[key]} instead"
                )
            if key == "init_from":
                raise ValueError(
                    "ppo_overrides cannot set 'init_from': the comparison chooses each "
                    "learner's starting weights"
                )
        # PPO's own checks of the overrides, now rather than after minutes of training.
        try:
            ppo.default_config(self.env_id, **self.ppo_overrides)
        except ValueError as exc:
            raise ValueError(f"ppo_overrides: {exc}") from None


def ppo_config(
    cfg: Config,
    env_kwargs: dict[str, Any],
    total_timesteps: int,
    run_dir: Path,
    *,
    init_from: str | None = None,
    target_return: float | None = None,
) -> ppo.Config:
    """PPO's preset for ``cfg.env_id`` with this comparison's settings.

    Raises:
        ValueError: ``agents.ppo.Config`` lacks the ``init_from`` field this module needs.
    """
    if init_from is not None:
        _require_init_from()
    overrides: dict[str, Any] = {
        **cfg.ppo_overrides,
        "env_kwargs": env_kwargs,
        "seed": cfg.seed,
        "device": cfg.device,
        "total_timesteps": total_timesteps,
        "run_dir": str(run_dir),
        "target_return": target_return,
        "eval_episodes": cfg.eval_episodes,
        "progress": cfg.progress,
    }
    if init_from is not None:
        overrides["init_from"] = init_from
    return ppo.default_config(cfg.env_id, **overrides)


def planned_steps(cfg: Config, budgets: dict[str, int]) -> dict[str, int]:
    """The env steps each PPO budget (a field of ``cfg`` → its value) will train: PPO trains in
    whole iterations, so it rounds ``total_timesteps`` down (to one iteration at least). Where
    that changes a budget, says so once on stderr, as ``rl train`` does (stdout may be JSON)."""
    run = ppo_config(cfg, cfg.target_env_kwargs, 1, Path(RUNS_ROOT))
    per = run.batch_size
    planned = {name: max(1, steps // per) * per for name, steps in budgets.items()}
    changed = [
        f"{name} {steps:,} becomes {planned[name]:,}"
        for name, steps in budgets.items()
        if planned[name] != steps
    ]
    if changed:
        print(
            f"note: PPO trains in whole iterations of {per:,} steps ({run.num_envs} envs x "
            f"{run.num_steps} steps): {', '.join(changed)}",
            file=sys.stderr,
        )
    return planned


def _require_init_from() -> None:
    if not hasattr(ppo.Config, "init_from"):
        raise ValueError(
            "agents.ppo.Config has no init_from field, so PPO cannot start from given weights; "
            "transfer and pretraining need an agents/ppo.py with Config.init_from"
        )


def learning_curve(run_dir: str | Path, tag: str = "charts/episodic_return") -> list[list[float]]:
    """``[[global_step, value], ...]`` of one TensorBoard scalar in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import (
        EventAccumulator,  # Lazy: slow to import.
    )

    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    if tag not in events.Tags()["scalars"]:
        return []
    return [[float(e.step), float(e.value)] for e in events.Scalars(tag)]


def steps_to_threshold(curve: list[list[float]], threshold: float) -> int | None:
    """The first step whose value reaches ``threshold``; ``None`` if it never does."""
    for step, value in curve:
        if value >= threshold:
            return int(step)
    return None


def race(
    cfg: Config,
    parent: Path,
    starts: dict[str, str | None],
    title: str,
    source_curve: list[list[float]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Train one PPO learner per ``starts`` entry (name → ``init_from`` or ``None``) on the target
    houses, then plot their curves into ``parent/curves.png``.

    Args:
        source_curve: the curve of the run the weights came from, drawn in a panel of its own.

    Returns:
        Per learner: ``steps`` (trained), ``steps_to_threshold``, ``final_success``
        (deterministic evaluation), ``final_return`` and ``run_dir``.
    """
    out: dict[str, dict[str, Any]] = {}
    curves: dict[str, list[list[float]]] = {}
    for name, init_from in starts.items():
        run = parent / name
        result = ppo.train(
            ppo_config(
                cfg, cfg.target_env_kwargs, cfg.max_timesteps, run,
                init_from=init_from, target_return=cfg.threshold_return,
            )
        )  # fmt: skip
        curves[name] = learning_curve(run)
        # A run that stopped at the target reached it there, even where the curve's points
        # (plain means of the episodes that ended) stay just below the stop rule's window.
        stopped = result.metrics.get("target_reached_return") is not None
        reached = steps_to_threshold(curves[name], cfg.threshold_return)
        out[name] = {
            "steps": result.global_step,
            "steps_to_threshold": result.global_step if stopped else reached,
            "final_success": None if result.evaluation is None else result.evaluation.success_rate,
            "final_return": None if result.evaluation is None else result.evaluation.mean_return,
            "run_dir": str(run),
        }
    plot_curves(curves, cfg.threshold_return, title, parent / "curves.png", source_curve)
    return out


def plot_curves(
    curves: dict[str, list[list[float]]],
    threshold: float,
    title: str,
    path: Path,
    source_curve: list[list[float]] | None = None,
) -> Path:
    """Training return against env steps, one line per learner, with the threshold.

    With ``source_curve``, a first panel shows how the transferred weights were learned.
    """
    import matplotlib  # Lazy: slow to import.

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 1 if source_curve is None else 2
    fig, axes = plt.subplots(
        1, panels, figsize=(6.5 * panels, 4.5), sharey=True, squeeze=False,
        gridspec_kw={"width_ratios": [1] * panels},
    )  # fmt: skip
    if source_curve:
        steps, values = zip(*source_curve, strict=True)
        axes[0, 0].plot(steps, values, marker=".", color="gray", label="source run")
        axes[0, 0].set(xlabel="env steps on the source houses",
                       title="1. Learn on the source houses")  # fmt: skip
    ax = axes[0, -1]
    for name, curve in curves.items():
        if curve:
            steps, values = zip(*curve, strict=True)
            reached = steps_to_threshold(curve, threshold)
            label = f"{name}: {reached:,} steps" if reached is not None else f"{name}: not reached"
            # A run that reaches the threshold at once is a single point: make it visible.
            ax.plot(steps, values, marker="o" if len(curve) < 3 else ".", label=label)
    ax.set(xlabel="env steps on the target (unseen) houses",
           title=title if panels == 1 else "2. Learn on unseen houses")  # fmt: skip
    for axis in axes[0]:
        axis.set_xlim(left=0)
        axis.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
        axis.grid(alpha=0.3)
        axis.legend(loc="lower right")
    axes[0, 0].set_ylabel("mean training episode return")
    if panels > 1:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _parent_path(cfg: Config, task: str) -> Path:
    """The comparison's folder (not made yet)."""
    return Path(cfg.run_dir or Path(RUNS_ROOT) / run_name(f"supervised-{task}", "ppo", cfg.seed))


def _make_parent(cfg: Config, parent: Path) -> Path:
    """Make the comparison's folder and write its ``config.json``."""
    parent.mkdir(parents=True, exist_ok=True)
    write_json(parent / "config.json", config_to_dict(cfg))
    return parent


# -- transfer ------------------------------------------------------------------------------------
@restores_thread_count
def transfer(cfg: Config) -> dict[str, Any]:
    """Pretrain PPO on the source houses, fine-tune on the target houses, race it from scratch.

    Returns:
        ``steps_to_threshold_transfer`` and ``steps_to_threshold_scratch`` (``None``: not within
        ``max_timesteps``), ``max_steps`` (each learner's budget: ``max_timesteps`` in whole
        PPO iterations, see :func:`planned_steps`), ``source_steps``, each learner's final
        success rate, the source run's, and the PNG.
    """
    _require_init_from()  # before any training, not after the source run
    planned = planned_steps(
        cfg, {"source_timesteps": cfg.source_timesteps, "max_timesteps": cfg.max_timesteps}
    )
    for name in ("source_env_kwargs", "target_env_kwargs"):  # before the folder is made
        check_env_values(name, cfg.env_id, getattr(cfg, name))
    parent = _make_parent(cfg, _parent_path(cfg, "transfer"))
    source = ppo.train(
        ppo_config(cfg, cfg.source_env_kwargs, cfg.source_timesteps, parent / "source")
    )
    # Before any fine-tuning: how well does the source policy already do in the unseen houses?
    zero_shot = None
    if cfg.eval_episodes > 0:
        zero_shot = evaluate(
            source.policy.act, cfg.env_id, episodes=cfg.eval_episodes, device=cfg.device,
            seed=cfg.seed, env_kwargs=cfg.target_env_kwargs,
        ).success_rate  # fmt: skip
    # The source run folder stands for its latest.pt: the policy zero_shot measured above.
    learners = race(
        cfg, parent, {"transfer": str(source.run_dir), "scratch": None},
        "Transfer: PPO on unseen houses, from source-house weights vs from scratch",
        source_curve=learning_curve(parent / "source"),
    )  # fmt: skip
    result = {
        "task": "transfer",
        "steps_to_threshold_transfer": learners["transfer"]["steps_to_threshold"],
        "steps_to_threshold_scratch": learners["scratch"]["steps_to_threshold"],
        "threshold_return": cfg.threshold_return,
        "max_steps": planned["max_timesteps"],
        "source_steps": source.global_step,
        "source_success": None if source.evaluation is None else source.evaluation.success_rate,
        "zero_shot_success": zero_shot,
        "success_transfer": learners["transfer"]["final_success"],
        "success_scratch": learners["scratch"]["final_success"],
        "learners": learners,
        "run_dir": str(parent),
        "plot": str(parent / "curves.png"),
    }
    write_json(parent / "result.json", result)
    return result


# -- self-supervised pretraining -----------------------------------------------------------------
@torch.no_grad()
def collect_unlabelled(
    env_id: str,
    num_steps: int,
    *,
    num_envs: int = 64,
    seed: int = 0,
    device: str | torch.device = "cpu",
    env_kwargs: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
    """Random-policy transitions without rewards: ``(obs, actions, next_obs, spaces)``.

    ``next_obs`` is each transition's own successor (``info["final_obs"]`` where an episode
    ended), never the next episode's first observation. Discrete actions only.
    """
    require_int("num_steps", num_steps, 1)
    env = make_vector_env(env_id, num_envs, device, env_kwargs=env_kwargs)  # checks num_envs
    try:
        spaces = space_spec(env.single_observation_space, env.single_action_space)
        if spaces["action_kind"] != "discrete":
            raise ValueError(f"{env_id}: pretraining here needs a Discrete action space")
        obs, _ = env.reset(seed=seed)
        generator = torch.Generator(device=obs.device).manual_seed(seed)
        rows = math.ceil(num_steps / num_envs)
        all_obs = torch.empty(rows, *obs.shape, device=obs.device)  # (T, N, D)
        all_next = torch.empty_like(all_obs)
        all_actions = torch.empty(rows, num_envs, dtype=torch.long, device=obs.device)
        for t in range(rows):
            actions = torch.randint(
                spaces["action_n"], (num_envs,), generator=generator, device=obs.device
            )
            next_obs, _, _, _, info = env.step(actions)
            all_obs[t], all_actions[t], all_next[t] = obs, actions, info["final_obs"]
            obs = next_obs
    finally:
        env.close()
    flat = (all_obs.flatten(0, 1), all_actions.flatten(), all_next.flatten(0, 1))
    obs_t, actions_t, next_t = (x[:num_steps].cpu() for x in flat)
    return obs_t, actions_t, next_t, spaces


class ForwardModel(nn.Module):
    """Predicts the change ``next_obs - obs`` from ``obs`` and the action taken.

    The encoder has the shape of PPO's torso (``obs → hidden_sizes``, tanh), so its weights
    can replace the torso's. Input rows are ``[obs, one_hot(action)]`` concatenated, so the
    model trains through :func:`rl.supervised.fit` like any regression.
    """

    def __init__(self, obs_dim: int, num_actions: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        for name, value in (("obs_dim", obs_dim), ("num_actions", num_actions)):
            if not is_int(value, 1):
                raise ValueError(f"ForwardModel: {name} must be an integer >= 1, got {value!r}")
        if not all(is_int(h, 1) for h in hidden_sizes):
            raise ValueError(
                f"ForwardModel: hidden_sizes must be layer widths >= 1 (as PPO's torso), got "
                f"{tuple(hidden_sizes)}"
            )
        self.obs_dim = obs_dim
        layers: list[nn.Module] = []
        width = obs_dim
        for hidden in hidden_sizes:
            layers += [nn.Linear(width, hidden), nn.Tanh()]
            width = hidden
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(width + num_actions, 128), nn.ReLU(), nn.Linear(128, obs_dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x[:, : self.obs_dim])
        return self.head(torch.cat([features, x[:, self.obs_dim :]], dim=1))


def pretrain_encoder(
    cfg: Config, run_dir: Path, hidden_sizes: tuple[int, ...]
) -> tuple[ForwardModel, dict[str, Any]]:
    """Collect unlabelled rollouts on the target houses and fit the forward model on them.

    Returns:
        The trained model and its held-out metrics (``r2`` of the predicted change).
    """
    device = resolve_device(cfg.device)
    obs, actions, next_obs, spaces = collect_unlabelled(
        cfg.env_id, cfg.unlabelled_steps, seed=cfg.seed, device=device,
        env_kwargs=cfg.target_env_kwargs,
    )  # fmt: skip
    x = torch.cat([obs, one_hot(actions, spaces["action_n"])], dim=1)
    torch.manual_seed(cfg.seed)
    model = ForwardModel(obs.shape[1], spaces["action_n"], hidden_sizes)
    fit_cfg = FitConfig(
        task="regression", epochs=cfg.pretrain_epochs, batch_size=256,
        learning_rate=cfg.pretrain_learning_rate, patience=5, seed=cfg.seed, device=cfg.device,
        run_dir=str(run_dir),
    )  # fmt: skip
    # The target is the change, not the next observation itself: most entries stay put each
    # step, so "copy the input" would already score well on the observation itself.
    result = fit(model, x, next_obs - obs, fit_cfg, learning_rate_name="pretrain_learning_rate")
    metrics = {
        "r2": result.val_metrics["r2"],
        "epochs": result.epochs_run,
        "transitions": obs.shape[0],
    }
    return result.model, metrics


def torso_checkpoint(
    encoder: nn.Sequential, cfg: ppo.Config, spaces: dict[str, Any], path: Path
) -> Path:
    """A PPO checkpoint whose actor and critic torsos are ``encoder``'s layers.

    The output layers keep PPO's own initialisation (a near-uniform policy, a zero-ish value),
    so only the features come from pretraining.
    """
    torch.manual_seed(cfg.seed)
    agent = ppo.ActorCritic(spaces, cfg.hidden_sizes, cfg.activation, cfg.init_log_std)
    linear = [m for m in encoder if isinstance(m, nn.Linear)]
    for net in (agent.actor, agent.critic):
        torso = [m for m in net if isinstance(m, nn.Linear)][: len(linear)]
        for target, source in zip(torso, linear, strict=True):
            target.load_state_dict(source.state_dict())
    return save_checkpoint(
        {"algo": ppo.ALGO, "model": agent.state_dict(), "config": config_to_dict(cfg),
         "env_id": cfg.env_id, "spaces": spaces},
        path,
    )  # fmt: skip


@restores_thread_count
def pretrain(cfg: Config) -> dict[str, Any]:
    """Learn an encoder by predicting the next observation, use it as PPO's torso, race scratch.

    Returns:
        ``steps_to_threshold_pretrained`` and ``steps_to_threshold_scratch`` (``None``: not within
        ``max_timesteps``), ``speedup`` (scratch steps / pretrained steps), the forward model's
        held-out ``r2``, ``max_steps`` (each learner's budget in whole PPO iterations, see
        :func:`planned_steps`), final success rates and the PNG.
    """
    _require_init_from()
    planned = planned_steps(cfg, {"max_timesteps": cfg.max_timesteps})
    device = resolve_device(cfg.device)
    configure_threads(device)
    seed_everything(cfg.seed)
    parent = _parent_path(cfg, "pretrain")
    base = ppo_config(cfg, cfg.target_env_kwargs, cfg.max_timesteps, parent)
    # The learners' settings are checked before the run folder is made.
    if base.activation != "tanh":
        raise ValueError("the forward model's encoder is tanh; set PPO's activation to tanh")
    if base.norm_obs:
        raise ValueError(
            "the forward model's encoder learns from raw observations, but norm_obs feeds PPO's "
            "torso normalised ones; leave norm_obs off in ppo_overrides for pretrain"
        )
    check_env_values("target_env_kwargs", cfg.env_id, cfg.target_env_kwargs)
    _make_parent(cfg, parent)
    model, encoder_metrics = pretrain_encoder(cfg, parent / "encoder", base.hidden_sizes)
    spaces = _spaces(cfg)
    init = torso_checkpoint(model.encoder.cpu(), base, spaces, parent / "torso.pt")
    learners = race(
        cfg, parent, {"pretrained": str(init), "scratch": None},
        "Self-supervised pretraining: PPO with a forward-model torso vs from scratch",
    )  # fmt: skip
    pre = learners["pretrained"]["steps_to_threshold"]
    scratch = learners["scratch"]["steps_to_threshold"]
    result = {
        "task": "pretrain",
        "steps_to_threshold_pretrained": pre,
        "steps_to_threshold_scratch": scratch,
        "speedup": None if pre is None or scratch is None else scratch / pre,
        "threshold_return": cfg.threshold_return,
        "max_steps": planned["max_timesteps"],
        "encoder": encoder_metrics,
        "success_pretrained": learners["pretrained"]["final_success"],
        "success_scratch": learners["scratch"]["final_success"],
        "learners": learners,
        "run_dir": str(parent),
        "plot": str(parent / "curves.png"),
    }
    write_json(parent / "result.json", result)
    return result


def _spaces(cfg: Config) -> dict[str, Any]:
    env = make_vector_env(cfg.env_id, 1, "cpu", env_kwargs=cfg.target_env_kwargs)
    try:
        return space_spec(env.single_observation_space, env.single_action_space)
    finally:
        env.close()


def default_config(**overrides: Any) -> Config:
    """The comparison's defaults with ``overrides`` (typed values or ``--set`` strings)."""
    return replace_config(Config(), overrides)


def main(argv: list[str] | None = None) -> int:
    """``python -m agents.representation transfer|pretrain``, ``--field-name VALUE`` for every
    :class:`Config` field. Bad input is one line on stderr and exit code 2."""
    prog = "python -m agents.representation"
    description = (
        "Transfer learning or self-supervised pretraining, raced against PPO from random weights."
    )
    args = parse_config_args(
        prog, description, Config, argv,
        lambda parser: parser.add_argument("task", choices=("transfer", "pretrain")),
    )  # fmt: skip
    task = args.pop("task")

    def make_config() -> Config:
        refuse_empty_run_dir(args.get("run_dir"))
        return default_config(**{k: v for k, v in args.items() if v is not None})

    code, result = run_command(prog, make_config, transfer if task == "transfer" else pretrain)
    if code:
        return code
    for key, value in result.items():
        if isinstance(value, (int, float, str, Path)) or value is None:
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
