"""Evaluation: run a policy for a number of whole episodes and summarise them."""

from __future__ import annotations

import importlib
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from rl.config import require_int
from rl.device import host_syncs_recorded
from rl.vector import env_spec, make_vector_env


@dataclass
class EvalResult:
    """Per-episode returns and lengths, plus the env's success rate where it reports one."""

    env_id: str
    returns: list[float]
    lengths: list[int]
    successes: float | None = None
    attempts: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    episode_successes: list[float] | None = field(default=None, repr=False)
    """Per episode, where the env reports successes: what :meth:`split` divides."""
    episode_attempts: list[float] | None = field(default=None, repr=False)

    @property
    def episodes(self) -> int:
        return len(self.returns)

    @property
    def mean_return(self) -> float:
        return sum(self.returns) / len(self.returns)

    @property
    def std_return(self) -> float:
        mean = self.mean_return
        return math.sqrt(sum((r - mean) ** 2 for r in self.returns) / len(self.returns))

    def lower_bound(self, confidence: float) -> float:
        """The mean return less ``z`` standard errors of it (``z``: the normal quantile at
        ``confidence``, 1.645 at 0.95; the standard deviation of the episodes' returns over
        ``n - 1``): a policy whose true mean is below this has odds of about ``1 - confidence``
        of scoring as well as it did here (a normal approximation, close at 100 episodes; at 10,
        nearer 7 % than 5 %). 0.5 gives the mean; one episode, its return; a non-finite return,
        NaN, which reaches no target."""
        n = self.episodes
        if n < 2:
            return self.mean_return
        # The sample standard deviation over sqrt(n) is std_return (over n) / sqrt(n - 1).
        spread = self.std_return / math.sqrt(n - 1)
        return self.mean_return - statistics.NormalDist().inv_cdf(confidence) * spread

    @property
    def mean_length(self) -> float:
        return sum(self.lengths) / len(self.lengths)

    @property
    def success_rate(self) -> float | None:
        if self.attempts is None or self.successes is None:
            return None
        # No attempt at all (the dog never relieved itself) counts as no success.
        return self.successes / self.attempts if self.attempts > 0 else 0.0

    def meets(self, bar: dict[str, float]) -> bool:
        """Whether this evaluation reaches ``bar`` (``mean_return`` and/or ``success_rate``
        minimums; a success-rate bar does not apply where the env reports no success rate)."""
        rate = self.success_rate
        return self.mean_return >= bar.get("mean_return", -math.inf) and (
            rate is None or rate >= bar.get("success_rate", 0.0)
        )

    def split(self, parts: int) -> list[EvalResult]:
        """``parts`` results of consecutive, equal blocks of episodes (one per agent when
        ``K`` agents played ``K`` blocks of rows), each with its own success rate."""
        size, rest = divmod(self.episodes, parts) if parts >= 1 else (0, 1)
        if rest:
            raise ValueError(f"cannot split {self.episodes} episodes into {parts} equal parts")
        blocks = [slice(i * size, (i + 1) * size) for i in range(parts)]
        if self.episode_successes is None or self.episode_attempts is None:
            return [EvalResult(self.env_id, self.returns[b], self.lengths[b]) for b in blocks]
        return [
            EvalResult(
                self.env_id,
                self.returns[b],
                self.lengths[b],
                successes=sum(self.episode_successes[b]),
                attempts=sum(self.episode_attempts[b]),
                episode_successes=self.episode_successes[b],
                episode_attempts=self.episode_attempts[b],
            )
            for b in blocks
        ]

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "env_id": self.env_id,
            "episodes": self.episodes,
            "mean_return": self.mean_return,
            "std_return": self.std_return,
            "min_return": min(self.returns),
            "max_return": max(self.returns),
            "mean_length": self.mean_length,
        }
        if self.success_rate is not None:
            data["success_rate"] = self.success_rate
        data.update(self.extra)
        return data

    def record(
        self,
        *,
        algo: str | None,
        checkpoint: str,
        global_step: int | None,
        seed: int,
        env_kwargs: dict[str, Any] | None = None,
        trained_env_id: str | None = None,
    ) -> dict[str, Any]:
        """What a run's eval.json holds, whether ``rl train`` or ``rl eval`` wrote it:
        :meth:`to_json` and how the evaluation was made (``checkpoint``: relative to the run
        folder there, so a copied run names its own; the env's solved bar)."""
        return {
            **self.to_json(),
            "checkpoint": checkpoint,
            "algo": algo,
            "trained_env_id": trained_env_id or self.env_id,
            "global_step": global_step,
            "seed": seed,
            "deterministic": True,
            "solved_thresholds": solved_thresholds(self.env_id, env_kwargs),
        }

    def summary(self) -> str:
        text = (
            f"{self.env_id}: mean return {self.mean_return:.2f} ± {self.std_return:.2f} over "
            f"{self.episodes} episodes (mean length {self.mean_length:.1f})"
        )
        if self.success_rate is not None:
            text += f", success rate {self.success_rate:.1%}"
        return text


class EpisodesUnfinished(ValueError):
    """An evaluation's episodes did not all end within its step limit (an env without a time
    limit): a ValueError, so that the commands report it in one line."""


def solved_thresholds(env_id: str, env_kwargs: dict[str, Any] | None = None) -> dict[str, float]:
    """The env's "solved" bar with these constructor arguments: its module's ``solved_bar(**env_kwargs)``
    where it has one (the dog's depends on the reward scheme), else its
    ``SOLVED_SUCCESS_RATE``/``SOLVED_MEAN_RETURN`` (the sandbox's envs), else the
    registration's ``reward_threshold`` (Gymnasium's). Episodes cut at another
    ``max_episode_steps`` than the registered one have no return bar (CartPole's 475 needs 500
    steps); a success-rate bar still counts."""
    spec = env_spec(env_id)
    limit = (env_kwargs or {}).get("max_episode_steps", spec.max_episode_steps)
    thresholds = _solved_thresholds(spec, env_kwargs)
    if limit != spec.max_episode_steps:
        thresholds.pop("mean_return", None)
    return thresholds


def _solved_thresholds(spec: Any, env_kwargs: dict[str, Any] | None) -> dict[str, float]:
    thresholds: dict[str, float] = {}
    module = None
    if isinstance(spec.entry_point, str):
        try:
            module = importlib.import_module(spec.entry_point.split(":")[0])
        except ImportError:
            module = None
    if callable(getattr(module, "solved_bar", None)):
        return {key: float(value) for key, value in module.solved_bar(**(env_kwargs or {})).items()}
    for key, name in (
        ("success_rate", "SOLVED_SUCCESS_RATE"),
        ("mean_return", "SOLVED_MEAN_RETURN"),
    ):
        if module is not None and isinstance(getattr(module, name, None), (int, float)):
            thresholds[key] = float(getattr(module, name))
    if "mean_return" not in thresholds and spec.reward_threshold is not None:
        thresholds["mean_return"] = float(spec.reward_threshold)
    return thresholds


CHECK_EVERY = 16  # steps between the checks (host syncs) for every episode having ended
MAX_EPISODES = 1_000_000
"""The most episodes one evaluation runs: one env row per episode, all stepped at once, so they
must fit in memory; a million is plenty for a mean return."""
STOP_CHECK_SEED_OFFSET = MAX_EPISODES
"""The stop rule's check (``target_check_episodes``) plays the episodes of ``seed + this``: the
same episodes at every check of a run, so a policy at the bar cannot pass on one lucky draw
among many, and none of the final evaluation's (``seed``'s first MAX_EPISODES), which thereby
judges the stopped policy on its own."""
TARGET_CONFIDENCE = 0.95
"""The agents' default ``target_confidence``: the stop rule's check passes when its mean
return is above ``target_return`` at this confidence (:meth:`EvalResult.lower_bound`), not
merely on average. A policy whose check averages just the target scores below it on other
episodes about half the time; PPO's CartPole preset, stopped on the mean, was judged below 475
on 2 of seeds 1-16 and on none with this bound, after the same median steps."""


def require_confidence(name: str, value: Any) -> None:
    """A ValueError unless ``value`` is a confidence for :meth:`EvalResult.lower_bound`: a
    number in [0.5, 1)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 <= value < 1:
        raise ValueError(
            f"{name} must be a number in [0.5, 1), got {value!r}: 0.5 stops on the check's "
            "mean return, 0.95 once the mean is above the target at 95 % confidence"
        )


def require_episodes(name: str, value: Any, minimum: int = 0) -> None:
    """A ValueError unless ``value`` is a number of evaluation episodes: an integer from
    ``minimum`` to :data:`MAX_EPISODES`."""
    require_int(name, value, minimum)
    if value > MAX_EPISODES:
        raise ValueError(
            f"{name} must be at most {MAX_EPISODES:,}, got {value:,}: every episode is one row "
            "of a vector env, all stepped at once"
        )


class Evaluator:
    """Evaluations of one ``act`` (observations → actions) on fresh episodes of one env, as
    many times as asked: an early-stop check that runs every few iterations keeps its env and,
    on CUDA, the graph of its steps, instead of building and capturing them again each time.

    Each call (``evaluator(seed)``) runs ``episodes`` whole episodes from ``env.reset(seed)``:
    one vector-env row per episode, each counting only its first episode, so short episodes are
    not over-represented. Works for the sandbox's torch envs and any Gymnasium env.

    With ``cuda_graphs``, on CUDA with a sandbox env, the first call runs ``CHECK_EVERY``
    steps eagerly, checks that the next ``CHECK_EVERY`` can be captured (no host syncs, as from
    an ``act`` that reads values; no env state outside ``carried()``) and captures the
    following ``CHECK_EVERY`` steps in a CUDA graph; from then on every call replays that graph
    until its episodes have ended (a CartPole evaluation is hundreds of steps of a few
    dozen tiny kernels each). The same numbers as eager steps: the graph reads the env's
    carried tensors, the bookkeeping below and whatever ``act`` reads, all updated in place.

    So ``act`` must read tensors that stay the same objects from call to call, updated in
    place between calls (an agent's parameters as an optimizer steps them, observation
    statistics refreshed with ``load_state_dict``). Pass ``watch``, a function that returns
    the tensors ``act`` reads as they are now: a call that finds any of them in other memory
    than at the capture (a new tensor in its place, or new storage) captures a new graph
    rather than replaying a stale one.
    """

    def __init__(
        self,
        act: Callable[[torch.Tensor], torch.Tensor],
        env_id: str,
        *,
        episodes: int = 100,
        device: str | torch.device = "cpu",
        env_kwargs: dict[str, Any] | None = None,
        max_steps: int = 100_000,
        cuda_graphs: bool = True,
        watch: Callable[[], Sequence[torch.Tensor]] | None = None,
    ) -> None:
        require_episodes("episodes", episodes, 1)
        self.act, self.env_id, self.episodes, self.max_steps = act, env_id, episodes, max_steps
        self.env = make_vector_env(env_id, episodes, device, env_kwargs=env_kwargs)
        self._core = getattr(self.env, "unwrapped", None)
        self._cuda_graphs = cuda_graphs
        self._watch = watch
        self._watched: list[int] = []  # their data pointers when the graph was captured
        self._buffers: list[torch.Tensor] = []  # finished, returns, lengths, successes, attempts
        self._has_success = False
        self._graphable = False
        self._replay: Callable[[], None] | None = None
        self._static_obs: torch.Tensor | None = None
        self._carry: list[torch.Tensor] = []
        self.replays = 0
        """Graph replays over all calls (each one ``CHECK_EVERY`` steps)."""
        self.last_steps = 0
        """Steps the last call took (a multiple of ``CHECK_EVERY`` unless it hit max_steps)."""

    def __enter__(self) -> Evaluator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the env and drop the graph."""
        self._replay = None
        self.env.close()

    @torch.inference_mode()  # ~15 % faster than no_grad for this small-op loop (CartPole, CPU)
    def __call__(self, seed: int = 0, rows: torch.Tensor | None = None) -> EvalResult:
        """``episodes`` fresh episodes from ``env.reset(seed=seed)``, summarised.

        Args:
            rows: a ``(episodes,)`` bool mask of the rows that count: the call ends once their
                episodes have, and summarises them only (the other rows step along, a batch
                of fixed shape). ``None``: every row.
        """
        if rows is not None:
            if rows.shape != (self.episodes,) or rows.dtype != torch.bool:
                raise ValueError(
                    f"rows must be a bool mask of shape ({self.episodes},), got "
                    f"{rows.dtype} {tuple(rows.shape)}"
                )
            if not bool(rows.any()):
                raise ValueError("rows selects no row: nothing to evaluate")
        obs, _ = self.env.reset(seed=seed)
        if not self._buffers:
            self._start(obs.device)
        for buffer in self._buffers:
            buffer.zero_()
        finished, returns, lengths, successes, attempts = self._buffers
        if rows is not None:
            rows = rows.to(finished.device)
        if self._replay is not None and self._moved():
            self._replay, self._graphable = None, True  # capture again, checked as before
        if self._replay is not None:
            # Continue the graph from this reset: its inputs are fixed memory.
            self._static_obs.copy_(obs)
            self._core.copy_carried_into(self._carry)
            obs = self._static_obs
        steps, done = 0, False
        while steps < self.max_steps:
            chunk = min(CHECK_EVERY, self.max_steps - steps)
            if self._replay is not None and chunk == CHECK_EVERY:
                self._replay()
                self.replays += 1
            elif self._graphable and self._replay is None and steps == CHECK_EVERY:
                # These steps also tell whether they can be captured: no host syncs (an
                # ``act`` that reads values), no env state outside ``carried()``.
                with host_syncs_recorded() as syncs, self._core.uncarried_changes() as changed:
                    for _ in range(chunk):
                        obs = self._step(obs)
                self._graphable = not syncs and not changed
            else:
                for _ in range(chunk):
                    obs = self._step(obs)
            steps += chunk
            done = bool(self._all_done(rows))  # sync: every CHECK_EVERY steps
            if done:
                break
            if self._graphable and self._replay is None and steps == 2 * CHECK_EVERY:
                obs = self._capture(obs)
        self.last_steps = steps
        if not done:
            raise EpisodesUnfinished(
                f"evaluation on {self.env_id} stopped after {self.max_steps:,} steps with "
                f"{int((~finished if rows is None else ~finished & rows).sum())} episode(s) "
                "unfinished: an env whose episodes need not end needs a time limit (rl train --set "
                "max_episode_steps=N, or max_episode_steps in its registration)"
            )
        if rows is not None:
            returns, lengths, successes, attempts = (
                t[rows] for t in (returns, lengths, successes, attempts)
            )
        if not self._has_success:
            return EvalResult(self.env_id, returns.tolist(), lengths.tolist())
        return EvalResult(
            env_id=self.env_id,
            returns=returns.tolist(),
            lengths=lengths.tolist(),
            successes=float(successes.sum()),
            attempts=float(attempts.sum()),
            episode_successes=successes.tolist(),
            episode_attempts=attempts.tolist(),
        )

    def _all_done(self, rows: torch.Tensor | None) -> torch.Tensor:
        finished = self._buffers[0]
        return finished.all() if rows is None else (finished | ~rows).all()

    def check(self, seed: int) -> EvalResult:
        """A call that leaves the CPU's global RNG stream as it was: an early-stop check (see
        :func:`check_return`). The device's stream is not forked: ``act`` must draw nothing
        from it, as every deterministic policy does."""
        with torch.random.fork_rng(devices=[]):
            return self(seed)

    def _start(self, dev: torch.device) -> None:
        """The first call: buffers on the env's device, and whether to try a graph."""
        n = self.episodes
        dtypes = (torch.bool, torch.float64, torch.int64, torch.float64, torch.float64)
        self._buffers = [torch.zeros(n, dtype=dtype, device=dev) for dtype in dtypes]
        self._graphable = (
            self._cuda_graphs and dev.type == "cuda" and hasattr(self._core, "carried")
        )
        if self._graphable:
            # From the first step: its step count then lives on the device.
            self._core.capturable = True

    def _moved(self) -> bool:
        return self._pointers() != self._watched

    def _pointers(self) -> list[int]:
        return [t.data_ptr() for t in self._watch()] if self._watch is not None else []

    def _step(self, obs: torch.Tensor) -> torch.Tensor:
        """One step of every row; the first episode's figures kept in place."""
        finished, returns, lengths, successes, attempts = self._buffers
        obs, _, _, _, info = self.env.step(self.act(obs))
        ended = info["_episode"] & ~finished
        episode = info["episode"]
        # One kernel each (promoted to the buffer's dtype, written in place): a step of a
        # CartPole check is a few dozen kernels, these among them.
        torch.where(ended, episode["r"], returns, out=returns)
        torch.where(ended, episode["l"], lengths, out=lengths)
        if "successes" in episode:
            self._has_success = True
            torch.where(ended, episode["successes"], successes, out=successes)
            torch.where(ended, episode["attempts"], attempts, out=attempts)
        finished.logical_or_(ended)
        return obs

    def _capture(self, obs: torch.Tensor) -> torch.Tensor:
        """:data:`CHECK_EVERY` steps captured in a CUDA graph that continues from where the last
        replay ended (the env: a capturable ``envs.core.TorchVectorEnv``, see its ``carried``);
        the observations to continue from. Where ``act`` cannot be captured, steps stay eager."""
        core = self._core
        static_obs = obs.clone()
        carry = core.static_carried()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                out = static_obs
                for _ in range(CHECK_EVERY):
                    out = self._step(out)
                static_obs.copy_(out)
                core.copy_carried_into(carry)
        except RuntimeError:
            core.load_carried(carry)
            self._graphable = False
            return static_obs
        self._replay, self._static_obs, self._carry = graph.replay, static_obs, carry
        self._watched = self._pointers()
        return static_obs


def evaluate(
    act: Callable[[torch.Tensor], torch.Tensor],
    env_id: str,
    *,
    episodes: int = 100,
    device: str | torch.device = "cpu",
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    max_steps: int = 100_000,
    cuda_graphs: bool = True,
) -> EvalResult:
    """Run ``act`` (observations → actions) for ``episodes`` whole episodes, once: an
    :class:`Evaluator` called with ``seed`` and closed (see it for the rows, the episodes that
    count and the CUDA graphs)."""
    with Evaluator(
        act, env_id, episodes=episodes, device=device, env_kwargs=env_kwargs,
        max_steps=max_steps, cuda_graphs=cuda_graphs,
    ) as evaluator:  # fmt: skip
        return evaluator(seed)


def check_return(
    act: Callable[[torch.Tensor], torch.Tensor],
    env_id: str,
    *,
    episodes: int,
    seed: int,
    device: str | torch.device = "cpu",
    env_kwargs: dict[str, Any] | None = None,
) -> EvalResult:
    """``act`` over ``episodes`` fresh episodes: an early-stop check.

    Agents seed it with ``seed + STOP_CHECK_SEED_OFFSET`` (same run, same check) and it leaves
    the CPU's global RNG stream as it was (``act`` must not draw from the device's), so a
    resumed run stops where an uninterrupted one does. A check that runs again and again is cheaper as one
    :class:`Evaluator`'s :meth:`~Evaluator.check`.
    """
    with Evaluator(act, env_id, episodes=episodes, device=device, env_kwargs=env_kwargs) as ev:
        return ev.check(seed)
