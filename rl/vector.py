"""One door to every vector env: the sandbox's torch envs natively, any other registered
Gymnasium env through :class:`NumpyToTorchVectorEnv`.

Agents call :func:`make_vector_env` and see one interface either way: tensors on the device in
and out, SAME_STEP autoreset with ``info["final_obs"]`` as a full ``(N, *obs_shape)`` tensor
(the final observation where ``info["_final_obs"]``, the next one elsewhere: every row's next
state) and finished episodes in ``info["episode"]`` /
``info["_episode"]``.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from rl.config import require_int
from rl.device import resolve_device


def did_you_mean(env_id: str) -> str:
    """``"did you mean 'sandbox/DogTraining-v0'? "`` for a misspelt id, ``""`` if nothing is
    close (the start of a hint in an unknown-env message)."""
    similar = similar_env_ids(env_id)
    return f"did you mean {' or '.join(map(repr, similar))}? " if similar else ""


def similar_env_ids(env_id: str, limit: int = 3) -> list[str]:
    """Registered ids close to ``env_id`` (a typo's likely meaning), closest first."""
    import difflib

    ids = list(gymnasium.registry)
    close = difflib.get_close_matches(env_id, ids, n=limit, cutoff=0.6)
    # A bare name matches its namespaced id ("DogTraining-v0" -> "sandbox/DogTraining-v0").
    name = env_id.split("/")[-1].split("-")[0].lower()
    close += [i for i in ids if name and i.split("/")[-1].split("-")[0].lower() == name]
    return list(dict.fromkeys(close))[:limit]


def import_env_module(module: str) -> None:
    """Import ``module`` for the envs it registers (``rl check --import``, ``"module:Env-v0"``
    ids), from the installed packages or, failing those, the current folder (as ``python -m``
    would; looked in last, so a file there never shadows an installed package).

    Raises:
        ValueError: the module cannot be imported.
    """
    import importlib
    import os
    import sys

    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.append(cwd)
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ValueError(
            f"cannot import {module!r}, the module that should register the env ({exc}); "
            "looked in the installed packages and the current folder"
        ) from None
    except Exception as exc:  # the user's own module failed while running
        sys.modules.pop(module, None)
        raise ValueError(
            f"importing {module!r}, the module that should register the env, raised "
            f"{type(exc).__name__}: {exc} (python -c 'import {module}' shows where)"
        ) from None


def bare_env_id(env_id: str) -> str:
    """``"module:Env-v0"`` (Gymnasium's form: import ``module``, then make ``Env-v0``) → the
    registered id, with ``module`` imported; any other id unchanged."""
    module, sep, bare = env_id.rpartition(":")
    if sep and module:
        import_env_module(module)
        return bare
    return env_id


def env_spec(env_id: str) -> gymnasium.envs.registration.EnvSpec:
    """The registered spec (``"module:Env-v0"`` imports ``module`` first), or a ValueError that
    suggests similar ids."""
    bare = bare_env_id(env_id)
    try:
        return gymnasium.spec(bare)
    except gymnasium.error.Error as exc:
        # Gymnasium's own words where they add something (a package to install, a version
        # deprecated); its "Did you mean" where we have ours.
        why = str(exc).split(" Did you mean")[0].strip()
        if bare.startswith("sandbox/") and not any(
            id_.startswith("sandbox/") for id_ in gymnasium.registry
        ):
            raise ValueError(
                f"unknown environment {bare!r}: the sandbox/ ids are registered by `import envs`; "
                f"import it first, or pass 'envs:{bare}'"
            ) from None
        raise ValueError(
            f"unknown environment {bare!r} ({why}); {did_you_mean(bare)}`rl envs` lists the "
            "sandbox's envs"
        ) from None


def make_vector_env(
    env_id: str,
    num_envs: int,
    device: str | torch.device = "cpu",
    *,
    env_kwargs: dict[str, Any] | None = None,
    validate_actions: bool = False,
) -> VectorEnv:
    """A torch-facing vector env for any registered env id.

    Args:
        env_id: e.g. ``"sandbox/DogTraining-v0"`` or Gymnasium's ``"Acrobot-v1"``.
        num_envs: rows stepped together (>= 1).
        device: where observations, rewards and flags live.
        env_kwargs: constructor arguments (e.g. ``{"reward_scheme": "treats"}``).
        validate_actions: check action values each step (a host sync on CUDA); agents sample
            valid actions, so they leave it off.

    Raises:
        ValueError: an unknown env, or an argument in ``env_kwargs`` it does not take.
    """
    require_int("num_envs", num_envs, 1)
    device = resolve_device(device)
    spec = env_spec(env_id)
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ValueError(f"env_kwargs must be a dict of {env_id}'s arguments, got {env_kwargs!r}")
    env_kwargs = dict(env_kwargs or {})
    check_env_kwargs("env_kwargs", env_id, env_kwargs)  # a ValueError here, not a TypeError
    entry = spec.vector_entry_point
    if entry is not None and _is_sandbox_entry(entry):
        return gymnasium.make_vec(
            env_id,
            num_envs=num_envs,
            vectorization_mode="vector_entry_point",
            device=device,
            validate_actions=validate_actions,
            **env_kwargs,
        )
    numpy_env = gymnasium.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": AutoresetMode.SAME_STEP},
        **env_kwargs,
    )
    try:
        return NumpyToTorchVectorEnv(numpy_env, device)
    except ValueError:  # spaces the agents cannot use: the env made for them is not kept
        numpy_env.close()
        raise


# Arguments make_vector_env gives a sandbox env itself.
_PASSED_BY_MAKE = ("self", "num_envs", "device", "validate_actions")


def _constructor_signature(
    env_id: str, *, single: bool = False
) -> tuple[list[inspect.Parameter], bool] | None:
    """The parameters of what :func:`make_vector_env` calls for ``env_id`` (a sandbox env's
    vector class, else the single env behind ``gymnasium.make``; with ``single`` that single
    env always) and whether they are a sandbox vector class's; ``None`` where no signature can
    be read."""
    from gymnasium.envs.registration import load_env_creator

    spec = env_spec(env_id)
    sandbox = spec.vector_entry_point is not None and _is_sandbox_entry(spec.vector_entry_point)
    sandbox = sandbox and not single
    entry = spec.vector_entry_point if sandbox else spec.entry_point
    try:
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
        return list(inspect.signature(creator).parameters.values()), sandbox
    except (ImportError, AttributeError, TypeError, ValueError, gymnasium.error.Error):
        return None


def env_parameters(env_id: str) -> list[inspect.Parameter] | None:
    """The named constructor arguments ``env_kwargs`` may give ``env_id`` in
    :func:`make_vector_env` (``gymnasium.make`` adds ``max_episode_steps`` to a Gymnasium
    env's), with their defaults; ``None`` where no signature can be read."""
    found = _constructor_signature(env_id)
    return None if found is None else _named_parameters(*found)


def _named_parameters(
    parameters: list[inspect.Parameter], sandbox: bool
) -> list[inspect.Parameter]:
    """:func:`env_parameters` from a read :func:`_constructor_signature`."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    taken = _PASSED_BY_MAKE if sandbox else ("self",)
    known = [p for p in parameters if p.kind in kinds and p.name not in taken]
    if not sandbox and all(p.name != "max_episode_steps" for p in known):
        known.append(
            inspect.Parameter("max_episode_steps", inspect.Parameter.KEYWORD_ONLY, default=None)
        )
    return known


def check_env_kwargs(
    name: str, env_id: str, env_kwargs: dict[str, Any], *, single: bool = False
) -> None:
    """A ValueError naming ``name`` for a key of ``env_kwargs`` that ``env_id`` does not take
    (listing those it does), now rather than a TypeError when the env is made; an unknown
    ``env_id`` too. The values are the env's to judge when it is made, as are the keys of an
    env that takes ``**kwargs``. ``single``: the env ``gymnasium.make`` builds (``rl play``,
    ``rl watch``), not :func:`make_vector_env`'s (a sandbox env's vector class takes more)."""
    found = _constructor_signature(env_id, single=single)
    if found is None or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in found[0]):
        return
    known = [p.name for p in _named_parameters(*found)]
    for key in env_kwargs:
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            # (dtype and render_mode are set by whatever makes the env: not worth listing)
            shown = [k for k in known if k not in ("dtype", "render_mode")]
            raise ValueError(
                f"{name}: {env_id} takes no argument {key!r}{hint}; its arguments are "
                f"{', '.join(shown) or '(none)'}"
            )


def check_env_values(name: str, env_id: str, env_kwargs: dict[str, Any]) -> None:
    """Make ``env_id`` with ``env_kwargs`` once (one env, on the CPU) and close it: a
    ValueError naming ``name`` for values the env refuses (an unknown layout), before a run
    that would make the env only after writing its folder, or after training."""
    try:
        env = make_vector_env(env_id, 1, "cpu", env_kwargs=env_kwargs)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None
    env.close()


def _is_sandbox_entry(entry: Any) -> bool:
    """Whether a vector entry point makes a torch vector env (``metadata["backend"]`` is
    ``"torch"``, as :class:`envs.core.TorchVectorEnv`'s): one of the sandbox's, or a user's
    registered by class or by ``"module:Class"`` string. Gymnasium's own (numpy) vector entry
    points are not: their envs go through the numpy adapter."""
    if isinstance(entry, str):
        module = entry.split(":")[0]
        if module == "envs" or module.startswith("envs."):
            return True
        from gymnasium.envs.registration import load_env_creator

        try:
            entry = load_env_creator(entry)
        except (ImportError, AttributeError, ValueError, gymnasium.error.Error):
            return False  # made the numpy way, which reports the problem
    metadata = getattr(entry, "metadata", None)
    return isinstance(metadata, dict) and metadata.get("backend") == "torch"


class NumpyToTorchVectorEnv(VectorEnv):
    """A Gymnasium numpy vector env (SAME_STEP autoreset) seen as tensors on ``device``.

    Observations become float32 tensors, discrete actions are taken as integer tensors,
    ``final_obs`` is densified (rows that did not finish hold their current observation), and
    episode returns and lengths are tracked here as Gymnasium's SyncVectorEnv does not. The
    env's other ``info`` entries, ``final_info``/``_final_info`` (the finished rows' last
    ``info``, e.g. an ``is_success``) included, pass through as Gymnasium's numpy arrays.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "backend": "torch",
    }

    def __init__(self, env: VectorEnv, device: str | torch.device = "cpu") -> None:
        mode = env.metadata.get("autoreset_mode")
        if mode != AutoresetMode.SAME_STEP:
            raise ValueError(
                f"NumpyToTorchVectorEnv needs a SAME_STEP autoreset vector env, got {mode}; make it "
                "with vector_kwargs={'autoreset_mode': AutoresetMode.SAME_STEP}"
            )
        obs_space = env.single_observation_space
        if not isinstance(obs_space, spaces.Box):
            raise ValueError(
                f"{_name(env)}: observation space {obs_space} is not supported; the agents need a "
                "Box (vector) observation"
            )
        if not isinstance(env.single_action_space, (spaces.Discrete, spaces.Box)):
            raise ValueError(
                f"{_name(env)}: action space {env.single_action_space} is not supported; "
                "expected Discrete or Box"
            )
        self.env = env
        self.device = resolve_device(device)
        self.num_envs = env.num_envs
        self.single_observation_space = obs_space
        self.single_action_space = env.single_action_space
        self.observation_space = env.observation_space
        self.action_space = env.action_space
        self.spec = env.spec
        self.render_mode = getattr(env, "render_mode", None)
        self._returns = np.zeros(self.num_envs, dtype=np.float64)
        self._lengths = np.zeros(self.num_envs, dtype=np.int64)

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)

    def reset(
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._obs(obs), info

    def step(
        self, actions: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        if isinstance(actions, torch.Tensor):
            actions = actions.detach().cpu().numpy()
        actions = np.asarray(actions)
        if isinstance(self.single_action_space, spaces.Box):
            actions = np.clip(
                actions.reshape(self.num_envs, *self.single_action_space.shape),
                self.single_action_space.low,
                self.single_action_space.high,
            ).astype(self.single_action_space.dtype)
        obs, reward, terminated, truncated, info = self.env.step(actions)
        self._returns += reward
        self._lengths += 1
        done = np.logical_or(terminated, truncated)
        final_obs = np.array(obs, dtype=np.float32, copy=True)
        if "_final_obs" in info:
            for i in np.flatnonzero(info["_final_obs"]):
                final_obs[i] = info["final_obs"][i]
        episode = {"r": self._returns.copy(), "l": self._lengths.copy()}
        self._returns[done] = 0.0
        self._lengths[done] = 0
        done_t = torch.as_tensor(done, device=self.device)
        out_info = {
            key: value for key, value in info.items() if key not in ("final_obs", "_final_obs")
        }
        out_info.update(
            final_obs=self._obs(final_obs),
            _final_obs=done_t,
            episode={
                "r": torch.as_tensor(episode["r"], dtype=torch.float32, device=self.device),
                "l": torch.as_tensor(episode["l"], device=self.device),
                "_r": done_t,
                "_l": done_t,
            },
            _episode=done_t,
        )
        return (
            self._obs(obs),
            torch.as_tensor(np.asarray(reward, dtype=np.float32), device=self.device),
            torch.as_tensor(terminated, device=self.device),
            torch.as_tensor(truncated, device=self.device),
            out_info,
        )

    def render(self) -> Any:
        return self.env.render()

    def close_extras(self, **kwargs: Any) -> None:
        if hasattr(self, "env"):  # (not when __init__ refused the env: __del__ closes too)
            self.env.close()


def _name(env: Any) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env).__name__
