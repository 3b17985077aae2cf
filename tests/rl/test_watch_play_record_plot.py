"""The learner's tools: ``rl watch``, ``rl play``, ``rl record`` and ``rl plot``, headless.

Every window here lives on SDL's dummy video driver: no test opens a real display. Runs are
tiny PPO trainings shared by the module (seconds), and plots also read synthetic event files.
"""

from __future__ import annotations

import os

# Before pygame is imported anywhere: windows on the dummy driver, no sound device.
os.environ["SDL_VIDEODRIVER"] = "dummy"
os.environ["SDL_AUDIODRIVER"] = "dummy"

import json
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the sandbox/ env ids)
from rl.cli import CLIError, main
from rl.cli.hud import (
    STRINGS,
    Controls,
    HudModel,
    ViewerWindow,
    action_names,
    compose_frame,
    describe_step,
    handle_watch_events,
)
from rl.cli.play_cmd import PlaySession
from rl.cli.targets import RandomPolicy, progress_targets, resolve_target
from rl.cli.watch_cmd import EpisodeRunner, GridRunner, Viewer
from rl.runs import list_snapshots

pygame = pytest.importorskip("pygame")

DOG = "sandbox/DogTraining-v0"
CARTPOLE = "sandbox/CartPole-v1"


def _tiny_run(root: Path, env_id: str, name: str) -> Path:
    from agents import ppo

    cfg = ppo.default_config(
        env_id,
        total_timesteps=512,
        num_envs=4,
        num_steps=32,
        num_minibatches=2,
        update_epochs=1,
        num_snapshots=3,
        eval_episodes=0,
        progress=False,
        device="cpu",
        run_dir=str(root / name),
    )
    ppo.train(cfg)
    return root / name


@pytest.fixture(scope="module")
def dog_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_run(tmp_path_factory.mktemp("runs"), DOG, "dog")


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tiny_run(tmp_path_factory.mktemp("runs"), CARTPOLE, "cartpole")


@pytest.fixture
def display() -> None:
    """An initialised (dummy) display, so events can be posted before a window opens."""
    pygame.display.init()
    pygame.event.clear()
    yield
    if pygame.display.get_init():  # The last window to close quits the display.
        pygame.event.clear()


def _post_key(key: int, release: bool = True) -> None:
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0))
    if release:
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key, mod=0))


def _assert_lively(frames: list[np.ndarray]) -> None:
    """Frames are not blank (many colours) and change over time."""
    assert len(frames) >= 2
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
        assert frame.std() > 10, "a blank frame"
        packed = frame[::2, ::2].astype(np.int64) @ np.array([1 << 16, 1 << 8, 1])
        assert len(np.unique(packed)) > 20, "a frame of very few colours"
    assert any(not np.array_equal(frames[0], f) for f in frames[1:]), "frames never change"


# -- rl watch ------------------------------------------------------------------------------------
def test_watch_env_id_runs_a_random_policy_to_max_steps(capsys: pytest.CaptureFixture) -> None:
    assert main(["watch", DOG, "--max-steps", "12", "--fps", "0"]) == 0


def test_watch_run_dir_shows_the_trained_policy(dog_run: Path) -> None:
    target = resolve_target(str(dog_run))
    assert target.env_id == DOG and not target.is_random and target.algo == "ppo"
    runner = EpisodeRunner(target, seed=0)
    frames = [runner.frame()]
    readout = runner.model.readout
    assert readout is not None and readout.probs is not None
    assert sum(readout.probs) == pytest.approx(1.0, abs=1e-4)
    assert np.isfinite(readout.value) and readout.chosen in range(6)
    for _ in range(6):
        runner.tick()
        frames.append(runner.frame())
    runner.close()
    _assert_lively(frames)
    assert main(["watch", str(dog_run), "--max-steps", "5", "--fps", "0"]) == 0


def test_watch_progress_walks_every_checkpoint(
    cartpole_run: Path, capsys: pytest.CaptureFixture
) -> None:
    snapshots = list_snapshots(cartpole_run)
    assert len(snapshots) >= 3
    # Short episodes (gymnasium.make's time limit) keep this test fast whatever the policy.
    targets = progress_targets(str(cartpole_run), env_kwargs={"max_episode_steps": 4})
    viewer = Viewer(targets, fps=0, episodes=1, progress=True)
    assert viewer.run() == 0
    assert [t.global_step for t in viewer.visited] == [step for step, _ in snapshots]
    assert viewer.visited[0].percent == 0 and viewer.visited[-1].percent == 100
    out = capsys.readouterr().out
    labels = [f"checkpoint {i}/{len(snapshots)}" for i in range(1, len(snapshots) + 1)]
    assert [out.index(label) for label in labels] == sorted(out.index(label) for label in labels)
    # The command line reaches the same loop.
    assert main(["watch", str(cartpole_run), "--progress", "--max-steps", "3", "--fps", "0"]) == 0


def test_watch_grid_draws_k_by_k_envs() -> None:
    target = resolve_target(DOG, seed=0)
    runner = GridRunner(target, 2)
    frames = [runner.frame()]
    for _ in range(3):
        runner.tick()
        frames.append(runner.frame())
    runner.close()
    _assert_lively(frames)
    assert runner.total_steps == 3 * 4
    assert main(["watch", DOG, "--grid", "2", "--max-steps", "3", "--fps", "0"]) == 0


def test_watch_keys_pause_step_speed_reset_and_quit(display: None) -> None:
    controls = Controls(fps=8)
    for key in (pygame.K_SPACE, pygame.K_RIGHT, pygame.K_PLUS, pygame.K_r):
        _post_key(key, release=False)
    handle_watch_events(pygame.event.get(), controls)
    assert controls.paused and controls.single_step and controls.reset and controls.fps > 8
    assert not controls.quit
    controls.consume()
    _post_key(pygame.K_MINUS, release=False)
    _post_key(pygame.K_MINUS, release=False)
    handle_watch_events(pygame.event.get(), controls)
    assert controls.fps < 8 and not controls.single_step
    for quit_event in (
        pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0),
        pygame.event.Event(pygame.KEYDOWN, key=pygame.K_q, mod=0),
        pygame.event.Event(pygame.QUIT),
    ):
        controls = Controls(fps=8)
        handle_watch_events([quit_event], controls)
        assert controls.quit


def test_watch_window_quits_on_close_button_without_max_steps(display: None) -> None:
    # No --max-steps and no episode limit: only the close button can end this loop.
    pygame.event.post(pygame.event.Event(pygame.QUIT))
    viewer = Viewer([resolve_target(DOG, seed=0)], fps=0)
    assert viewer.run() == 0


def test_watch_paused_takes_one_step_per_arrow(display: None) -> None:
    viewer = Viewer([resolve_target(DOG, seed=0)], fps=0, max_steps=1)
    viewer.controls.paused = True
    _post_key(pygame.K_RIGHT)
    assert viewer.run() == 0
    assert viewer.steps == 1


def test_closing_one_window_leaves_another_working() -> None:
    frame = np.full((60, 80, 3), 128, dtype=np.uint8)
    first = ViewerWindow("first", (80, 60))
    second = ViewerWindow("second", (80, 60))
    env = gymnasium.make(CARTPOLE, render_mode="human")
    env.reset(seed=0)
    env.step(0)
    env.close()  # The env's own window closes...
    first.close()
    second.show(frame)  # ...and the viewer's still draws and pumps events.
    second.events()
    assert pygame.display.get_init()
    second.close()


# -- rl play -------------------------------------------------------------------------------------
ARROWS = {  # key -> (action, (d_row, d_col), index of the neighbour in the 5x5 wall view)
    "K_UP": (1, (-1, 0), 7),
    "K_DOWN": (2, (1, 0), 17),
    "K_LEFT": (3, (0, -1), 11),
    "K_RIGHT": (4, (0, 1), 13),
}


def _cell(obs: np.ndarray) -> tuple[int, int]:
    return round(float(obs[0]) * 10), round(float(obs[1]) * 10)  # obs[0:2]: row/10, col/10


def test_play_posted_arrow_keys_move_the_dog(display: None) -> None:
    session = PlaySession(DOG, seed=3, record=True)
    # The egocentric wall channel (obs[11:36], 5x5 around the dog) says which moves are free.
    walls = session.obs[11:36]
    free = [name for name, (_, _, index) in ARROWS.items() if walls[index] == 0]
    assert free, "the dog starts boxed in"
    name = free[0]
    action, (d_row, d_col), _ = ARROWS[name]
    row, col = _cell(session.obs)
    _post_key(getattr(pygame, name))
    session.handle(pygame.event.get())
    session.tick()
    assert _cell(session.obs) == (row + d_row, col + d_col)
    session.tick()  # No key now: the dog stays where it is.
    assert _cell(session.obs) == (row + d_row, col + d_col)
    demos = session.demos()
    assert demos["actions"].tolist() == [action, 0]
    assert demos["obs"].shape == (2, session.env.observation_space.shape[0])
    session.close()


def test_play_cli_records_demos_behaviour_cloning_reads(display: None, tmp_path: Path) -> None:
    from agents.bc import load_demos

    path = tmp_path / "demos.pt"
    _post_key(pygame.K_SPACE)  # relieve
    assert main(["play", DOG, "--max-steps", "4", "--fps", "0", "--record-demos", str(path)]) == 0
    obs, actions = load_demos(path, DOG)
    assert obs.dtype == torch.float32 and obs.shape[0] == 4
    assert actions.tolist()[0] == 5 and actions.tolist()[1:] == [0] * 3
    raw = torch.load(path, weights_only=True)
    assert raw["rewards"].shape == (4,) and raw["env_id"] == DOG


def test_play_cartpole_arrows_push_and_no_key_alternates(display: None) -> None:
    session = PlaySession(CARTPOLE, seed=0, record=True)
    _post_key(pygame.K_LEFT)
    session.handle(pygame.event.get())
    for _ in range(3):
        session.tick()
    _post_key(pygame.K_RIGHT, release=False)  # held: pushes right until released
    session.handle(pygame.event.get())
    session.tick()
    session.tick()
    actions = session.demos()["actions"].tolist()
    assert actions[0] == 0 and actions[1] != actions[2]  # no key: alternating pushes
    assert actions[3:] == [1, 1]
    session.close()


def test_play_waits_for_the_first_key_of_each_episode(display: None) -> None:
    session = PlaySession(CARTPOLE, seed=0, wait_for_key=True)
    assert session.tick() == (False, False) and session.model.step == 0
    _post_key(pygame.K_RIGHT)
    session.handle(pygame.event.get())
    ended = False
    while not ended:  # No key after the first: alternating pushes until the pole falls.
        stepped, ended = session.tick()
        assert stepped
    assert session.waiting and session.tick() == (False, False)
    session.close()


def test_play_quits_on_q(display: None) -> None:
    _post_key(pygame.K_q)
    assert main(["play", CARTPOLE, "--fps", "0"]) == 0


# -- rl record -----------------------------------------------------------------------------------
def test_record_gif_has_lively_frames(tmp_path: Path) -> None:
    import imageio.v3 as iio

    out = tmp_path / "dog.gif"
    assert main(["record", DOG, "--out", str(out), "--max-steps", "6", "--fps", "10"]) == 0
    frames = list(iio.imread(out, index=None))
    _assert_lively([np.asarray(f)[..., :3] for f in frames])


def test_record_mp4_needs_the_video_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "imageio_ffmpeg" else real(name, *a),
    )
    assert main(["record", DOG, "--out", str(tmp_path / "a.mp4"), "--max-steps", "2"]) == 2
    assert 'pip install "rl-sandbox[video]"' in capsys.readouterr().err


def test_record_mp4_when_ffmpeg_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v3 as iio

    out = tmp_path / "dog.mp4"
    assert main(["record", DOG, "--out", str(out), "--max-steps", "5", "--fps", "10"]) == 0
    assert len(list(iio.imiter(out))) >= 5


def test_capture_run_videos_logs_each_snapshot(cartpole_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from rl.cli.record_cmd import capture_run_videos

    paths = capture_run_videos(cartpole_run, max_steps=5)
    assert [p.name for p in paths] == [f"step_{s:09d}.gif" for s, _ in list_snapshots(cartpole_run)]
    accumulator = EventAccumulator(str(cartpole_run), size_guidance={"images": 0})
    accumulator.Reload()
    logged = accumulator.Images("videos/episode")
    assert sorted(e.step for e in logged) == [s for s, _ in list_snapshots(cartpole_run)]
    assert logged[0].encoded_image_string[:6] in (b"GIF87a", b"GIF89a")


# -- rl plot -------------------------------------------------------------------------------------
def _fake_run(root: Path, scheme: str, seed: int, slope: float) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    run = root / f"sandbox-DogTraining-v0__ppo__{seed}__2026{scheme}"
    run.mkdir(parents=True)
    config = {"env_id": DOG, "seed": seed, "env_kwargs": {"reward_scheme": scheme}}
    (run / "config.json").write_text(json.dumps(config))
    writer = SummaryWriter(str(run))
    for i in range(20):
        writer.add_scalar("charts/episodic_return", slope * i + seed * 0.1, i * 1000 + seed)
        writer.add_scalar("charts/success_rate", min(1.0, slope * i / 10), i * 1000 + seed)
    writer.close()
    return run


def test_plot_groups_seeds_by_reward_scheme(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import imageio.v3 as iio

    from rl.cli.plot_cmd import group_runs, read_run

    runs = [
        _fake_run(tmp_path / "runs", scheme, seed, slope)
        for scheme, slope in (("treats", 0.05), ("coached", 0.1))
        for seed in (1, 2)
    ]
    groups = group_runs([read_run(r) for r in runs])
    assert sorted(label for label, _ in groups) == [
        "reward_scheme=coached (2 seeds)",
        "reward_scheme=treats (2 seeds)",
    ]
    out = tmp_path / "curves.png"
    assert main(["plot", str(tmp_path / "runs"), "--out", str(out)]) == 0
    image = iio.imread(out)
    assert image.shape[0] > 200 and image.std() > 5
    assert "reward_scheme=coached (2 seeds)" in capsys.readouterr().out


def test_plot_reads_a_real_run(cartpole_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "real.png"
    assert main(["plot", str(cartpole_run), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000


# -- HUD words and errors ------------------------------------------------------------------------
def test_every_hud_string_exists_in_english_and_spanish() -> None:
    assert set(STRINGS["en"]) == set(STRINGS["es"])
    space = gymnasium.spaces.Discrete(6)
    assert action_names(DOG, space, "en")[5] == "relieve"
    assert action_names(DOG, space, "es")[5] == "hacer pis"
    assert action_names("Acrobot-v1", gymnasium.spaces.Discrete(3), "en") == [
        "action 0",
        "action 1",
        "action 2",
    ]


@pytest.mark.parametrize(
    ("info", "reward", "expected"),
    [
        ({"relief_outdoors": True}, 1.0, "treat!"),
        ({"relief_outdoors": True}, 0.0, "no treat"),
        ({"relief_indoors": True}, -1.0, "scolded"),
        ({"accident": True, "on_sofa": True}, -1.1, "accident on the sofa"),
        ({"on_sofa": True}, -0.1, "sofa"),
    ],
)
def test_dog_events_are_told_with_their_reward(info: dict, reward: float, expected: str) -> None:
    event = describe_step(DOG, info, reward, terminated=False, truncated=False, lang="en")
    assert event is not None and expected in event.text


def test_spanish_hud_differs_from_english() -> None:
    scene = np.full((200, 200, 3), 90, dtype=np.uint8)
    english = compose_frame(scene, HudModel(title="Dog", lang="en", keys=[("q", "quit")]))
    spanish = compose_frame(scene, HudModel(title="Dog", lang="es", keys=[("q", "salir")]))
    assert english.shape == spanish.shape and not np.array_equal(english, spanish)


def test_hud_survives_a_gymnasium_env_quitting_pygame() -> None:
    scene = np.full((200, 200, 3), 90, dtype=np.uint8)
    before = compose_frame(scene, HudModel(title="Dog"))
    env = gymnasium.make("CartPole-v1", render_mode="rgb_array")
    env.reset(seed=0)
    env.render()
    env.close()  # Gymnasium's classic-control close() calls pygame.quit().
    assert np.array_equal(compose_frame(scene, HudModel(title="Dog")), before)


def test_random_policy_explains_uniform_probabilities() -> None:
    policy = RandomPolicy(gymnasium.spaces.Discrete(4), seed=0)
    view = policy.explain(torch.zeros(3, 5))
    assert torch.allclose(view.probs, torch.full((3, 4), 0.25))
    assert torch.isnan(view.value).all()
    assert policy.act(torch.zeros(3, 5)).shape == (3,)


@pytest.mark.parametrize(
    "argv",
    [
        ["watch", "no/such-target", "--max-steps", "1"],
        ["watch", DOG, "--progress", "--max-steps", "1"],
        ["watch", "CartPole-v1", "--grid", "2", "--max-steps", "1"],
        ["watch", DOG, "--max-steps", "0"],
        ["record", DOG, "--out", "x.avi"],
        ["play", "no/such-env", "--max-steps", "1"],
        ["plot", ".", "--out", "x.jpg"],
    ],
)
def test_user_errors_exit_2_with_one_line(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rl {argv[0]}: error:") and "\n" not in err


def test_resolve_target_rejects_a_folder_without_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CLIError, match="no checkpoint"):
        resolve_target(str(tmp_path))
