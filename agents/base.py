"""What every agent hands back: a policy to act with and a training result."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from gymnasium import spaces

from rl.checkpoint import load_checkpoint
from rl.evaluation import TARGET_CONFIDENCE, EvalResult, Evaluator
from rl.runs import find_checkpoint
from rl.tensors import RunningMeanStd


@dataclass
class PolicyView:
    """What a policy thinks of a batch of observations, for HUDs and debugging.

    Attributes:
        value: ``(N,)`` the state value (``V(s)``, or ``max_a Q(s, a)`` for DQN); NaN for a
            policy without one (behaviour cloning).
        probs: ``(N, A)`` action probabilities for discrete actions (greedy one-hot for DQN).
        q_values: ``(N, A)`` for value-based agents.
        mean, std: ``(N, *action_shape)`` for Gaussian policies.
    """

    value: torch.Tensor
    probs: torch.Tensor | None = None
    q_values: torch.Tensor | None = None
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None


@runtime_checkable
class Policy(Protocol):
    """A trained (or untrained) policy over batches of observations."""

    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """``(N, *obs_shape)`` observations → ``(N, ...)`` actions on the same device."""
        ...

    def explain(self, obs: torch.Tensor) -> PolicyView:
        """Action probabilities (or Gaussian mean/std) and value estimates for ``obs``."""
        ...


@dataclass
class TrainResult:
    """What ``train`` returns."""

    policy: Policy
    global_step: int
    run_dir: Path | None
    metrics: dict[str, float] = field(default_factory=dict)
    evaluation: EvalResult | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def space_spec(observation_space: spaces.Space, action_space: spaces.Space) -> dict[str, Any]:
    """The single-env spaces as tensors and plain values, for a checkpoint's ``"spaces"`` entry.

    Enough to rebuild a network without the env: ``obs_shape``, ``action_kind``
    (``"discrete"``/``"box"``) and ``action_n`` or ``action_shape``/``action_low``/``action_high``.

    Raises:
        ValueError: for spaces the agents do not support.
    """
    if not isinstance(observation_space, spaces.Box):
        raise ValueError(f"observation space {observation_space} is not supported; expected a Box")
    spec: dict[str, Any] = {"obs_shape": [int(d) for d in observation_space.shape]}
    if isinstance(action_space, spaces.Discrete):
        if int(action_space.start) != 0:
            raise ValueError(f"action space {action_space} must start at 0")
        spec.update(action_kind="discrete", action_n=int(action_space.n))
    elif isinstance(action_space, spaces.Box):
        spec.update(
            action_kind="box",
            action_shape=[int(d) for d in action_space.shape],
            action_low=torch.as_tensor(action_space.low, dtype=torch.float32),
            action_high=torch.as_tensor(action_space.high, dtype=torch.float32),
        )
    else:
        raise ValueError(f"action space {action_space} is not supported; expected Discrete or Box")
    return spec


def check_space_spec(
    saved: dict[str, Any],
    observation_space: spaces.Space,
    action_space: spaces.Space,
    env_id: str,
) -> None:
    """Raise ``ValueError`` (one line) unless an env's spaces fit a checkpoint's ``"spaces"``."""
    try:
        current = space_spec(observation_space, action_space)
    except ValueError as exc:
        raise ValueError(f"{env_id}: {exc}") from None
    for key in ("obs_shape", "action_kind", "action_n", "action_shape"):
        if saved.get(key) != current.get(key):
            raise ValueError(
                f"{env_id} does not match the checkpoint's spaces: {key} is "
                f"{current.get(key)!r} there but {saved.get(key)!r} in the checkpoint"
            )
    for key in ("action_low", "action_high"):
        if key in saved and not torch.equal(saved[key].float().cpu(), current[key]):
            raise ValueError(
                f"{env_id} does not match the checkpoint's spaces: {key} is "
                f"{current[key].tolist()} there but {saved[key].tolist()} in the checkpoint"
            )


def normalize_obs(obs: torch.Tensor, obs_rms: Any, clip: float) -> torch.Tensor:
    """Observations as the network sees them: ``obs_rms.normalize`` (a
    :class:`rl.tensors.RunningMeanStd` or its grouped form), or ``obs`` itself without one."""
    return obs if obs_rms is None else obs_rms.normalize(obs, clip=clip)


HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def sample_categorical(logits: torch.Tensor) -> torch.Tensor:
    """One action index per row of ``(..., A)`` logits, drawn from ``softmax(logits)``.

    Gumbel-max: ``argmax(logits + Gumbel noise)``, the noise ``-log(E)`` with ``E ~ Exp(1) > 0``.
    Unlike ``torch.multinomial``, which reads the probabilities back on the host to check them
    (two syncs per call on CUDA), it queues like any other kernel; it is also ~4x cheaper at
    rollout sizes.
    """
    noise = torch.empty_like(logits).exponential_().clamp_min_(torch.finfo(logits.dtype).tiny)
    return (logits - noise.log_()).argmax(-1)


def action_log_prob_entropy(
    out: torch.Tensor, actions: torch.Tensor, log_std: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of ``actions`` and the entropies of the policy head's distribution.

    Written out rather than built with ``torch.distributions`` (whose argument checks cost more
    than these small networks' forward); tests hold both equal to it.

    Args:
        out: ``(..., A)``: logits (categorical, ``log_std`` None) or Gaussian means.
        actions: ``(...)`` action indices, or anything of ``out``'s numel (Gaussian actions).
        log_std: the diagonal Gaussian's log standard deviation, broadcast to ``out``.

    Returns:
        ``(log_prob, entropy)``, both ``(...)``: summed over a Gaussian's action dimensions.
    """
    if log_std is None:
        log_probs = out.log_softmax(-1)
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        return log_probs.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1), entropy
    log_std = log_std.expand_as(out)
    z = (actions.reshape(out.shape) - out) * torch.exp(-log_std)
    log_prob = (-0.5 * z.square() - log_std - HALF_LOG_2PI).sum(-1)
    return log_prob, (0.5 + HALF_LOG_2PI + log_std).sum(-1)


def obs_batch(obs: Any, obs_shape: Any, device: torch.device) -> torch.Tensor:
    """``obs`` as a float32 ``(N, *obs_shape)`` tensor on ``device``, or a ValueError that says
    what a policy takes (one observation, unbatched, failed deep inside a matmul)."""
    obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
    shape = tuple(obs_shape)
    if tuple(obs.shape[1:]) != shape:
        if tuple(obs.shape) == shape:
            raise ValueError(
                f"a policy acts on a batch of observations, shape (N, {', '.join(map(str, shape))})"
                f"; got one observation of shape {shape}: pass obs[None]"
            )
        raise ValueError(
            f"a policy of this run takes observations of shape (N, "
            f"{', '.join(map(str, shape))}), got {tuple(obs.shape)}"
        )
    return obs


class ActorCriticPolicy:
    """A trained actor-critic as an :class:`agents.base.Policy`, with its obs normalisation.

    The agent is any network with ``get_action(obs, deterministic)``, ``view(obs)`` and a
    ``discrete`` flag (PPO's and A2C's ``ActorCritic``).

    Args:
        agent: the network (its device is the policy's).
        spaces: :func:`space_spec`'s dict (action bounds for clipping).
        obs_rms: the training run's observation statistics (copied, frozen), or ``None``.
        clip_obs: the clip of normalised observations.
    """

    def __init__(
        self,
        agent: Any,
        spaces: dict[str, Any],
        obs_rms: RunningMeanStd | None = None,
        clip_obs: float = 10.0,
    ) -> None:
        self.agent = agent.eval()
        self.device = next(agent.parameters()).device
        self.spaces = spaces
        self.clip_obs = clip_obs
        self.obs_rms = None
        if obs_rms is not None:
            self.obs_rms = RunningMeanStd(tuple(spaces["obs_shape"]), self.device)
            self.obs_rms.load_state_dict(obs_rms.state_dict())
        if spaces["action_kind"] == "box":
            self._low = spaces["action_low"].to(self.device)
            self._high = spaces["action_high"].to(self.device)

    def _prepare(self, obs: torch.Tensor) -> torch.Tensor:
        obs = obs_batch(obs, self.spaces["obs_shape"], self.device)
        return normalize_obs(obs, self.obs_rms, self.clip_obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """``(N, *obs_shape)`` → ``(N,)`` action indices or ``(N, *action_shape)`` actions
        (clipped to the action bounds), on ``obs``'s device."""
        actions = self.agent.get_action(self._prepare(obs), deterministic=deterministic)
        if not self.agent.discrete:
            actions = torch.maximum(torch.minimum(actions, self._high), self._low)
        return actions.to(obs.device) if isinstance(obs, torch.Tensor) else actions

    @torch.no_grad()
    def explain(self, obs: torch.Tensor) -> PolicyView:
        """Action probabilities (or Gaussian mean/std) and ``V(s)`` for ``(N, ...)`` obs."""
        return self.agent.view(self._prepare(obs))


class PolicyCheck:
    """The stop rule's deterministic check (``target_check_episodes``) of an agent, kept for a
    whole training run: :meth:`rl.evaluation.Evaluator.check` (fresh episodes seeded as
    asked, RNG streams untouched) of the agent's deterministic policy.

    Its policy and evaluator are built at the first check. On CUDA that check captures its steps
    in a graph and every later check only replays it, reading the agent's parameters (updated
    in place by the optimizer) and the policy's copy of the observation statistics (refreshed
    in place before each check). The agent is in eval mode during a check, then back in train
    mode.

    Args:
        make_policy: builds the policy that acts for the agent (a ``PPOPolicy``, ``A2CPolicy``
            or ``DQNPolicy`` of it); its ``obs_rms``, if it has one, is its own copy.
        agent: the network being trained.
        obs_rms: its live observation statistics, or ``None``.
        episodes: episodes per check, one env row each.
    """

    def __init__(
        self,
        make_policy: Callable[[], Any],
        agent: Any,
        obs_rms: RunningMeanStd | None,
        env_id: str,
        episodes: int,
        device: torch.device,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self._make = make_policy
        self.agent, self.obs_rms = agent, obs_rms
        self._evaluator_args = (env_id, episodes, device, env_kwargs)
        self.policy: Any = None
        self.evaluator: Evaluator | None = None

    def __call__(self, seed: int) -> EvalResult:
        """The deterministic policy's fresh episodes from ``seed``."""
        if self.evaluator is None:
            self.policy = self._make()
            env_id, episodes, device, env_kwargs = self._evaluator_args
            self.evaluator = Evaluator(
                self.policy.act, env_id, episodes=episodes, device=device,
                env_kwargs=env_kwargs, watch=self._read,
            )  # fmt: skip
        elif self.obs_rms is not None:
            self.policy.obs_rms.load_state_dict(self.obs_rms.state_dict())
        self.agent.eval()
        try:
            return self.evaluator.check(seed)
        finally:
            self.agent.train()

    def _read(self) -> list[torch.Tensor]:
        """The tensors the policy acts with, as they are now (the evaluator's ``watch``)."""
        rms = getattr(self.policy, "obs_rms", None)
        return [*self.agent.parameters(), *(() if rms is None else (rms.mean, rms.var))]

    def close(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()


FIELDS_ADDED: dict[str, Any] = {"target_confidence": 0.5}
"""The agents' config fields added since runs were first saved, with the value a run saved
before each trained with (:func:`rl.config.config_from_dict`): the stop check's plain mean."""


def target_reached(
    target_return: float | None,
    window_return: float | None,
    check_episodes: int,
    check: Callable[[], EvalResult],
    confidence: float = TARGET_CONFIDENCE,
) -> float | None:
    """The early-stop rule PPO, A2C and DQN share: the return that reached ``target_return``,
    or ``None``. The training window's return must reach it first (``None``: no episode in the
    window yet; a return of exactly 0.0 is one); then, with ``check_episodes``, so must the
    deterministic ``check()``'s at ``confidence`` (:func:`check_passes`), and its mean return is
    the one given."""
    if target_return is None or window_return is None or window_return < target_return:
        return None
    if check_episodes == 0:
        return window_return
    checked = check()
    return checked.mean_return if check_passes(checked, target_return, confidence) else None


def check_passes(checked: EvalResult, target_return: float, confidence: float) -> bool:
    """Whether the stop rule's deterministic check reached ``target_return``: its mean return,
    less the standard errors that ``confidence`` asks (:meth:`EvalResult.lower_bound`)."""
    return checked.lower_bound(confidence) >= target_return


def iteration_steps(cfg: Any, world_size: int = 1) -> int:
    """The env steps of one iteration, the unit ``total_timesteps`` is rounded down to:
    ``num_envs x num_steps`` transitions (PPO, A2C) or one vector step (DQN, whose
    ``batch_size`` is its replay minibatch), on each of ``world_size`` ranks."""
    return cfg.num_envs * getattr(cfg, "num_steps", 1) * world_size


def refuse_a_smaller_total(
    cfg: Any, trained: int, run: Any, world_size: int = 1, name: str = "total_timesteps"
) -> None:
    """A ValueError if resuming ``run`` (``trained`` steps done) with ``cfg`` would train
    nothing: ``total_timesteps`` counts the steps in all, not the steps to add. A total below
    one iteration of every rank's steps still trains one, so that is what is compared."""
    per = iteration_steps(cfg, world_size)
    if max(cfg.total_timesteps, per) < trained:
        raise ValueError(
            f"cannot resume {run}: it has trained {trained:,} steps, more than {name} "
            f"{cfg.total_timesteps:,}; give a larger total (the steps to train in all, not the "
            "steps to add)"
        )


def restore_env(env: Any, ckpt: dict[str, Any], device: torch.device) -> torch.Tensor:
    """Put a resumed run's env back where the checkpoint left it; its next observation.

    An env without saved state (Gymnasium's numpy envs behind the adapter) starts new
    episodes, seeded from the checkpoint: the run continues, but not bit for bit as an
    uninterrupted one would have, which rank 0 says on stderr."""
    from rl import distributed

    if "env_state" in ckpt and hasattr(env, "load_state_dict"):
        env.load_state_dict(ckpt["env_state"])
        return ckpt["next_obs"].to(device)
    if distributed.is_rank0():
        print(
            f"note: {ckpt['config']['env_id']} keeps no state a checkpoint can hold (a "
            "Gymnasium env): its episodes start again, so this resume continues the run, but "
            "not bit for bit as an uninterrupted run would have",
            file=sys.stderr,
        )
    seed = ckpt["config"]["seed"] + ckpt["iteration"]
    obs, _ = env.reset(seed=distributed.rank_seed(seed))
    return obs


def saved_target_reached(checkpoint: dict[str, Any]) -> float | None:
    """The return that stopped a checkpoint's run early (``None``: it did not, or it was saved
    before checkpoints said so)."""
    reached = checkpoint.get("target_reached")
    return None if reached is None else float(reached)


def read_policy_checkpoint(checkpoint: dict[str, Any] | str | Path, algo: str) -> dict[str, Any]:
    """A checkpoint dict of ``algo`` with ``model``, ``config`` and ``spaces`` (the part every
    ``load_policy`` needs), read from a ``.pt`` path if not already a dict.

    A run folder gives its ``latest.pt``, as in ``rl eval``.

    Raises:
        rl.checkpoint.CheckpointError: an unreadable file, or a folder with no checkpoint.
        ValueError: a checkpoint of another algorithm or with missing entries.
    """
    if not isinstance(checkpoint, dict):
        checkpoint = load_checkpoint(find_checkpoint(checkpoint))
    label = algo.upper()
    if checkpoint.get("algo") != algo:
        article = "an" if label[0] in "AEIOU" else "a"
        raise ValueError(
            f"this is a {checkpoint.get('algo')!r} checkpoint, not {article} {label} one"
        )
    missing = [k for k in ("model", "config", "spaces") if k not in checkpoint]
    if missing:
        raise ValueError(f"the {label} checkpoint lacks {', '.join(missing)}")
    return checkpoint


def saved_obs_rms(checkpoint: dict[str, Any], device: torch.device) -> RunningMeanStd | None:
    """The checkpoint's observation statistics (``"obs_rms"``) on ``device``, if it has any."""
    if "obs_rms" not in checkpoint:
        return None
    obs_rms = RunningMeanStd(tuple(checkpoint["spaces"]["obs_shape"]), device)
    obs_rms.load_state_dict(checkpoint["obs_rms"])
    return obs_rms


# -- python -m agents.<algo> ----------------------------------------------------------------------
def report_failure(prog: str, exc: BaseException) -> int:
    """A command-line training that failed: one line on stderr, and its exit code (1 diverged
    or a file it could not write, 130 interrupted, 2 bad input: a ValueError, TypeError or
    CheckpointError)."""
    import sys

    from rl.runs import TrainingDiverged, describe_os_error

    if isinstance(exc, KeyboardInterrupt):
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    if isinstance(exc, TrainingDiverged):
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    if isinstance(exc, OSError) and exc.filename is not None:  # a folder it cannot write
        print(f"{prog}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    print(f"{prog}: error: {exc}", file=sys.stderr)
    return 2


def parse_config_args(
    prog: str,
    description: str,
    config_cls: type,
    argv: list[str] | None,
    more: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """A ``python -m agents.<name>`` command line: one ``--field-name VALUE`` per field of
    ``config_cls`` (and what ``more(parser)`` adds), parsed to a dict (unset fields: None).
    Output is made plain first where the terminal cannot show every character (``--help``)."""
    import argparse

    from rl.config import field_docs
    from rl.console import plain_where_needed

    plain_where_needed()
    parser = argparse.ArgumentParser(prog=prog, description=description)
    for name, doc in field_docs(config_cls).items():
        # argparse %-formats help strings: a literal "%" must be doubled.
        help_text = doc.replace("%", "%%")
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="V", help=help_text)
    if more is not None:
        more(parser)
    return vars(parser.parse_args(argv))


def refuse_empty_run_dir(run_dir: Any) -> None:
    """A ValueError for ``--run-dir ""`` (``cfg.run_dir or ...`` would quietly pick a new
    folder under ``runs/``)."""
    if run_dir is not None and not str(run_dir).strip():
        raise ValueError("run_dir is empty: give a folder, or leave --run-dir out")


def run_command(
    prog: str, make_config: Callable[[], Any], run: Callable[[Any], Any]
) -> tuple[int, Any]:
    """``run(make_config())`` for a ``python -m agents.<name>`` command: ``(0, its result)``, or
    for bad input (a ValueError, TypeError or CheckpointError), a divergence, a file it could
    not write or Ctrl-C one line on stderr and ``(exit code, None)`` (:func:`report_failure`)."""
    from rl.checkpoint import CheckpointError
    from rl.runs import TrainingDiverged

    try:
        try:
            cfg = make_config()
        except TypeError as exc:  # a value of the wrong type for a field
            raise ValueError(str(exc)) from None
        return 0, run(cfg)
    except (
        TrainingDiverged,
        ValueError,
        FloatingPointError,
        CheckpointError,
        OSError,
        KeyboardInterrupt,
    ) as exc:
        return report_failure(prog, exc), None


def module_main(module: Any, description: str, argv: list[str] | None = None) -> int:
    """``python -m agents.<algo>``: train from the command line, one ``--field-name VALUE`` per
    field of the module's ``Config`` (unset fields: the env's preset), ``--resume RUN_DIR``.

    Bad input (an unknown env, a value of the wrong type, a run that cannot be resumed) is one
    line on stderr and exit code 2, as with ``rl train``.
    """
    from rl.config import config_from_dict, replace_config
    from rl.runs import load_resume_checkpoint

    # Run as `python -m agents.ppo`, the module is __main__; its spec keeps the real name.
    prog = f"python -m {getattr(module.__spec__, 'name', None) or module.__name__}"
    args = parse_config_args(
        prog, description, module.Config, argv,
        lambda parser: parser.add_argument(
            "--resume", metavar="RUN_DIR", help="continue a run from latest.pt"
        ),
    )  # fmt: skip
    resume = args.pop("resume")
    overrides = {k: v for k, v in args.items() if v is not None}

    def make_config() -> Any:
        if resume is None:
            env_id = overrides.pop("env_id", module.Config.env_id)
            return module.default_config(env_id, **overrides)
        saved = load_resume_checkpoint(resume)
        algo, mine = saved.get("algo"), prog.rsplit(".", 1)[-1]
        if algo != mine:
            raise ValueError(
                f"{resume} is a {algo} run, not a {mine} one: continue it with "
                f"python -m agents.{algo} --resume {resume} (or rl train --resume)"
            )
        return replace_config(config_from_dict(module.Config, saved["config"]), overrides)

    code, result = run_command(prog, make_config, lambda cfg: module.train(cfg, resume=resume))
    if code:
        return code
    if result.evaluation is not None:
        print(result.evaluation.summary())
    print(f"run: {result.run_dir}")
    return 0
