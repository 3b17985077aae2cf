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

# id: (module, class prefix, max_episode_steps, reward_threshold as Gymnasium registers it)
_REGISTRATIONS = {
    "sandbox/DogTraining-v0": ("envs.dog_training", "DogTraining", 200, None),
    "sandbox/CartPole-v1": ("envs.cartpole", "CartPole", 500, 475.0),
    "sandbox/Pendulum-v1": ("envs.pendulum", "Pendulum", 200, None),
}

for _env_id, (_module, _name, _max_steps, _threshold) in _REGISTRATIONS.items():
    if _env_id not in gymnasium.registry:
        gymnasium.register(
            _env_id,
            entry_point=f"{_module}:{_name}Env",
            vector_entry_point=f"{_module}:{_name}VectorEnv",
            max_episode_steps=_max_steps,
            reward_threshold=_threshold,
        )
