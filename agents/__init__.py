"""The agents: one algorithm per file, each runnable as ``python -m agents.<algo>``.

Every algorithm module provides the same four names, which the CLI relies on:

* ``Config`` — a frozen dataclass (CleanRL's hyperparameter names), with ``env_id``, ``seed``,
  ``num_envs``, ``total_timesteps``, ``device``, ``run_dir`` among its fields;
* ``default_config(env_id, **overrides) -> Config`` — the per-env preset table;
* ``train(cfg, *, resume=None) -> TrainResult`` — trains, logs the run, returns metrics and the
  policy (``resume`` is a run directory to continue from ``latest.pt``);
* ``load_policy(checkpoint, device) -> Policy`` — a policy from a checkpoint dict.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from agents.base import Policy, PolicyView, TrainResult

ALGOS = ("ppo", "a2c", "dqn")
"""What ``rl train --algo`` trains."""
POLICY_ALGOS = (*ALGOS, "bc")
"""Whose checkpoints ``rl eval``/``rl watch`` load: behaviour cloning writes them too."""

__all__ = ["ALGOS", "POLICY_ALGOS", "Policy", "PolicyView", "TrainResult", "get_algo"]


def get_algo(name: str, *, trainable: bool = False) -> ModuleType:
    """The module of algorithm ``name``.

    Args:
        name: ``ppo``, ``a2c``, ``dqn`` (or ``bc``, whose policies load but which
            ``rl train`` does not train: ``rl supervised bc`` does).
        trainable: accept only what ``rl train`` trains.
    """
    choices = ALGOS if trainable else POLICY_ALGOS
    if name == "ppo-multiseed":  # a checkpoint's algo: agents.multiseed's group checkpoint
        raise ValueError(
            "this is the group checkpoint of an rl train --seeds run (every seed's weights "
            "stacked, for rl train --resume GROUP); evaluate or watch one seed's run folder, "
            "beside the group folder (runs/<env>__ppo__<seed>__...)"
        )
    if name not in choices:
        raise ValueError(f"unknown algorithm {name!r}; choose one of {', '.join(choices)}")
    return importlib.import_module(f"agents.{name}")
