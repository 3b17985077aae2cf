"""Evaluation: run a policy for a number of whole episodes and summarise them."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from rl.device import host_syncs_recorded
from rl.vector import make_vector_env


@dataclass
class EvalResult:
    """Per-episode returns and lengths, plus the env's success rate where it reports one."""

    env_id: str
    returns: list[float]
    lengths: list[int]
    successes: float | None = None
    attempts: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

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

    def summary(self) -> str:
        text = (
            f"{self.env_id}: mean return {self.mean_return:.2f} ± {self.std_return:.2f} over "
            f"{self.episodes} episodes (mean length {self.mean_length:.1f})"
        )
        if self.success_rate is not None:
            text += f", success rate {self.success_rate:.1%}"
        return text


CHECK_EVERY = 16  # steps between the checks (host syncs) for every episode having ended


@torch.inference_mode()  # ~15 % faster than no_grad for this small-op loop (CartPole, CPU)
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
    """Run ``act`` (observations → actions) for ``episodes`` whole episodes.

    One vector-env row per episode, each counting only its first episode, so short episodes are
    not over-represented. Works for the sandbox's torch envs and any Gymnasium env.

    With ``cuda_graphs``, on CUDA with a sandbox env, the steps after the first
    ``2 * CHECK_EVERY`` are replayed :data:`CHECK_EVERY` at a time from a CUDA graph (the same
    numbers; a CartPole evaluation is hundreds of steps of a few dozen tiny kernels each). Steps
    that cannot be captured (an ``act`` that reads values on the host, an env with state outside
    its ``carried()`` tensors) run eagerly.
    """
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an integer >= 1, got {episodes!r}")
    env = make_vector_env(env_id, episodes, device, env_kwargs=env_kwargs)
    try:
        obs, _ = env.reset(seed=seed)
        dev = obs.device
        finished = torch.zeros(episodes, dtype=torch.bool, device=dev)
        returns = torch.zeros(episodes, dtype=torch.float64, device=dev)
        lengths = torch.zeros(episodes, dtype=torch.int64, device=dev)
        successes = torch.zeros(episodes, dtype=torch.float64, device=dev)
        attempts = torch.zeros(episodes, dtype=torch.float64, device=dev)
        has_success = False

        def step(obs: torch.Tensor) -> torch.Tensor:
            """One step of every row; the first episode's figures kept in place."""
            nonlocal has_success
            obs, _, _, _, info = env.step(act(obs))
            ended = info["_episode"] & ~finished
            episode = info["episode"]
            returns.copy_(torch.where(ended, episode["r"].to(torch.float64), returns))
            lengths.copy_(torch.where(ended, episode["l"].to(torch.int64), lengths))
            if "successes" in episode:
                has_success = True
                successes.copy_(
                    torch.where(ended, episode["successes"].to(torch.float64), successes)
                )
                attempts.copy_(torch.where(ended, episode["attempts"].to(torch.float64), attempts))
            finished.logical_or_(ended)
            return obs

        core = getattr(env, "unwrapped", None)
        graphable = cuda_graphs and dev.type == "cuda" and hasattr(core, "carried")
        if graphable:
            core.capturable = True  # from the first step: its step count then lives on the device
        steps = 0
        replay = None
        while steps < max_steps:
            chunk = min(CHECK_EVERY, max_steps - steps)
            if replay is not None and chunk == CHECK_EVERY:
                replay()
            elif graphable and steps == CHECK_EVERY:  # after the first (lazy set-up) steps
                # These steps also tell whether they can be captured: no host syncs (an
                # ``act`` that reads values), no env state outside ``carried()``.
                with host_syncs_recorded() as syncs, core.uncarried_changes() as changed:
                    for _ in range(chunk):
                        obs = step(obs)
                graphable = not syncs and not changed
            else:
                for _ in range(chunk):
                    obs = step(obs)
            steps += chunk
            if bool(finished.all()):  # sync: every CHECK_EVERY steps
                break
            if graphable and steps == 2 * CHECK_EVERY:
                replay, obs = _capture_steps(core, step, obs)
        if not bool(finished.all()):
            raise RuntimeError(
                f"evaluation on {env_id} stopped after {max_steps} steps with "
                f"{int((~finished).sum())} episode(s) unfinished"
            )
    finally:
        env.close()
    return EvalResult(
        env_id=env_id,
        returns=returns.tolist(),
        lengths=lengths.tolist(),
        successes=float(successes.sum()) if has_success else None,
        attempts=float(attempts.sum()) if has_success else None,
    )


def _capture_steps(
    core: Any, step: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor
) -> tuple[Callable[[], None] | None, torch.Tensor]:
    """:data:`CHECK_EVERY` calls of ``step`` captured in a CUDA graph that continues from where
    the last replay ended (``core``: a capturable ``envs.core.TorchVectorEnv``, see its
    ``carried``); ``(replay, obs)``, or ``(None, obs)`` where ``act`` cannot be captured."""
    static_obs = obs.clone()
    carry = core.static_carried()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            out = static_obs
            for _ in range(CHECK_EVERY):
                out = step(out)
            static_obs.copy_(out)
            core.copy_carried_into(carry)
    except RuntimeError:
        core.load_carried(carry)
        return None, static_obs
    return graph.replay, static_obs


def check_return(
    act: Callable[[torch.Tensor], torch.Tensor],
    env_id: str,
    *,
    episodes: int,
    seed: int,
    device: str | torch.device = "cpu",
    env_kwargs: dict[str, Any] | None = None,
) -> float:
    """Mean return of ``act`` over ``episodes`` fresh episodes: an early-stop check.

    Agents seed it from the global step (same run, same check) and it leaves the global RNG
    streams as they were, so a resumed run stops where an uninterrupted one does.
    """
    with torch.random.fork_rng(devices=[]):
        result = evaluate(
            act, env_id, episodes=episodes, device=device, seed=seed, env_kwargs=env_kwargs
        )
    return result.mean_return
