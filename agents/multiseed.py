"""K independent PPO agents trained in one process (``python -m agents.multiseed --seeds 0-63``).

The same maths as :mod:`agents.ppo` (clipped surrogate, GAE from :func:`rl.returns.compute_gae`,
clipped value loss, entropy bonus, linear LR annealing, gradient-norm clipping), run for ``K``
agents at once so that one device runs many seeds for about the price of one:

* **Stacked weights** (:mod:`agents.stacked`): each layer's weights one ``(K, in, out)`` tensor,
  one ``torch.baddbmm`` per layer for all agents, all parameters views of one ``(K, P)`` tensor
  for a batched Adam and a per-agent clip; with ``fused_update`` (the default, as in
  :mod:`agents.ppo`) hand-written gradients (:func:`agents.ppo_grads.stacked_loss_and_grads`).
* **One vector env of ``K * N`` rows**; agent ``k`` owns rows ``[k * N, (k + 1) * N)``. The
  rollout is :func:`agents.ppo.collect_rollout` itself: the stacked network takes ``(K * N, D)``
  batches and regroups them by agent inside.
* **Per-agent everything else**: advantage normalisation, minibatch permutations, losses,
  gradient norms and their clip (an agent with huge gradients never scales another's), Adam
  steps with per-agent learning rates (optionally different per agent), LR annealing, the
  ``target_return`` stop (a solved agent's learning rate drops to 0 and its observation
  statistics stop updating, which freezes it where :func:`agents.ppo.train` would have
  stopped; the run ends when every agent has solved).

Randomness. Agent ``k``'s initial weights come from ``torch.manual_seed(seeds[k])``, exactly as
:func:`agents.ppo.train` draws them, so they do not depend on ``K``. The env takes one
generator, so it is seeded once with :func:`env_seed` (derived from all the seeds); action
sampling and minibatch order draw from the global torch stream, seeded with
``rl.seeding.derive_seed(env_seed(seeds), "multiseed")`` (the env derives its own stream from
the same seed, so neither repeats the other's or the weights' draws). Each agent's
rows are still statistically independent streams (distinct rows of a counter-based hash, see
``envs/core.py``), but agent ``k``'s trajectory *does* depend on which other seeds run beside
it: results are reproducible for a given seed list, not identical across ``K``.

``norm_obs`` and ``norm_reward`` keep one set of running statistics per agent
(:class:`rl.tensors.GroupedRunningMeanStd` over its own rows), and ``target_kl`` stops each
agent's epochs on its own, as ``K`` runs of :func:`agents.ppo.train` would. Each per-seed run
folder holds ``agents.ppo``'s checkpoint keys (its agent's observation and return statistics
included), so ``rl eval``, ``rl watch`` and :func:`agents.ppo.load_policy` read it; only the
env's exact state is left out (a ``--resume`` of one seed alone restarts its episodes).

Resuming the whole run: a group folder beside the seeds' folders
(``runs/<env>__ppo-seeds__<first>-<last>_K<k>__<time>/multiseed.pt``, written atomically every
``checkpoint_every`` iterations and at the end) holds the stacked weights and Adam state, every
agent's statistics and stop-rule state, the shared env and the random streams:
``rl train --resume <group folder>`` continues bit for bit where an uninterrupted run would be.

Shapes: ``K`` agents, ``N = num_envs`` rows each, ``T = num_steps``, ``B = T * N`` transitions
per agent per iteration, ``D`` flattened observation size, ``A`` action size.
"""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agents import ppo_graphs
from agents.base import check_passes, report_failure, space_spec
from agents.ppo import (
    ALGO,
    RESUMABLE_FIELDS,
    ActorCritic,
    Config,
    IterationValues,
    PPOPolicy,
    collect_rollout,
    make_rollout,
    window_return,
)
from agents.stacked import (
    GroupedRewardScaler,
    StackedActorCritic,
    StackedAdam,
    evaluate_stacked,
    stacked_act,
    update,
)
from rl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rl.config import (
    MAX_INT,
    check_field_types,
    config_from_dict,
    config_to_dict,
    is_int,
    replace_config,
    resume_config,
)
from rl.device import configure_threads, resolve_device, restores_thread_count
from rl.evaluation import (
    STOP_CHECK_SEED_OFFSET,
    EvalResult,
    Evaluator,
    require_episodes,
    solved_thresholds,
)
from rl.returns import compute_gae, explained_variance
from rl.runs import (
    RUNS_ROOT,
    EpisodeTracker,
    TrainingDiverged,
    TrainingRun,
    make_new_dir,
    run_name,
    stop_requested,
    write_json,
)
from rl.seeding import derive_seed, rng_state, seed_everything, set_rng_state
from rl.tensors import GroupedRunningMeanStd
from rl.vector import make_vector_env

CUDA_CHECK_GAP = 8
""":attr:`MultiSeedConfig.check_gap` on a GPU. There a CartPole check (~500 steps of ~45
kernels) costs as much as several iterations, whether it checks 1 agent or 64. Counted on
the CPU for 64 seeds of CartPole (``benchmarks/multiseed.py --seeds 64 --check-gap G``): 32
checks in 63 iterations at every iteration (G = 1), 13 in 63 with G = 4, 8 in 64 with G = 8
(see docs/PERFORMANCE.md)."""


@dataclass(frozen=True)
class MultiSeedConfig:
    """``K`` PPO agents: shared hyperparameters, one seed (and optionally one LR) each."""

    ppo: Config = field(default_factory=Config)
    """Hyperparameters shared by every agent (its ``seed`` and ``run_dir`` are ignored)."""
    seeds: tuple[int, ...] = (0, 1, 2)
    """One agent per seed (distinct integers >= 0); K = len(seeds)."""
    learning_rates: tuple[float, ...] | None = None
    """Per-agent initial learning rates (len K); ``None`` gives every agent ``ppo.learning_rate``."""
    write_runs: bool = True
    """One run folder per seed (``runs/<env>__ppo__<seed>__<ts>``) plus a summary JSON."""
    runs_root: str = RUNS_ROOT
    """Where the per-seed run folders and the summary JSON go."""
    eval_episodes: int = 100
    """Deterministic evaluation episodes per agent after training; 0 skips it. At most
    :data:`rl.evaluation.MAX_EPISODES`."""
    solved_return: float | None = None
    """Per-seed solved bar on the final evaluation's mean return (``None``: the env's, as
    :func:`rl.evaluation.solved_thresholds` gives it; an env's success-rate bar, the dog's,
    applies either way). Only reported, never a stop rule."""
    progress: bool = True
    """Show a progress bar (the first seed's run)."""
    check_gap: int | None = None
    """How often the deterministic checks (``ppo.target_check_episodes``) run: at most one every
    ``check_gap`` iterations, for every agent whose training window passes at that iteration;
    sooner only at the run's last iteration, or when the agents whose window passed are every
    agent still training (a check that can end the run) and none of them failed a check in the
    last ``check_gap`` iterations. 1 checks at every iteration where a window passed, as
    :func:`agents.ppo.train` does. ``None``: :data:`CUDA_CHECK_GAP` on a GPU, where a check's
    kernels are as many for 1 agent as for 64 (~500 env steps for CartPole: several
    iterations' worth), else 1 (on the CPU a check's cost grows with the agents it checks)."""

    def __post_init__(self) -> None:
        check_field_types(self)
        if not self.seeds:
            raise ValueError("seeds is empty: give at least one seed, e.g. (0, 1, 2)")
        for seed in self.seeds:
            if not is_int(seed, 0):
                raise ValueError(f"seeds must be integers >= 0, got {seed!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must be distinct (one run folder each), got {self.seeds}")
        if self.learning_rates is not None and (
            len(self.learning_rates) != len(self.seeds)
            or not all(math.isfinite(lr) and lr > 0 for lr in self.learning_rates)
        ):
            raise ValueError(
                f"learning_rates needs one finite value > 0 per seed ({len(self.seeds)}), "
                f"got {self.learning_rates}"
            )
        require_episodes("eval_episodes", self.eval_episodes)  # per agent
        if self.solved_return is not None and not math.isfinite(self.solved_return):
            raise ValueError(
                f"solved_return must be a finite number, or None for the env's own bar; got "
                f"{self.solved_return}"
            )
        gap = self.check_gap
        if gap is not None and not is_int(gap, 1):
            raise ValueError(f"check_gap must be an integer >= 1 or None, got {gap!r}")

    @property
    def num_agents(self) -> int:
        """K."""
        return len(self.seeds)

    @property
    def agent_learning_rates(self) -> tuple[float, ...]:
        """Each agent's initial learning rate."""
        return self.learning_rates or (self.ppo.learning_rate,) * self.num_agents


MAX_SEEDS = 10_000
"""The most agents one multi-seed run trains (each has its own network and envs, all in one
process; the benchmarks use 64)."""


def parse_seeds(spec: str) -> tuple[int, ...]:
    """``"0-63"``, ``"0,1,5"`` or ``"0-3,10"`` → a tuple of distinct seeds, in order.

    Raises:
        ValueError: an unreadable spec, with an example of a good one.
    """
    ranges: list[tuple[int, int]] = []  # (low, high) of each part, a seed alone as (s, s)
    try:
        for part in spec.split(","):
            low, sep, high = part.strip().partition("-")
            ranges.append((int(low), int(high)) if sep else (int(low), int(low)))
    except ValueError:
        raise ValueError(
            f"cannot read seeds {spec!r}: expected e.g. '0-63', '0,1,5' or '0-3,10'"
        ) from None
    for low, high in ranges:
        if high < low:
            raise ValueError(
                f"seeds {spec!r}: the range {low}-{high} goes down; a range goes from low to "
                f"high ({high}-{low})"
            )
    if sum(high - low + 1 for low, high in ranges) > MAX_SEEDS:  # before a list is built
        raise ValueError(f"seeds {spec!r} name more than {MAX_SEEDS:,} agents for one process")
    seeds = [s for low, high in ranges for s in range(low, high + 1)]
    if any(not 0 <= s <= MAX_INT for s in seeds) or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {spec!r} must be distinct integers in [0, 2**63)")
    return tuple(seeds)


def env_seed(seeds: tuple[int, ...]) -> int:
    """The one seed of the shared env and global stream (each derives its own stream from it):
    the seed itself when K = 1."""
    if len(seeds) == 1:
        return seeds[0]
    digest = hashlib.sha256(",".join(map(str, seeds)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


class AgentEpisodes:
    """Per-agent finished-episode sums ``(K, 5)``, as :class:`rl.runs.EpisodeTracker`'s: count,
    return, length, successes and attempts (0 for envs without them); no host sync.

    Duck-types :class:`rl.runs.EpisodeTracker`'s ``record`` for :func:`agents.ppo.collect_rollout`.
    """

    WIDTH = 3 + len(EpisodeTracker.EXTRAS)

    def __init__(self, num_agents: int, num_envs: int, device: torch.device) -> None:
        self.shape = (num_agents, num_envs)
        self.sums = torch.zeros(num_agents, self.WIDTH, dtype=torch.float64, device=device)

    def record(self, info: dict[str, Any]) -> None:
        mask = info.get("_episode")
        if mask is None:
            return
        weight = mask.view(self.shape).to(torch.float64)
        episode = info["episode"]
        parts = [weight.sum(1)]
        for key in ("r", "l", *EpisodeTracker.EXTRAS):
            value = episode.get(key)
            parts.append(
                (value.view(self.shape) * weight).sum(1)
                if value is not None
                else weight.new_zeros(self.shape[0])
            )
        self.sums += torch.stack(parts, 1)

    def take(self) -> torch.Tensor:
        sums = self.sums.clone()
        self.sums.zero_()
        return sums


# -- training ------------------------------------------------------------------------------------
@dataclass
class MultiSeedResult:
    """What :func:`train` returns: one policy, run folder and metrics row per seed."""

    seeds: tuple[int, ...]
    policies: list[PPOPolicy]
    run_dirs: list[Path | None]
    per_seed: list[dict[str, Any]]
    """Per seed: final evaluation, the step it reached ``target_return`` (or None), losses."""
    summary: dict[str, Any]
    """Mean and std over seeds of the final evaluation return, solve rate, wall-clock."""
    summary_path: Path | None = None
    evaluations: list[EvalResult] = field(default_factory=list)


def _optimizer_state(
    net: StackedActorCritic, optimizer: StackedAdam, k: int, group: dict[str, Any], lr: float
) -> dict[str, Any]:
    """Agent ``k``'s Adam state in ``torch.optim.Adam.state_dict()`` form (for ppo's resume)."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    if optimizer.step_count > 0:
        moments = zip(
            net.agent_tensors(optimizer.exp_avg, k),
            net.agent_tensors(optimizer.exp_avg_sq, k),
            strict=True,
        )
        steps = optimizer.steps_of(k)  # (a read from the device, once)
        for i, (m, v) in enumerate(moments):
            state[i] = {"step": torch.tensor(steps), "exp_avg": m, "exp_avg_sq": v}
    return {"state": state, "param_groups": [{**group, "lr": lr}]}


GROUP_CHECKPOINT = "multiseed.pt"
"""The group folder's checkpoint: what ``rl train --resume GROUP`` continues from."""


def group_name(cfg: MultiSeedConfig) -> str:
    """``<env>__ppo-seeds__<first>-<last>_K<k>__<timestamp>``: the group folder (under
    ``runs_root``, beside the seeds' run folders) and its summary JSON."""
    first = cfg.seeds[0]
    return run_name(cfg.ppo.env_id, ALGO, first).replace(
        f"__{ALGO}__{first}__", f"__{ALGO}-seeds__{first}-{cfg.seeds[-1]}_K{cfg.num_agents}__"
    )


def is_group(path: str | Path) -> bool:
    """Whether ``path`` is a multi-seed group folder (holds ``multiseed.pt``)."""
    return (Path(path) / GROUP_CHECKPOINT).is_file()


def load_group_checkpoint(group_dir: str | Path) -> dict[str, Any]:
    """A group folder's ``multiseed.pt``; a one-line :class:`CheckpointError` otherwise."""
    path = Path(group_dir) / GROUP_CHECKPOINT
    if not path.is_file():
        raise CheckpointError(
            f"cannot resume: {group_dir} has no {GROUP_CHECKPOINT} (a multi-seed group folder, "
            "runs/<env>__ppo-seeds__..., holds one)"
        )
    saved = load_checkpoint(path)
    if saved.get("algo") != ALGO + "-multiseed":
        raise CheckpointError(f"{path} is not a multi-seed PPO checkpoint")
    return saved


def saved_config(group_dir: str | Path, **changes: Any) -> MultiSeedConfig:
    """The configuration a group folder trained with, with ``changes`` to the fields of
    :data:`agents.ppo.RESUMABLE_FIELDS` (e.g. ``total_timesteps``, ``device``) and
    ``progress``: what ``rl train --resume GROUP`` runs."""
    saved = load_group_checkpoint(group_dir)
    free = [name for name in RESUMABLE_FIELDS if name not in ("run_dir", "distributed")]
    fixed = sorted(name for name in changes if name not in free)
    if fixed:
        raise ValueError(
            f"a group resumes with its own {', '.join(fixed)}; only {', '.join(free)} may change"
        )
    _refuse_seeds_trained_alone(saved, group_dir)  # (train() checks too: for callers of it)
    base = replace_config(config_from_dict(Config, saved["config"]), changes)
    return _config_of(saved, base, base.progress, group_dir)


def _config_of(
    saved: dict[str, Any], base: Config, progress: bool, group_dir: str | Path
) -> MultiSeedConfig:
    """The saved group's config around ``base``; its runs root is the group folder's parent
    (where the seeds' folders are), wherever the folder was moved."""
    extra = saved["multiseed"]
    rates = extra["learning_rates"]
    return MultiSeedConfig(
        ppo=base, seeds=tuple(extra["seeds"]),
        learning_rates=None if rates is None else tuple(rates), write_runs=True,
        runs_root=str(Path(group_dir).parent), eval_episodes=extra["eval_episodes"],
        solved_return=extra["solved_return"], progress=progress,
        check_gap=extra.get("check_gap", 1),  # groups saved before it: checked every time
    )  # fmt: skip


def _check_resume(
    cfg: MultiSeedConfig, saved: dict[str, Any], group_dir: str | Path
) -> MultiSeedConfig:
    """``cfg`` as the resume runs it; a ValueError where it changes a fixed field."""
    if tuple(saved["multiseed"]["seeds"]) != cfg.seeds:
        raise ValueError(
            f"cannot resume seeds {list(cfg.seeds)} from a group of seeds "
            f"{saved['multiseed']['seeds']}"
        )
    base = resume_config(cfg.ppo, saved["config"], RESUMABLE_FIELDS)
    trained = int(saved["iteration"]) * base.batch_size  # per seed
    if max(base.total_timesteps, base.batch_size) < trained:  # (a total below one iteration: one)
        raise ValueError(
            f"cannot resume {group_dir}: each seed has trained {trained:,} steps, more than "
            f"total_timesteps {base.total_timesteps:,}; give a larger total (the steps to train "
            "in all, not the steps to add)"
        )
    resumed = _config_of(saved, base, cfg.progress, group_dir)
    if resumed.learning_rates != cfg.learning_rates:
        raise ValueError("cannot resume with different per-seed learning_rates")
    _refuse_seeds_trained_alone(saved, group_dir)
    return resumed


def _refuse_seeds_trained_alone(saved: dict[str, Any], group_dir: str | Path) -> None:
    """A ValueError where a seed's folder was continued on its own (``rl train --resume
    SEED_RUN``) since the group's checkpoint: resuming the group would overwrite that seed's
    checkpoints, evaluation and curves with the group's older state. Groups saved before their
    seeds' checkpoints were marked are not checked."""
    if not saved.get("seed_checkpoints_marked"):
        return
    for seed, name, step in zip(
        saved["multiseed"]["seeds"], saved["run_dirs"], saved["steps"], strict=True
    ):
        run = Path(group_dir).parent / Path(name).name
        latest = run / "checkpoints" / "latest.pt"
        if latest.is_file() and "group" not in (alone := load_checkpoint(latest)):
            raise ValueError(
                f"seed {seed}'s run {run} was continued on its own since (to step "
                f"{int(alone.get('global_step', 0)):,}; the group {group_dir} holds step "
                f"{int(step):,} for it), and resuming the group would overwrite it; keep "
                f"training that seed alone (rl train --resume {run}), or move its folder away "
                "first"
            )


@restores_thread_count
def train(cfg: MultiSeedConfig, *, resume: str | Path | None = None) -> MultiSeedResult:
    """Train ``K = len(cfg.seeds)`` PPO agents together; log, checkpoint and evaluate each.

    Args:
        cfg: the configuration. With ``resume``, it must equal the saved one except for
            ``agents.ppo.RESUMABLE_FIELDS`` of ``cfg.ppo`` (see :func:`resume_config`).
        resume: a group folder (``runs/<env>__ppo-seeds__...``) to continue from its
            ``multiseed.pt``: every agent, the shared env and the random streams, exactly.

    Raises:
        TrainingDiverged: a loss or parameter of some agent became non-finite (named by seed).
        rl.checkpoint.CheckpointError: ``resume`` holds no readable ``multiseed.pt``.
        ValueError: ``cfg`` changes a field a resume may not change.
    """
    start_time = time.perf_counter()
    saved = None
    if resume is not None:
        saved = load_group_checkpoint(resume)
        cfg = _check_resume(cfg, saved, resume)
    base, seeds = cfg.ppo, cfg.seeds
    k_agents, n = cfg.num_agents, base.num_envs
    device = resolve_device(base.device)
    configure_threads(device, base.num_threads)
    shared_seed = env_seed(seeds)
    env = make_vector_env(base.env_id, k_agents * n, device, env_kwargs=base.env_kwargs)
    runs: list[TrainingRun] = []
    loop: _Loop | None = None
    group_dir: Path | None = None
    try:
        spaces = space_spec(env.single_observation_space, env.single_action_space)
        agents = []
        for seed in seeds:  # the draws agents.ppo.train makes for this seed: independent of K
            seed_everything(seed)
            agents.append(
                ActorCritic(spaces, base.hidden_sizes, base.activation, base.init_log_std)
            )
        net = StackedActorCritic([a.to(device) for a in agents], n, base.activation)
        # One fused-Adam param group as torch writes it, for ppo-compatible checkpoints.
        group = torch.optim.Adam(agents[0].parameters(), eps=1e-5, fused=True).state_dict()[
            "param_groups"
        ][0]
        del agents
        # Not shared_seed itself: at K = 1 that would replay agent 0's weight draws as noise.
        seed_everything(derive_seed(shared_seed, "multiseed"))
        next_obs, _ = env.reset(seed=shared_seed)
        optimizer = StackedAdam(net)
        lr0 = torch.tensor(cfg.agent_learning_rates, device=device)
        seed_cfgs = [
            replace_config(base, {"seed": s, "learning_rate": lr})
            for s, lr in zip(seeds, cfg.agent_learning_rates, strict=True)
        ]
        if cfg.write_runs:
            group_dir = (  # made new, as each seed's (make_new_dir: no two runs share one)
                Path(resume) if resume is not None else make_new_dir(cfg.runs_root, group_name(cfg))
            )
            for i, seed_cfg in enumerate(seed_cfgs):
                run_dir = (
                    # Siblings of the group folder, wherever it was moved or resumed from.
                    Path(resume).parent / Path(saved["run_dirs"][i]).name
                    if saved is not None and resume is not None
                    else make_new_dir(cfg.runs_root, run_name(base.env_id, ALGO, seed_cfg.seed))
                )
                seed_cfgs[i] = seed_cfg = replace_config(seed_cfg, {"run_dir": str(run_dir)})
                runs.append(
                    TrainingRun(
                        run_dir,
                        config_to_dict(seed_cfg),
                        total_timesteps=base.num_iterations * base.batch_size,
                        num_snapshots=base.num_snapshots,
                        # Each agent logged up to its own step at the checkpoint.
                        purge_step=saved["steps"][i] + 1 if saved is not None else None,
                        progress=cfg.progress and i == 0,
                    )
                )
        loop = _Loop(cfg, seed_cfgs, net, optimizer, group, lr0, env, spaces, runs, next_obs)
        loop.group_dir = group_dir
        if saved is not None:
            loop.restore(saved)
        else:
            loop.save_all(0, snapshot=True)  # the untrained policies: "before" of before/after
            loop.save_group()
        loop.run()
        train_seconds = time.perf_counter() - start_time
    except KeyboardInterrupt as exc:  # a second Ctrl-C: the caller says how to continue
        exc.group_dir = group_dir  # type: ignore[attr-defined]
        raise
    finally:
        env.close()
        if loop is not None and loop.check_evaluator is not None:
            loop.check_evaluator.close()
        for run in runs:
            run.close()
    evaluations: list[EvalResult] = []
    if cfg.eval_episodes > 0:
        evaluations = evaluate_stacked(
            net, base, cfg.eval_episodes, shared_seed, device, spaces, obs_rms=loop.obs_rms
        )
    return _finish(cfg, net, spaces, runs, loop, evaluations, train_seconds)


class _Loop:
    """The iteration loop's state and steps (kept out of :func:`train` to stay readable)."""

    def __init__(
        self,
        cfg: MultiSeedConfig,
        seed_cfgs: list[Config],
        net: StackedActorCritic,
        optimizer: StackedAdam,
        group: dict[str, Any],
        lr0: torch.Tensor,
        env: Any,
        spaces: dict[str, Any],
        runs: list[TrainingRun],
        next_obs: torch.Tensor,
    ) -> None:
        self.cfg, self.base, self.seed_cfgs = cfg, cfg.ppo, seed_cfgs
        self.net, self.optimizer, self.group, self.lr0 = net, optimizer, group, lr0
        self.env, self.spaces, self.runs, self.next_obs = env, spaces, runs, next_obs
        k = cfg.num_agents
        device = next_obs.device
        self.storage = make_rollout(
            replace_config(self.base, {"num_envs": k * net.num_envs}), spaces, device
        )
        self.tracker = AgentEpisodes(k, net.num_envs, device)
        self.reward_sum = torch.zeros(k * net.num_envs, dtype=torch.float64, device=device)
        self.obs_rms = (
            GroupedRunningMeanStd(k, tuple(spaces["obs_shape"]), device)
            if self.base.norm_obs
            else None
        )
        self.reward_scaler = (
            GroupedRewardScaler(k, net.num_envs, self.base.gamma, self.base.clip_reward, device)
            if self.base.norm_reward
            else None
        )
        self.iteration = 0
        self.active = [True] * k  # False once an agent reached target_return (frozen, lr 0)
        self.steps = [0] * k  # each agent's own global_step (frozen at its stop)
        self.reached_step: list[int | None] = [None] * k
        # The return that stopped it (the check's mean, else the window's): "target_reached".
        self.reached_return: list[float | None] = [None] * k
        self.best = [-math.inf] * k
        self.recent: list[list[list[float]]] = [[] for _ in range(k)]
        self.last_metrics: list[dict[str, float]] = [{} for _ in range(k)]
        self.lrs = [0.0] * k
        self.lr = torch.zeros_like(lr0)  # (K,) this iteration's rates, updated in place
        self.graphed_iterations = 0
        self.keep_check = False  # see check(); set by run()
        self.check_gap = 1  # MultiSeedConfig.check_gap, resolved by run()
        self.check_evaluator: Evaluator | None = None
        self.checks = 0  # deterministic checks run (one per iteration at most), all agents'
        self.last_check: int | None = None  # the iteration of the last one (see check_due)
        self.failed_check: list[int | None] = [None] * k  # each agent's last failed check
        self.checked_agents = 0  # agents evaluated over those checks
        self.check_seconds = 0.0  # wall-clock of those checks (each ends on a host copy)
        self.group_dir: Path | None = None  # where multiseed.pt goes (None: no run folders)
        self.stopped_on_request = False  # Ctrl-C: stopped early, checkpointed

    def group_state(self) -> dict[str, Any]:
        """Everything :meth:`restore` needs to continue exactly: the stacked weights and Adam
        state, every agent's statistics and stop-rule state, the shared env and RNG streams."""
        opt = self.optimizer
        return {
            "algo": ALGO + "-multiseed",
            "model": {f"param_{i}": p.detach().clone() for i, p in enumerate(self.net.params)},
            "optimizer": {
                "step_count": opt.step_count,
                "agent_steps": None if opt.agent_steps is None else opt.agent_steps.clone(),
                "exp_avg": [m.clone() for m in opt.exp_avg],
                "exp_avg_sq": [v.clone() for v in opt.exp_avg_sq],
            },
            "config": config_to_dict(self.base),
            "multiseed": {
                "seeds": list(self.cfg.seeds),
                "learning_rates": (
                    None if self.cfg.learning_rates is None else list(self.cfg.learning_rates)
                ),
                "eval_episodes": self.cfg.eval_episodes,
                "solved_return": self.cfg.solved_return,
                "check_gap": self.cfg.check_gap,
            },
            "run_dirs": [str(run.run_dir) for run in self.runs],
            "seed_checkpoints_marked": True,  # the seeds' latest.pt say "group" (from 2026-11-27)
            "env_id": self.base.env_id,
            "iteration": self.iteration,
            "active": list(self.active),
            "last_check": -1 if self.last_check is None else self.last_check,
            # The summary's counts of checks, for the whole run however often it was resumed.
            "checks": [self.checks, self.checked_agents, self.check_seconds],
            "failed_check": [-1 if i is None else i for i in self.failed_check],
            "steps": list(self.steps),
            "reached_step": [-1 if s is None else s for s in self.reached_step],
            "reached_return": [math.nan if r is None else r for r in self.reached_return],
            "best": list(self.best),
            "recent_rewards": [[list(x) for x in r] for r in self.recent],
            "obs_rms": None if self.obs_rms is None else self.obs_rms.state_dict(),
            "return_rms": None if self.reward_scaler is None else self.reward_scaler.state_dict(),
            "env_state": self.env.state_dict() if hasattr(self.env, "state_dict") else None,
            "next_obs": self.next_obs.clone(),
            "rng": rng_state(),
        }

    def restore(self, saved: dict[str, Any]) -> None:
        """Load :meth:`group_state`'s output (same seeds and sizes); RNG streams last."""
        device = self.next_obs.device
        with torch.no_grad():
            for i, p in enumerate(self.net.params):
                p.copy_(saved["model"][f"param_{i}"])
        opt, state = self.optimizer, saved["optimizer"]
        opt.step_count = int(state["step_count"])
        opt.agent_steps = None if state["agent_steps"] is None else state["agent_steps"].to(device)
        for mine, theirs in (
            (opt.exp_avg, state["exp_avg"]),
            (opt.exp_avg_sq, state["exp_avg_sq"]),
        ):
            for m, t in zip(mine, theirs, strict=True):
                m.copy_(t)
        if self.obs_rms is not None:
            self.obs_rms.load_state_dict(saved["obs_rms"])
        if self.reward_scaler is not None:
            self.reward_scaler.load_state_dict(saved["return_rms"])
        if saved["env_state"] is not None:
            self.env.load_state_dict(saved["env_state"])
            self.next_obs = saved["next_obs"].to(device)
        else:  # Gymnasium's numpy envs keep no state: their episodes restart
            self.next_obs, _ = self.env.reset(seed=env_seed(self.cfg.seeds) + saved["iteration"])
        self.iteration = int(saved["iteration"])
        self.active = [bool(a) for a in saved["active"]]
        if self.obs_rms is not None:
            # A state saved before stopped agents' statistics were frozen kept updating them
            # after the stop: each takes back the statistics of its checkpoint at the stop.
            drifted = "frozen" not in saved["obs_rms"]
            for k, on in enumerate(self.active):
                if not on:
                    if drifted:
                        self._restore_stop_statistics(k)
                    self.obs_rms.freeze(k)
        last_check = int(saved.get("last_check", -1))
        self.last_check = None if last_check < 0 else last_check
        checks, agents, seconds = saved.get("checks", [0, 0, 0.0])  # (none saved before)
        self.checks, self.checked_agents, self.check_seconds = int(checks), int(agents), seconds
        failed = saved.get("failed_check", [-1] * len(self.active))
        self.failed_check = [None if i < 0 else int(i) for i in failed]
        self.steps = [int(s) for s in saved["steps"]]
        self.reached_step = [None if s < 0 else int(s) for s in saved["reached_step"]]
        returns = saved.get("reached_return", [math.nan] * len(self.reached_step))
        self.reached_return = [None if math.isnan(r) else float(r) for r in returns]
        self.best = [float(b) for b in saved["best"]]
        self.recent = [[list(x) for x in r] for r in saved["recent_rewards"]]
        for k, run in enumerate(self.runs):
            run.restore_schedule(self.steps[k], self.best[k])
        set_rng_state(saved["rng"])

    def _restore_stop_statistics(self, k: int) -> None:
        """Agent ``k``'s observation statistics from its run folder's ``latest.pt`` (written
        when it stopped), where there is one."""
        if not self.runs or self.obs_rms is None:
            return
        path = self.runs[k].checkpoint_dir / "latest.pt"
        saved = load_checkpoint(path).get("obs_rms") if path.is_file() else None
        if saved is not None:
            self.obs_rms.load_group(k, saved)

    def save_group(self) -> None:
        """Write ``multiseed.pt`` (atomically) into the group folder, if there is one."""
        if self.group_dir is not None:
            self.group_dir.mkdir(parents=True, exist_ok=True)
            save_checkpoint(self.group_state(), self.group_dir / GROUP_CHECKPOINT)

    def payload(self, k: int) -> dict[str, Any]:
        """Agent ``k``'s checkpoint with :func:`agents.ppo.checkpoint_payload`'s keys (the env's
        exact state excepted: its rows belong to a ``K * N`` env)."""
        n = self.net.num_envs
        payload: dict[str, Any] = {
            "algo": ALGO,
            "model": self.net.state_dict(k),
            "optimizer": _optimizer_state(self.net, self.optimizer, k, self.group, self.lrs[k]),
            "config": config_to_dict(self.seed_cfgs[k]),
            "env_id": self.base.env_id,
            "iteration": self.iteration,
            "best_return": self.best[k],
            "recent_rewards": [list(x) for x in self.recent[k]],
            "rng": rng_state(),
            "spaces": self.spaces,
            "next_obs": self.next_obs[k * n : (k + 1) * n].clone(),
            # Written by the group (a seed continued on its own writes agents.ppo's payload):
            # a group resume must not overwrite such a seed (see _refuse_seeds_trained_alone).
            "group": None if self.group_dir is None else self.group_dir.name,
        }
        if self.obs_rms is not None:
            payload["obs_rms"] = self.obs_rms.group(k).state_dict()
        if self.reward_scaler is not None:
            payload["return_rms"] = self.reward_scaler.agent_state(k)
        if self.reached_return[k] is not None:  # as agents.ppo's: a resume trains no further
            payload["target_reached"] = self.reached_return[k]
        return payload

    def save_all(self, step: int, snapshot: bool) -> None:
        for k, run in enumerate(self.runs):
            run.save(self.payload(k), step, snapshot=snapshot)

    def rollout(self, next_obs: torch.Tensor) -> torch.Tensor:
        return collect_rollout(
            self.env, self.net, self.storage, next_obs, self.tracker, obs_rms=self.obs_rms,
            reward_scaler=self.reward_scaler, clip_obs=self.base.clip_obs,
            reward_sum=self.reward_sum,
        )  # fmt: skip

    def learn(self) -> torch.Tensor:
        """GAE, the update at the rates in ``self.lr``, and per agent ``(K, 7)``: the 5 loss
        statistics, explained variance and whether every parameter is finite."""
        batch = self.batch()
        stats = update(self.net, self.optimizer, batch, self.lr, self.base)  # (K, 5)
        with torch.no_grad():
            finite = self.net.flat.isfinite().all(1)  # (K,)
            explained = explained_variance(batch["values"], batch["returns"], dim=1)
            return torch.cat(
                [stats.double(), explained.double()[:, None], finite.double()[:, None]], 1
            )

    def run(self) -> None:
        base, k_agents = self.base, self.cfg.num_agents
        graphs = None
        if ppo_graphs.env_unsupported(self.env, self.lr.device) is None:
            # A CUDA sandbox env: Adam counts its steps on the device and one check of every
            # agent is kept, with graphs or without, so ``cuda_graphs=False`` trains the same
            # numbers eagerly (on a GPU a check of K agents costs what a check of one does).
            self.optimizer.capturable = True
            self.keep_check = True
            if base.cuda_graphs:
                graphs = ppo_graphs.IterationGraphs(self.env, self.rollout, self.learn)
        cuda = self.lr.device.type == "cuda"
        self.check_gap = self.cfg.check_gap or (CUDA_CHECK_GAP if cuda else 1)
        while self.iteration < base.num_iterations and any(self.active):
            self.iteration += 1
            frac = 1.0 - (self.iteration - 1.0) / base.num_iterations if base.anneal_lr else 1.0
            active = torch.tensor(self.active, dtype=self.lr0.dtype, device=self.lr0.device)
            self.lr.copy_(self.lr0 * (frac * active))  # (K,): 0 freezes a solved agent
            self.lrs = [
                lr_k * frac if on else 0.0
                for lr_k, on in zip(self.cfg.agent_learning_rates, self.active, strict=True)
            ]
            if graphs is not None:
                self.next_obs, learned = graphs.iteration(self.next_obs)
            else:
                self.next_obs = self.rollout(self.next_obs)
                learned = self.learn()
            with torch.no_grad():
                values = torch.cat(
                    [
                        self.tracker.take(),
                        self.reward_sum.view(k_agents, -1).sum(1, keepdim=True),
                        learned,
                    ],
                    1,
                ).tolist()  # sync: the one host sync of the iteration, (K, 13)
                rows = [IterationValues.of(row) for row in values]
                self.reward_sum.zero_()
            if graphs is not None:
                self.graphed_iterations = graphs.replays
            bad = [self.cfg.seeds[k] for k in range(k_agents) if rows[k].diverged]
            if bad:
                raise TrainingDiverged(
                    f"multi-seed PPO diverged at iteration {self.iteration} for seed(s) {bad}: a loss or "
                    "parameter is not finite; the last good checkpoints are kept. Try a lower "
                    "learning_rate or max_grad_norm"
                )
            reached = self.reached(rows)
            stop = stop_requested()  # Ctrl-C (rl train --seeds): stop here, checkpointed
            for k in range(k_agents):
                if self.active[k]:
                    self.log_agent(k, rows[k], reached[k], stop)
            finished = self.iteration == base.num_iterations or not any(self.active)
            if finished or stop or self.iteration % base.checkpoint_every == 0:
                self.save_group()
            if self.runs:
                done = sum(not a for a in self.active)
                returns = [
                    m["charts/episodic_return"]
                    for m in self.last_metrics
                    if "charts/episodic_return" in m
                ]
                status = f"solved {done}/{k_agents}"
                if returns:
                    status = f"mean return {statistics.fmean(returns):.1f} | " + status
                self.runs[0].update_progress(self.iteration * base.batch_size, status)
            if stop and not finished:
                self.stopped_on_request = True
                break

    def batch(self) -> dict[str, torch.Tensor]:
        """GAE over the ``(T, K * N)`` rollout, regrouped per agent as ``(K, B, ...)``."""
        s, base = self.storage, self.base
        advantages, returns = compute_gae(
            s.rewards,
            s.values,
            s.next_values,
            s.terminated,
            s.truncated,
            base.gamma,
            base.gae_lambda,
        )  # (T, K * N) each: the recursion is per column, so per agent
        by_agent = self.net.by_agent
        return {
            "obs": by_agent(s.obs.flatten(0, 1).flatten(1)),
            "actions": by_agent(s.actions.flatten(0, 1)),
            "logprobs": by_agent(s.logprobs.flatten()),
            "advantages": by_agent(advantages.flatten()),
            "returns": by_agent(returns.flatten()),
            "values": by_agent(s.values.flatten()),
        }

    def reached(self, rows: list[IterationValues]) -> list[bool]:
        """Per agent: reached ``target_return`` this iteration (as :func:`agents.ppo.train`
        judges it; one stacked deterministic check for every agent whose window passed, when
        :meth:`check_due`)."""
        base = self.base
        window = [
            window_return(self.recent[k], row.episodes[0], row.rewards, base.target_window)
            if self.active[k]
            else None
            for k, row in enumerate(rows)
        ]
        reached = [
            base.target_return is not None and w is not None and w >= base.target_return
            for w in window
        ]
        if base.target_check_episodes > 0 and any(reached):
            passed = [k for k, r in enumerate(reached) if r]
            if not self.check_due(passed):
                return [False] * len(reached)  # they wait for the next check
            self.last_check = self.iteration
            started = time.perf_counter()
            checks = self.check(passed, env_seed(self.cfg.seeds) + STOP_CHECK_SEED_OFFSET)
            self.check_seconds += time.perf_counter() - started
            self.checks += 1
            self.checked_agents += len(passed)
            reached = [False] * len(reached)
            for k, checked in zip(passed, checks, strict=True):
                reached[k] = check_passes(checked, base.target_return, base.target_confidence)
                if reached[k]:
                    self.reached_return[k] = checked.mean_return
                else:
                    self.failed_check[k] = self.iteration
            return reached
        for k, hit in enumerate(reached):
            if hit:
                self.reached_return[k] = float(window[k])  # type: ignore[arg-type]
        return reached

    def check_due(self, waiting: list[int]) -> bool:
        """Whether the agents in ``waiting`` (their window passed) are checked now: once
        ``check_gap`` iterations have passed since the last check, at the run's last iteration,
        or at once when they are every agent still training (a check that can end the run) and
        none of them failed a check in the last ``check_gap`` iterations."""
        if self.last_check is None or self.iteration - self.last_check >= self.check_gap:
            return True
        if self.iteration == self.base.num_iterations:
            return True  # the last chance to stop (its reached_target_step) at all
        return len(waiting) == sum(self.active) and all(
            self.failed_check[k] is None or self.iteration - self.failed_check[k] >= self.check_gap
            for k in waiting
        )

    def check(self, passed: list[int], seed: int) -> list[EvalResult]:
        """The deterministic check of each agent in ``passed``, on fresh episodes seeded with
        ``seed`` (RNG streams untouched).

        With :attr:`keep_check` (a CUDA sandbox env), every agent runs in one
        :class:`rl.evaluation.Evaluator` kept for the run, stopping once the rows of the
        agents in ``passed`` have finished (the others step along, ignored): with CUDA graphs
        its first check captures the steps in a graph and later checks only replay it.
        Otherwise only the agents in ``passed`` run: on the CPU the cost grows with the rows.
        """
        base, episodes = self.base, self.base.target_check_episodes
        device = self.next_obs.device
        if not self.keep_check:
            obs_rms = self.obs_rms.subset(passed) if self.obs_rms is not None else None
            with torch.random.fork_rng(devices=[]):
                checks = evaluate_stacked(
                    self.net.subset(passed), base, episodes, seed, device, self.spaces,
                    obs_rms=obs_rms,
                )  # fmt: skip
            return checks
        if self.check_evaluator is None:
            rms = self.obs_rms
            act = stacked_act(self.net, episodes, base.clip_obs, self.spaces, device, rms)
            self.check_evaluator = Evaluator(
                act, base.env_id, episodes=self.cfg.num_agents * episodes, device=device,
                env_kwargs=base.env_kwargs, cuda_graphs=base.cuda_graphs,
                watch=lambda: [self.net.flat, *(() if rms is None else (rms.mean, rms.var))],
            )  # fmt: skip
        rows = torch.zeros(self.cfg.num_agents, episodes, dtype=torch.bool)
        rows[passed] = True  # the check ends when these rows' episodes have
        with torch.random.fork_rng(devices=[]):
            return self.check_evaluator(seed, rows=rows.view(-1)).split(len(passed))

    def log_agent(self, k: int, row: IterationValues, reached: bool, stop: bool) -> None:
        """One agent's iteration: TensorBoard, target stop, checkpoints (as ppo's loop;
        ``stop``: Ctrl-C, so its latest.pt holds this iteration as the group's does)."""
        base = self.base
        self.steps[k] = self.iteration * base.batch_size
        metrics, _ = row.metrics(self.lrs[k])
        mean_return = metrics.get("charts/episodic_return")
        if reached:
            self.active[k] = False
            self.reached_step[k] = self.steps[k]
            if self.obs_rms is not None:  # its rows go on: it normalises as when it stopped
                self.obs_rms.freeze(k)
        last = reached or self.iteration == base.num_iterations
        self.last_metrics[k] = metrics
        if not self.runs:
            if mean_return is not None:
                self.best[k] = max(self.best[k], mean_return)
            return
        run = self.runs[k]
        metrics["charts/SPS"] = run.sps(self.steps[k])
        run.log(metrics, self.steps[k])
        improved = mean_return is not None and mean_return > self.best[k]
        snapshot = last or run.snapshot_due(self.steps[k])
        if improved or snapshot or stop or self.iteration % base.checkpoint_every == 0:
            self.best[k] = max(self.best[k], mean_return if mean_return is not None else -math.inf)
            run.save(self.payload(k), self.steps[k], mean_return=mean_return, snapshot=snapshot)


def _finish(
    cfg: MultiSeedConfig,
    net: StackedActorCritic,
    spaces: dict[str, Any],
    runs: list[TrainingRun],
    loop: _Loop,
    evaluations: list[EvalResult],
    train_seconds: float,
) -> MultiSeedResult:
    """Per-seed rows, eval.json per run, the summary (mean ± std over seeds) and its JSON."""
    base = cfg.ppo
    eval_seed = env_seed(cfg.seeds)  # the one seed of the group's evaluation
    # The env's bar, as rl train and rl eval judge one run (the dog's success rate too).
    bar = solved_thresholds(base.env_id, base.env_kwargs)
    if cfg.solved_return is not None:
        bar["mean_return"] = cfg.solved_return
    per_seed = []
    for k, seed in enumerate(cfg.seeds):
        row: dict[str, Any] = {
            "seed": seed,
            "learning_rate": cfg.agent_learning_rates[k],
            "global_step": loop.steps[k],
            "reached_target_step": loop.reached_step[k],
            "run_dir": str(runs[k].run_dir) if runs else None,
            **{key: v for key, v in loop.last_metrics[k].items()},
        }
        if evaluations:
            ev = evaluations[k]
            row.update(eval_mean_return=ev.mean_return, eval_std_return=ev.std_return)
            if ev.success_rate is not None:
                row["eval_success_rate"] = ev.success_rate
            if bar:
                row["solved"] = ev.meets(bar)
            if runs:
                runs[k].write_evaluation(
                    ev, algo=ALGO, global_step=loop.steps[k], seed=eval_seed,
                    env_kwargs=base.env_kwargs,
                )  # fmt: skip
        per_seed.append(row)
    summary: dict[str, Any] = {
        "env_id": base.env_id,
        "num_agents": cfg.num_agents,
        "seeds": list(cfg.seeds),
        "num_envs_per_agent": base.num_envs,
        "iterations": loop.iteration,
        "graphed_iterations": loop.graphed_iterations,
        "train_seconds": train_seconds,
        "reached_target": sum(s is not None for s in loop.reached_step),
        "target_checks": loop.checks,
        "target_check_gap": loop.check_gap,
        "target_checked_agents": loop.checked_agents,
        "target_check_seconds": loop.check_seconds,
        "solved_return": bar.get("mean_return"),
        "solved_thresholds": bar,
        "stopped_on_request": loop.stopped_on_request,
    }
    if evaluations:
        means = [ev.mean_return for ev in evaluations]
        summary.update(
            eval_mean_return=statistics.fmean(means),
            eval_std_return=statistics.pstdev(means),
            eval_min_return=min(means),
            eval_max_return=max(means),
        )
        rates = [ev.success_rate for ev in evaluations if ev.success_rate is not None]
        if rates:
            summary["eval_mean_success_rate"] = statistics.fmean(rates)
        if bar:
            summary["solve_rate"] = sum(ev.meets(bar) for ev in evaluations) / len(evaluations)
    summary_path = None
    if runs and loop.group_dir is not None:
        summary["group_dir"] = str(loop.group_dir)
        summary_path = write_json(
            loop.group_dir.parent / f"{loop.group_dir.name}.json", {**summary, "per_seed": per_seed}
        )
    policies = [
        net.policy(
            k,
            spaces,
            base.hidden_sizes,
            base.init_log_std,
            loop.obs_rms.group(k) if loop.obs_rms is not None else None,
            base.clip_obs,
        )
        for k in range(cfg.num_agents)
    ]
    return MultiSeedResult(
        seeds=cfg.seeds,
        policies=policies,
        run_dirs=[r.run_dir for r in runs] if runs else [None] * cfg.num_agents,
        per_seed=per_seed,
        summary=summary,
        summary_path=summary_path,
        evaluations=evaluations,
    )


def format_summary(result: MultiSeedResult) -> str:
    """A few lines for the terminal: per-seed returns and mean ± std."""
    s = result.summary
    lines = [f"{s['env_id']}: {s['num_agents']} seeds in {s['train_seconds']:.1f} s"]
    if "eval_mean_return" in s:
        lines.append(
            f"final eval return {s['eval_mean_return']:.1f} ± {s['eval_std_return']:.1f} "
            f"(min {s['eval_min_return']:.1f}, max {s['eval_max_return']:.1f})"
            + (f", solved {s['solve_rate']:.0%}" if "solve_rate" in s else "")
        )
        per = ", ".join(f"{r['seed']}: {r['eval_mean_return']:.0f}" for r in result.per_seed)
        lines.append(f"per seed: {per}")
    if result.summary_path is not None:
        lines.append(f"summary: {result.summary_path}")
    if "group_dir" in s:
        lines.append(f"group folder (for --resume): {s['group_dir']}")
    if s.get("stopped_on_request"):
        lines.append(
            f"stopped at your request (Ctrl-C) after iteration {s['iterations']}, checkpointed"
            + (f": rl train --resume {s['group_dir']} continues" if "group_dir" in s else "")
        )
    return "\n".join(lines)


# -- python -m agents.multiseed ------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m agents.multiseed --seeds 0-7 --env-id sandbox/CartPole-v1 [--set k=v ...]``."""
    import argparse

    from agents.ppo import default_config
    from rl.config import parse_overrides

    parser = argparse.ArgumentParser(
        prog="python -m agents.multiseed",
        description="Train one PPO agent per seed together (unset fields: the env's preset).",
    )
    parser.add_argument("--seeds", default="0-7", help="e.g. 0-63 or 0,1,5")
    parser.add_argument("--env-id", default="sandbox/CartPole-v1")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    try:  # bad input: one line and exit 2, as python -m agents.ppo and rl train --seeds
        base = default_config(args.env_id, **parse_overrides(args.set))
        cfg = MultiSeedConfig(
            ppo=base, seeds=parse_seeds(args.seeds), write_runs=base.write_run,
            eval_episodes=base.eval_episodes, progress=base.progress,
        )  # fmt: skip
        result = train(cfg)
    except (
        TrainingDiverged, ValueError, TypeError, CheckpointError, OSError, KeyboardInterrupt
    ) as exc:  # fmt: skip
        return report_failure(parser.prog, exc)
    print(format_summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
