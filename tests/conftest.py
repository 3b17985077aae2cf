"""Test-wide setup: headless pygame, and ``gpu`` tests skipped without CUDA."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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


@contextlib.contextmanager
def held_by_another_process(folder: Path) -> Iterator[subprocess.Popen[str]]:
    """``folder``'s run lock held by a second process, as a live ``rl train`` holds it, until
    the block ends (the process then exits and the OS drops its lock)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; from rl.runs import acquire_run_folder; "
         f"acquire_run_folder({str(folder)!r}); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        if holder.stdout is None or holder.stdout.readline().strip() != "held":
            raise RuntimeError(f"the second process did not take {folder}'s lock")
        yield holder
    finally:
        holder.communicate("")
