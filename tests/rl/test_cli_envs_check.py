"""`rl envs` and `rl check`: the listing and the CI smoke command for any registered env."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from rl.cli import main

BROKEN_ENV = '''
import gymnasium
import numpy as np
from gymnasium import spaces


class LyingEnv(gymnasium.Env):
    """Returns observations outside its own observation space."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, render_mode=None):
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0.0, 1.0, (2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.full(2, 5.0, dtype=np.float32), {}

    def step(self, action):
        return np.full(2, 5.0, dtype=np.float32), 0.0, True, False, {}

    def render(self):
        return np.zeros((4, 4, 3), dtype=np.uint8)


gymnasium.register("usercheck/Lying-v0", entry_point=LyingEnv, max_episode_steps=10)
'''


def test_envs_lists_every_sandbox_env(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["envs", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in rows] == [
        "sandbox/DogTraining-v0",
        "sandbox/CartPole-v1",
        "sandbox/Pendulum-v1",
    ]
    assert rows[0]["action_space"] == "Discrete(6)"
    assert all(row["vectorized"] for row in rows)


@pytest.mark.parametrize(
    "env_id", ["sandbox/DogTraining-v0", "sandbox/CartPole-v1", "sandbox/Pendulum-v1"]
)
def test_check_passes_on_the_sandbox_envs(env_id: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", env_id, "--episodes", "2", "--num-envs", "4"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("PASS", "FAIL"))]
    assert len(lines) == 4 and all(line.startswith("PASS") for line in lines)
    assert "skipped" not in out  # every sandbox env has a torch vector env to check
    assert "4 passed, 0 failed" in out
    dqn = env_id != "sandbox/Pendulum-v1"  # DQN needs Discrete actions
    assert f"rl train --env {env_id}: --algo ppo, a2c{', dqn' if dqn else ' ('}" in out


def test_check_names_an_imported_env_as_rl_train_takes_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "sandbox/CartPole-v1", "--import", "envs", "--episodes", "1"]) == 0
    assert "rl train --env envs:sandbox/CartPole-v1: --algo ppo, a2c, dqn" in (
        capsys.readouterr().out
    )


def test_check_says_when_rl_train_cannot_train_a_valid_env(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "FrozenLake-v1", "--episodes", "1"]) == 0  # a valid env...
    out = capsys.readouterr().out
    assert "rl train: not supported (observation space Discrete(16)" in out  # ...not for us


def test_check_fails_a_users_broken_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "user_envs_broken.py").write_text(textwrap.dedent(BROKEN_ENV))
    monkeypatch.chdir(tmp_path)  # found in the current folder, as `python -m` would
    code = main(["check", "usercheck/Lying-v0", "--import", "user_envs_broken", "--episodes", "1"])
    out = capsys.readouterr().out
    assert code == 1
    assert any(line.startswith("FAIL  check_env") for line in out.splitlines())
    # The random episodes see it too, and say what differs.
    assert "FAIL  random episodes" in out and "values in [5, 5], the space allows [0, 1]" in out
    assert "SKIP  check_vector_env" in out and "1 skipped" in out
    assert "\x1b[" not in out  # no terminal colour codes in a CI log
    assert any(line.startswith("FAIL  headless render") for line in out.splitlines())  # blank frame
    sys.modules.pop("user_envs_broken", None)


def test_check_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "NoSuchEnv-v9"]) == 2
    assert "unknown environment" in capsys.readouterr().err
    assert main(["check", "sandbox/CartPole-v1", "--episodes", "0"]) == 2
    assert main(["check", "sandbox/CartPole-v1", "--import", "no_such_module_xyz"]) == 2


def test_a_module_prefixed_id_imports_its_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "user_envs_prefixed.py").write_text(
        textwrap.dedent(BROKEN_ENV).replace("usercheck/Lying-v0", "userprefix/Lying-v0")
    )
    monkeypatch.chdir(tmp_path)
    assert main(["check", "user_envs_prefixed:userprefix/Lying-v0", "--episodes", "1"]) == 1
    assert "Checking userprefix/Lying-v0" in capsys.readouterr().out
    sys.modules.pop("user_envs_prefixed", None)


def test_a_module_that_fails_to_import_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "user_envs_needing.py").write_text("import no_such_dependency_xyz\n")
    (tmp_path / "user_envs_raising.py").write_text("raise RuntimeError('half-written env')\n")
    monkeypatch.chdir(tmp_path)
    for argv in (["check", "user_envs_needing:my/X-v0"], ["watch", "user_envs_needing:my/X-v0"]):
        assert main(argv) == 2
        assert "No module named 'no_such_dependency_xyz'" in capsys.readouterr().err
    for argv in (
        ["check", "user_envs_raising:my/X-v0"],
        ["train", "--env", "user_envs_raising:my/X-v0"],
    ):
        assert main(argv) == 2  # one line, not the traceback of the user's module
        err = capsys.readouterr().err
        assert "raised RuntimeError: half-written env (python -c 'import user_envs_raising'" in err
        assert "Traceback" not in err
