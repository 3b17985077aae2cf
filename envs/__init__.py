"""The sandbox's environments, registered under Gymnasium's ``sandbox`` namespace.

After ``import envs``::

    gymnasium.make("sandbox/DogTraining-v0", render_mode="human")
    gymnasium.make_vec("sandbox/DogTraining-v0", num_envs=4096,
                       vectorization_mode="vector_entry_point", device="cuda")
"""

from __future__ import annotations

import gymnasium

from envs.checker import check_vector_env

__all__ = ["SANDBOX_ENV_IDS", "check_vector_env"]

SANDBOX_ENV_IDS = ("sandbox/DogTraining-v0", "sandbox/CartPole-v1", "sandbox/Pendulum-v1")

_REGISTRATIONS = {
    "sandbox/DogTraining-v0": ("envs.dog_training", "DogTraining", 200),
    "sandbox/CartPole-v1": ("envs.cartpole", "CartPole", 500),
    "sandbox/Pendulum-v1": ("envs.pendulum", "Pendulum", 200),
}

for _env_id, (_module, _name, _max_steps) in _REGISTRATIONS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(
            _env_id,
            entry_point=f"{_module}:{_name}Env",
            vector_entry_point=f"{_module}:{_name}VectorEnv",
            max_episode_steps=_max_steps,
        )
