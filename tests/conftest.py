"""Test-wide setup: headless pygame, and ``gpu`` tests skipped without CUDA."""

from __future__ import annotations

import os

# Before anything imports pygame: render windows into memory and play no sound, so render
# tests behave the same on a desktop (where SDL_VIDEODRIVER may name wayland or x11) as on CI
# machines without a display or sound card.
os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs CUDA, which this machine does not have")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)
