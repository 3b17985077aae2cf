"""``check_vector_env``: an API checker for torch vector environments.

Gymnasium's ``check_env`` covers single numpy envs and fails on torch tensors; Gymnasium has no
checker for vector envs. This one checks the sandbox's vector-env contract (DESIGN.md):

* ``spaces`` — ``observation_space``/``action_space`` are the batched single spaces, and the
  autoreset mode is SAME_STEP;
* ``reset`` / ``step`` — tensors of the right shape, dtype and device; observations in the single
  observation space (post-autoreset ones included); finite rewards;
* ``autoreset`` — ``info["_final_obs"]`` and ``info["_episode"]`` equal ``terminated |
  truncated``; ``final_obs`` has the observation's shape and equals ``obs`` on the rows that
  did not finish (the agents bootstrap every row from it); finished rows really restart;
* ``episode_stats`` — ``info["episode"]["r"]``/``["l"]`` equal the returns and lengths summed here
  from the rewards; truncation happens exactly at ``max_episode_steps``;
* ``determinism`` — two ``reset(seed=...)`` runs with the same actions are identical;
* ``single_env`` — rows equal the single env (``gymnasium.make``'s env) stepped from the same
  state with the same action; exact in float64, to float32 tolerance in float32;
* ``bad_actions`` — wrong shapes and dtypes, and (with ``validate_actions``) out-of-range and NaN
  values, raise ``ValueError`` naming the env.

A failure raises :class:`VectorEnvCheckError` naming the check.
"""

from __future__ import annotations

import inspect
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space

from envs.core import State, TorchSingleEnv, TorchVectorEnv, index_rows
from rl.config import is_int

# Constructor arguments of a vector env that a single env does not take.
_VECTOR_ONLY_KWARGS = {
    "num_envs",
    "device",
    "dtype",
    "max_episode_steps",
    "validate_actions",
    "render_mode",
    "vectorization_mode",
    "vector_kwargs",
    "wrappers",
}


class VectorEnvCheckError(Exception):
    """A torch vector env broke its contract; ``check`` names the check that failed."""

    def __init__(self, env_name: str, check: str, message: str) -> None:
        self.env_name = env_name
        self.check = check
        super().__init__(f"check_vector_env({env_name}): check {check!r} failed: {message}")


class _Checker:
    def __init__(self, env: gymnasium.vector.VectorEnv, seed: int, num_steps: int) -> None:
        self.env = env
        self.base = env.unwrapped
        self.name = getattr(self.base, "env_name", type(self.base).__name__)
        self.seed = seed
        self.num_steps = num_steps
        self.n = int(env.num_envs)
        self.device = torch.device(getattr(self.base, "device", "cpu"))
        if self.device.type == "cuda" and self.device.index is None:  # as tensors report it
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.dtype = getattr(self.base, "dtype", torch.float32)
        self.rng = np.random.default_rng(seed)

    def fail(self, check: str, message: str) -> VectorEnvCheckError:
        return VectorEnvCheckError(self.name, check, message)

    def require(self, condition: bool, check: str, message: str) -> None:
        if not condition:
            raise self.fail(check, message)

    # -- helpers ------------------------------------------------------------------------------
    def expected_obs_dtype(self) -> torch.dtype:
        space = self.env.single_observation_space
        if isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
            return self.dtype
        return torch.from_numpy(np.zeros(0, dtype=space.dtype)).dtype

    def random_actions(self) -> torch.Tensor:
        """A valid batch of actions drawn from the checker's seeded generator."""
        space = self.env.single_action_space
        if isinstance(space, spaces.Discrete):
            samples = self.rng.integers(space.start, space.start + space.n, size=self.n)
            return torch.as_tensor(samples, dtype=torch.int64, device=self.device)
        if isinstance(space, spaces.Box):
            low = np.where(np.isfinite(space.low), space.low, -1.0)
            high = np.where(np.isfinite(space.high), space.high, 1.0)
            samples = self.rng.uniform(low, high, size=(self.n, *space.shape))
            return torch.as_tensor(samples, dtype=self.dtype, device=self.device)
        raise self.fail("step", f"no action sampler for {space}")

    def check_tensor(
        self, check: str, what: str, value: Any, shape: tuple[int, ...], dtype: torch.dtype
    ) -> None:
        self.require(
            isinstance(value, torch.Tensor), check, f"{what} is {type(value)}, not a tensor"
        )
        self.require(
            tuple(value.shape) == shape,
            check,
            f"{what} has shape {tuple(value.shape)}, not {shape}",
        )
        self.require(value.dtype == dtype, check, f"{what} has dtype {value.dtype}, not {dtype}")
        self.require(
            value.device == self.device,
            check,
            f"{what} is on {value.device}, not the env's device {self.device}",
        )

    def check_obs(self, check: str, what: str, obs: Any) -> None:
        space = self.env.single_observation_space
        self.check_tensor(check, what, obs, (self.n, *space.shape), self.expected_obs_dtype())
        if isinstance(space, spaces.Box):
            low = torch.as_tensor(space.low, dtype=obs.dtype, device=obs.device)
            high = torch.as_tensor(space.high, dtype=obs.dtype, device=obs.device)
            inside = (obs >= low) & (obs <= high)  # False for NaN
            if not bool(inside.all()):
                row = int(torch.nonzero(~inside.reshape(self.n, -1).all(dim=1))[0, 0])
                raise self.fail(
                    check,
                    f"{what} row {row} = {obs[row].tolist()} is outside the single observation "
                    f"space {space}",
                )
        else:
            for row in range(min(self.n, 64)):
                value = obs[row].cpu().numpy().astype(space.dtype)
                self.require(space.contains(value), check, f"{what} row {row} is not in {space}")

    # -- checks -------------------------------------------------------------------------------
    def spaces(self) -> None:
        env = self.env
        for kind in ("observation", "action"):
            single = getattr(env, f"single_{kind}_space")
            batched = getattr(env, f"{kind}_space")
            self.require(
                batched == batch_space(single, self.n),
                "spaces",
                f"{kind}_space {batched} is not batch_space(single_{kind}_space, {self.n})",
            )
        mode = env.metadata.get("autoreset_mode")
        self.require(
            mode == AutoresetMode.SAME_STEP,
            "spaces",
            f'metadata["autoreset_mode"] is {mode!r}, expected AutoresetMode.SAME_STEP',
        )

    def reset_and_step(self) -> None:
        env = self.env
        result = env.reset(seed=self.seed)
        self.require(
            isinstance(result, tuple) and len(result) == 2, "reset", "must return (obs, info)"
        )
        obs, info = result
        self.check_obs("reset", "reset obs", obs)
        self.require(isinstance(info, dict), "reset", f"info is {type(info)}, not a dict")
        max_steps = getattr(self.base, "max_episode_steps", None)
        returns = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        lengths = torch.zeros(self.n, dtype=torch.int64, device=self.device)
        restarted = finished = 0
        for t in range(self.num_steps):
            out = env.step(self.random_actions())
            self.require(
                isinstance(out, tuple) and len(out) == 5,
                "step",
                "must return (obs, reward, terminated, truncated, info)",
            )
            obs, reward, terminated, truncated, info = out
            self.check_obs("step", f"step {t} obs", obs)
            self.check_tensor("step", "reward", reward, (self.n,), self.dtype)
            self.require(bool(torch.isfinite(reward).all()), "step", f"step {t} reward not finite")
            self.check_tensor("step", "terminated", terminated, (self.n,), torch.bool)
            self.check_tensor("step", "truncated", truncated, (self.n,), torch.bool)
            self.require(
                terminated is not truncated, "step", "terminated and truncated are one tensor"
            )
            self.require(isinstance(info, dict), "step", f"info is {type(info)}, not a dict")
            done = terminated | truncated

            for key in ("final_obs", "_final_obs", "episode", "_episode"):
                self.require(key in info, "autoreset", f'step {t} info has no "{key}"')
            self.check_tensor(
                "autoreset", '"_final_obs"', info["_final_obs"], (self.n,), torch.bool
            )
            self.require(
                torch.equal(info["_final_obs"], done),
                "autoreset",
                f'step {t}: info["_final_obs"] != terminated | truncated',
            )
            self.require(
                torch.equal(info["_episode"], done),
                "autoreset",
                f'step {t}: info["_episode"] != terminated | truncated',
            )
            final_obs = info["final_obs"]
            self.check_tensor(
                "autoreset", '"final_obs"', final_obs, tuple(obs.shape), self.expected_obs_dtype()
            )
            # The agents read V(final_obs) as every row's next state: dense, not only where
            # _final_obs is set.
            self.require(
                torch.equal(final_obs[~done], obs[~done]),
                "autoreset",
                f'step {t}: info["final_obs"] differs from obs on rows that did not finish '
                "(it must be the next observation of every row, the final one where done)",
            )
            if bool(done.any()):
                finished += int(done.sum())
                changed = (final_obs[done] != obs[done]).reshape(int(done.sum()), -1).any(dim=1)
                restarted += int(changed.sum())

            returns += reward.to(torch.float64)
            lengths += 1
            episode = info["episode"]
            for key in ("r", "l"):
                self.require(key in episode, "episode_stats", f'info["episode"] has no "{key}"')
            tolerance = 1e-9 if self.dtype == torch.float64 else 1e-3
            bad_r = done & ~torch.isclose(
                episode["r"].to(torch.float64), returns, rtol=tolerance, atol=tolerance
            )
            bad_l = done & (episode["l"].to(torch.int64) != lengths)
            if bool((bad_r | bad_l).any()):
                row = int(torch.nonzero(bad_r | bad_l)[0, 0])
                raise self.fail(
                    "episode_stats",
                    f"step {t} row {row}: episode r={float(episode['r'][row])}, "
                    f"l={int(episode['l'][row])}; the rewards sum to {float(returns[row])} over "
                    f"{int(lengths[row])} steps",
                )
            if max_steps is not None:
                expected = lengths >= max_steps
                self.require(
                    torch.equal(truncated, expected),
                    "episode_stats",
                    f"step {t}: truncated should be exactly the rows at max_episode_steps="
                    f"{max_steps}",
                )
            returns.masked_fill_(done, 0.0)
            lengths.masked_fill_(done, 0)
        self.require(
            finished == 0 or restarted > 0,
            "autoreset",
            f"{finished} rows finished but every one's next obs equals its final_obs: "
            "finished rows are not being reset",
        )

    def determinism(self) -> None:
        steps = min(self.num_steps, 64)
        actions = [self.random_actions() for _ in range(steps)]

        def rollout() -> list[torch.Tensor]:
            obs, _ = self.env.reset(seed=self.seed)
            trace = [obs.clone()]
            for action in actions:
                obs, reward, terminated, truncated, _ = self.env.step(action.clone())
                trace += [obs.clone(), reward.clone(), terminated.clone(), truncated.clone()]
            return trace

        first, second = rollout(), rollout()
        for i, (a, b) in enumerate(zip(first, second, strict=True)):
            self.require(
                torch.equal(a, b),
                "determinism",
                f"two reset(seed={self.seed}) rollouts with the same actions differ at output "
                f"{i} (step {(i - 1) // 4 if i else 'reset'})",
            )

    def single_env(self, single: TorchSingleEnv) -> None:
        rows = sorted({0, self.n // 2, self.n - 1})
        exact = self.dtype == torch.float64
        self.env.reset(seed=self.seed)
        single.reset(seed=self.seed)
        for t in range(min(self.num_steps, 128)):
            before = [_cpu_float64(index_rows(self.base.state, slice(r, r + 1))) for r in rows]
            actions = self.random_actions()
            obs, reward, terminated, _, info = self.env.step(actions)
            done = info["_final_obs"]
            for r, state in zip(rows, before, strict=True):
                single.reset()
                single._state = state
                action = actions[r].cpu().numpy()
                s_obs, s_reward, s_terminated, _, _ = single.step(action)
                v_obs = (info["final_obs"][r] if bool(done[r]) else obs[r]).cpu().numpy()
                v_obs = v_obs.astype(s_obs.dtype)
                v_reward = float(reward[r])
                if exact:
                    same = np.array_equal(v_obs, s_obs) and v_reward == s_reward
                else:
                    same = np.allclose(v_obs, s_obs, rtol=1e-4, atol=1e-5) and np.isclose(
                        v_reward, s_reward, rtol=1e-4, atol=1e-5
                    )
                same = same and bool(terminated[r]) == s_terminated
                self.require(
                    same,
                    "single_env",
                    f"step {t} row {r}: vector env gave obs={v_obs.tolist()}, reward={v_reward}, "
                    f"terminated={bool(terminated[r])}; {type(single).__name__} from the same "
                    f"state and action gave obs={s_obs.tolist()}, reward={s_reward}, "
                    f"terminated={s_terminated}",
                )

    def bad_actions(self) -> None:
        env = self.env
        space = env.single_action_space
        env.reset(seed=self.seed)
        good = self.random_actions()
        cases: list[tuple[str, Any]] = [("one action too many", torch.cat([good, good[:1]]))]
        if tuple(good[0].shape) != (self.n,):  # With N=1 a (1,) Box action is a valid batch.
            cases.append(("a missing batch dimension", good[0]))
        if isinstance(space, spaces.Discrete):
            cases += [
                ("float actions", good.to(torch.float32)),
                ("bool actions", good.to(torch.bool)),
                ("an extra trailing dimension", good.unsqueeze(-1)),
            ]
            if getattr(self.base, "validate_actions", True):
                too_big = good.clone()
                too_big[-1] = int(space.start + space.n)
                too_small = good.clone()
                too_small[0] = int(space.start) - 1
                cases += [("an action above the range", too_big), ("an action below it", too_small)]
        elif isinstance(space, spaces.Box):
            cases += [
                ("bool actions", torch.zeros(good.shape, dtype=torch.bool, device=self.device)),
                ("complex actions", good.to(torch.complex64)),
                ("an extra trailing dimension", good.unsqueeze(-1)),
            ]
            if getattr(self.base, "validate_actions", True):
                with_nan = good.clone()
                with_nan.view(self.n, -1)[-1, 0] = float("nan")
                cases.append(("a NaN", with_nan))
        for label, actions in cases:
            try:
                env.step(actions)
            except ValueError as exc:
                self.require(
                    self.name in str(exc),
                    "bad_actions",
                    f"the ValueError for {label} does not name the env ({self.name!r}): {exc}",
                )
            except Exception as exc:
                raise self.fail(
                    "bad_actions",
                    f"{label} raised {type(exc).__name__} ({exc}), expected ValueError",
                ) from exc
            else:
                raise self.fail("bad_actions", f"{label} was accepted, expected ValueError")


def _cpu_float64(state: State) -> State:
    if isinstance(state, torch.Tensor):
        state = state.detach().to("cpu")
        return state.to(torch.float64) if state.is_floating_point() else state.clone()
    return type(state)(*(_cpu_float64(field) for field in state))


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def find_single_env(env: gymnasium.vector.VectorEnv) -> TorchSingleEnv | None:
    """Build the :class:`TorchSingleEnv` counterpart of a torch vector env, if it has one.

    The class is the ``TorchSingleEnv`` subclass whose ``vector_cls`` is the env's class. Its
    arguments are the env's ``single_env_kwargs`` property when it has one, otherwise the
    ``gymnasium.make_vec`` kwargs in ``env.spec`` that the single env's constructor accepts.
    """
    base = env.unwrapped
    # Only classes that declare the vector class themselves: a subclass of CartPoleEnv made for
    # a test inherits vector_cls but is not the counterpart.
    matches = [
        cls for cls in _subclasses(TorchSingleEnv) if cls.__dict__.get("vector_cls") is type(base)
    ]
    if not matches:
        return None
    single_cls = matches[0]
    kwargs = getattr(base, "single_env_kwargs", None)
    if kwargs is None:
        spec_kwargs = dict(env.spec.kwargs) if getattr(env, "spec", None) is not None else {}
        accepted = inspect.signature(single_cls.__init__).parameters
        kwargs = {
            key: value
            for key, value in spec_kwargs.items()
            if key not in _VECTOR_ONLY_KWARGS and key in accepted
        }
    return single_cls(**kwargs)


def check_vector_env(
    env: gymnasium.vector.VectorEnv,
    *,
    seed: int = 0,
    num_steps: int = 256,
    single_env: TorchSingleEnv | None = None,
) -> list[str]:
    """Check a torch vector env against the sandbox's vector-env contract.

    Args:
        env: a torch vector env (a :class:`envs.core.TorchVectorEnv`, possibly wrapped); it is
            reset and stepped, so pass one that nothing else is using.
        seed: seeds the env's resets and the random actions.
        num_steps: steps of the main random rollout; enough for rows to finish (the
            ``episode_stats`` check can only see truncation when this exceeds
            ``max_episode_steps``).
        single_env: the single env to compare rows with; found by :func:`find_single_env`
            when ``None``. The comparison is skipped when there is none.

    Returns:
        The names of the checks that ran and passed.

    Raises:
        VectorEnvCheckError: naming the first check that failed and why.
        ValueError: for a bad ``num_steps`` or ``seed``.
    """
    if not is_int(num_steps, 1):
        raise ValueError(f"check_vector_env: num_steps must be an integer >= 1, got {num_steps!r}")
    if not is_int(seed, 0):
        raise ValueError(f"check_vector_env: seed must be an integer >= 0, got {seed!r}")
    checker = _Checker(env, seed, num_steps)
    if not isinstance(env.unwrapped, TorchVectorEnv):
        raise checker.fail(
            "spaces", f"{type(env.unwrapped).__name__} is not an envs.core.TorchVectorEnv"
        )
    passed = []
    checker.spaces()
    passed.append("spaces")
    checker.reset_and_step()
    passed += ["reset", "step", "autoreset", "episode_stats"]
    checker.determinism()
    passed.append("determinism")
    owned = single_env is None
    if owned:
        single_env = find_single_env(env)
    if single_env is not None:
        try:
            checker.single_env(single_env)
        finally:
            if owned:
                single_env.close()
        passed.append("single_env")
    checker.bad_actions()
    passed.append("bad_actions")
    return passed
