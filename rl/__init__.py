"""RL Sandbox's shared core: device, seeding, tensors, configs, logging, returns, checkpoints,
supervised baselines and the vector-env adapter.

Everything in ``rl`` except the CLI (``rl.cli``) imports neither ``envs`` nor ``agents``.
"""

from __future__ import annotations

__version__ = "0.1.0"
