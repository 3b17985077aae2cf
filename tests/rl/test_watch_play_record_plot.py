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
import sys
import time
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

import envs  # noqa: F401  (registers the sandbox/ env ids)
from envs import dog_drawing
from rl.cli import CLIError, main
from rl.cli.hud import (
    MAX_SIZE,
    PANEL_WIDTH,
    STRINGS,
    Controls,
    HudModel,
    ViewerWindow,
    action_names,
    canvas_size,
    compose_frame,
    describe_step,
    display_problem,
    draw_panel,
    fit_size,
    format_number,
    format_steps,
    handle_watch_events,
    tr,
    watch_keys,
)
from rl.cli.play_cmd import PlaySession
from rl.cli.targets import RandomPolicy, Target, progress_targets, resolve_target
from rl.cli.watch_cmd import EpisodeRunner, GridRunner, Viewer, checkpoint_label, policy_title
from rl.runs import list_snapshots

pygame = pytest.importorskip("pygame")

DOG = "sandbox/DogTraining-v0"
CARTPOLE = "sandbox/CartPole-v1"


def _tiny_run(root: Path, env_id: str, name: str, total_timesteps: int = 512) -> Path:
    from agents import ppo

    cfg = ppo.default_config(
        env_id,
        total_timesteps=total_timesteps,
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


def test_checkpoint_labels_are_shares_of_the_whole_iterations_trained(tmp_path: Path) -> None:
    """500 steps asked in iterations of 128 train 384: the last checkpoint is 100 %, not 77 %."""
    run = _tiny_run(tmp_path, CARTPOLE, "uneven", total_timesteps=500)
    targets = progress_targets(str(run))
    assert [t.global_step for t in targets][-1] == 384
    assert targets[-1].percent == 100 and targets[0].percent == 0
    assert not targets[-1].solved_early


def test_a_run_that_stopped_at_its_target_ends_on_a_checkpoint_that_says_so() -> None:
    """Its last checkpoint says training stopped there, solved: not a plain "29 % of training"."""
    done = Target(CARTPOLE, global_step=29, total_timesteps=100, solved_early=True)
    assert checkpoint_label(done, 4, 4, "en") == (
        "checkpoint 4/4: solved early, at 29 % of training"
    )
    assert "resuelto antes" in checkpoint_label(done, 4, 4, "es")
    middle = Target(CARTPOLE, global_step=10, total_timesteps=100)
    assert checkpoint_label(middle, 2, 4, "en") == "checkpoint 2/4: 10 % of training"


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


@pytest.mark.parametrize("env_id", ["Acrobot-v1", "MountainCar-v0"])
def test_play_gymnasium_three_action_envs_rest_on_their_middle_action(
    env_id: str, display: None
) -> None:
    """Action 0 pushes (or applies torque) left: doing nothing is action 1."""
    session = PlaySession(env_id, seed=0, record=True)
    session.tick()  # no key
    _post_key(pygame.K_RIGHT)
    session.handle(pygame.event.get())
    session.tick()
    assert session.demos()["actions"].tolist() == [1, 2]
    names = [action for _, action in session.model.keys]
    assert ("torque +1" if env_id == "Acrobot-v1" else "push right") in names, names
    session.close()


def test_play_p_pauses_until_p_or_an_action_key(display: None) -> None:
    session = PlaySession(DOG, seed=0, record=True)
    session.tick()
    _post_key(pygame.K_p)
    session.handle(pygame.event.get())
    assert session.tick() == (False, False) and session.model.step == 1  # time stands still
    _post_key(pygame.K_p)
    session.handle(pygame.event.get())
    assert session.tick()[0] and session.model.step == 2
    _post_key(pygame.K_p)
    session.handle(pygame.event.get())
    _post_key(pygame.K_RIGHT)  # an action key goes on, with its action
    session.handle(pygame.event.get())
    assert session.tick()[0] and session.demos()["actions"].tolist()[-1] == 4
    assert ("p", "pause") in session.model.keys
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
    # The last frame stays (how the episode ended, its return) until a key or the hold's end.
    steps, ret = session.model.step, session.model.episode_return
    assert session.tick() == (False, False) and "episode over" in session.status
    assert (session.model.step, session.model.episode_return) == (steps, ret)
    session.poll(now=time.monotonic() + 60)  # the hold is over: the next episode's start
    assert session.model.step == 0 and session.waiting and session.tick() == (False, False)
    assert "press an action key" in session.status
    session.close()


def test_play_a_key_skips_the_end_of_episode_hold_and_acts(display: None, capsys) -> None:
    session = PlaySession(CARTPOLE, seed=0, wait_for_key=True)
    _post_key(pygame.K_RIGHT)
    session.handle(pygame.event.get())
    ended = False
    while not ended:
        _, ended = session.tick()
    assert "episode 1: return" in capsys.readouterr().out  # the terminal keeps a record
    _post_key(pygame.K_LEFT)
    session.handle(pygame.event.get())
    assert session.tick() == (True, False) and session.model.step == 1
    assert session.model.episode == 2
    session.close()


def test_play_r_before_an_episode_starts_changes_nothing(display: None, capsys) -> None:
    """r restarts an episode under way; before the first key there is nothing to restart, and
    pressing it counted an episode that never was ("episode 3" for the first one played)."""
    session = PlaySession(CARTPOLE, seed=0, wait_for_key=True)
    for _ in range(2):
        _post_key(pygame.K_r)
        session.handle(pygame.event.get())
    assert session.model.episode == 1 and session.waiting
    _post_key(pygame.K_RIGHT)
    session.handle(pygame.event.get())
    session.tick()
    _post_key(pygame.K_r)  # under way: a new episode
    session.handle(pygame.event.get())
    assert session.model.episode == 2 and session.model.step == 0
    session.close()


def test_a_banner_lasts_its_steps_however_often_the_window_redraws() -> None:
    """`rl watch --fps 1` redraws ~30 times a step; the banner counted redraws, so it showed
    for 0.2 s of a 1 s step while a GIF (one frame a step) kept it for its 6 steps."""
    from rl.cli.hud import Event

    model = HudModel(title="Dog")
    model.record_event(Event("treat!", "good"), steps=2)
    scene = np.zeros((40, 60, 3), dtype=np.uint8)
    for _ in range(5):
        compose_frame(scene, model)
    assert model.banner is not None
    model.tick_banner()
    assert model.banner is not None
    model.tick_banner()
    assert model.banner is None


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
    assert "MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg" in capsys.readouterr().err


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
    assert action_names("Acrobot-v1", gymnasium.spaces.Discrete(3), "es")[1] == "sin par"
    # An env the HUD does not know: its actions by number.
    assert action_names("some/Env-v0", gymnasium.spaces.Discrete(3), "en") == [
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


@pytest.mark.parametrize("command", ["play", "watch", "record"])
def test_an_env_argument_typo_is_answered_with_the_arguments_it_takes(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = ["--out", str(tmp_path / "x.gif")] if command == "record" else ["--max-steps", "1"]
    assert main([command, DOG, "--set", "reward=treats", *out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rl {command}: error: --set: {DOG} takes no argument 'reward' (did ")
    assert "'reward_scheme'?); its arguments are " in err and "render_mode" not in err
    # The env these commands make is the single env: a vector class's argument is not its.
    assert main([command, CARTPOLE, "--set", "compile=true", *out]) == 2
    assert "takes no argument 'compile'; its arguments are sutton_barto_reward, max_episode" in (
        capsys.readouterr().err
    )


def test_play_of_a_run_folder_points_to_watch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["play", str(tmp_path), "--max-steps", "1"]) == 2
    assert f"to see a trained agent, rl watch {tmp_path}" in capsys.readouterr().err


def test_resolve_target_rejects_a_folder_without_checkpoints(tmp_path: Path) -> None:
    with pytest.raises(CLIError, match="no checkpoint"):
        resolve_target(str(tmp_path))


# -- the learner QA pass: windows, layout, words, seeding ------------------------------------------
@pytest.mark.parametrize(
    ("environ", "driver", "platform", "refused"),
    [
        ({}, None, "linux", True),  # No display at all: refused before SDL starts.
        ({"DISPLAY": ":0"}, "x11", "linux", False),
        ({"DISPLAY": ":55"}, "offscreen", "linux", True),  # SDL fell back silently.
        ({}, "offscreen", "darwin", True),
        ({}, "cocoa", "darwin", False),
        ({"SDL_VIDEODRIVER": "dummy"}, "dummy", "linux", False),  # Asked for: tests, CI.
        ({"SDL_VIDEODRIVER": "offscreen"}, "offscreen", "linux", False),
    ],
)
def test_display_problem_refuses_only_a_silent_fallback(
    environ: dict, driver: str | None, platform: str, refused: bool
) -> None:
    assert (display_problem(environ, driver, platform) is not None) == refused


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY is X11/Wayland's")
def test_watch_and_play_without_a_display_exit_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    for argv in (["play", DOG], ["watch", DOG]):
        assert main(argv) == 2  # Before: no window, and a loop only Ctrl-C could end.
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"rl {argv[0]}: error: no display to open a window on")
        assert "DISPLAY" in err and "\n" not in err
    assert main(["watch", DOG]) == 2 and "rl record" in capsys.readouterr().err


def test_arrow_on_an_episodes_final_frame_starts_the_next_in_one_press(display: None) -> None:
    viewer = Viewer([resolve_target(DOG, seed=0)], fps=8)  # fps 8: the final frame is held.
    runner = viewer._runner(0, viewer.targets[0])
    try:
        while not runner.ended:
            runner.tick()
        assert runner.hold_ticks > 1
        viewer.controls.paused = True
        episode = runner.model.episode
        _post_key(pygame.K_RIGHT)
        assert viewer.frame(runner, None) is None
        assert (runner.model.episode, runner.model.step) == (episode + 1, 0)
        _post_key(pygame.K_RIGHT)
        viewer.frame(runner, None)
        assert runner.model.step == 1
        viewer.frame(runner, None)  # No key: nothing moves while paused.
        assert runner.model.step == 1
        while not runner.ended:
            runner.tick()
        _post_key(pygame.K_RIGHT)  # The last episode asked for: → moves on to what follows.
        assert viewer.frame(runner, runner.episodes_finished) is True
    finally:
        viewer.window.close()
        runner.close()


def _panel_layout(model: HudModel) -> tuple:
    surface = pygame.Surface((PANEL_WIDTH, 680))
    return tuple(draw_panel(surface, (0, 0, PANEL_WIDTH, 680), model).items())


@pytest.mark.parametrize("lang", ["en", "es"])
def test_panel_layout_holds_still_through_episodes_and_their_final_frames(
    dog_run: Path, lang: str
) -> None:
    target = resolve_target(str(dog_run))
    subtitle = ["checkpoint 3/3", tr("linger", lang), *policy_title(target, lang)]
    runner = EpisodeRunner(
        target, lang=lang, seed=1, subtitle=subtitle, keys=watch_keys(lang, progress=True)
    )
    layouts = {_panel_layout(runner.model)}  # Step 0: no events or rewards yet.
    while runner.episodes_finished < 2:
        runner.tick()
        layouts.add(_panel_layout(runner.model))
        if runner.ended:  # The final frame keeps the last action's odds, and says so.
            assert runner.model.readout is not None and runner.model.readout.probs is not None
            assert runner.model.readout_note == tr("note_final", lang)
    runner.close()
    assert len(layouts) == 1, layouts
    assert "keys" in dict(layouts.pop()), "the key help was pushed off the panel"


def test_a_new_episode_does_not_show_the_last_ones_banner(dog_run: Path) -> None:
    runner = EpisodeRunner(resolve_target(str(dog_run)), lang="en", seed=1)
    while runner.model.banner is None:
        runner.tick()
    runner.restart()  # the r key
    assert runner.model.banner is None and runner.model.step == 0
    assert runner.model.events  # the log keeps it, tagged with its episode
    runner.close()


def test_a_full_panel_still_says_how_to_quit(dog_run: Path) -> None:
    """The last checkpoint of ``--progress`` (the screen that stays until you quit) has one
    subtitle line more: the keys then shrink to one line, the way out first."""
    target = resolve_target(str(dog_run))
    lines = ["checkpoint 11/11: 100 % of training", tr("linger", "en"), "reward_scheme = coached"]
    runner = EpisodeRunner(
        target, lang="en", seed=1, subtitle=[*lines, *policy_title(target, "en")],
        keys=watch_keys("en"),
    )  # fmt: skip
    runner.tick()
    surface = pygame.Surface((PANEL_WIDTH, 680))
    layout = draw_panel(surface, (0, 0, PANEL_WIDTH, 680), runner.model)
    runner.close()
    assert layout["keys"] > layout["end"]  # drawn, below everything else
    assert layout["keys"] == 680 - 50  # as one line above the status line


def _house() -> list[list[int]]:
    env = gymnasium.make(DOG, render_mode="rgb_array")
    env.reset(seed=0)
    tiles = env.unwrapped.core.houses.tiles[0].tolist()
    env.close()
    return tiles


def _dog_scene(row: int, col: int, facing_left: bool, **changes: object) -> dog_drawing.Scene:
    values = dict(
        tiles=_house(),
        row=row,
        col=col,
        bladder=0.6,
        relief_mark=0.5,
        facing_left=facing_left,
        steps=9,
        episode_return=1.31,
        event=dog_drawing.EVENT_NONE,
        reward=0.0,
        scheme="coached",
    )
    values.update(changes)
    return dog_drawing.Scene(**values)


def _sprite_pixels(frame: np.ndarray) -> list[int]:
    house = frame[dog_drawing.HUD :]
    colours = ("fur", "fur_dark", "black")  # Colours only the dog is drawn in.
    return [int((house == dog_drawing._COLOURS[c]).all(axis=-1).sum()) for c in colours]


@pytest.mark.parametrize(
    ("row", "col", "facing_left"),
    [(4, 10, False), (10, 10, False), (0, 10, False), (4, 0, True), (2, 9, True)],
)
def test_the_whole_dog_is_drawn_at_the_edges_of_the_house(
    row: int, col: int, facing_left: bool
) -> None:
    # The same sprite in the middle of the house, where nothing can cut it.
    whole = _sprite_pixels(dog_drawing.draw_frame(_dog_scene(5, 5, facing_left)))
    assert min(whole) > 10
    at_edge = dog_drawing.draw_frame(_dog_scene(row, col, facing_left))
    assert _sprite_pixels(at_edge) == whole, "part of the dog is past the edge"


def test_spanish_reaches_the_scene_the_bubble_and_the_numbers() -> None:
    assert set(dog_drawing.WORDS["en"]) == set(dog_drawing.WORDS["es"])
    scene = _dog_scene(4, 10, False, event=dog_drawing.EVENT_RELIEF_OUTDOORS, reward=0.99)
    english = dog_drawing.draw_frame(scene)
    with dog_drawing.language("es"):
        spanish = dog_drawing.draw_frame(scene)
    strip = dog_drawing.HUD
    assert not np.array_equal(english[:strip], spanish[:strip])  # "Paso", "Retorno", "Vejiga"
    assert not np.array_equal(english[strip:], spanish[strip:])  # "¡Buen perro!"
    assert np.array_equal(dog_drawing.draw_frame(scene), english)  # The block restores English.
    with pytest.raises(ValueError, match="unknown language"), dog_drawing.language("fr"):
        pass
    # The watch window draws the env's scene in the HUD's language.
    target = resolve_target(DOG, seed=0)
    scenes = {lang: EpisodeRunner(target, lang=lang, seed=0).scene() for lang in ("en", "es")}
    assert not np.array_equal(scenes["en"][:strip], scenes["es"][:strip])
    assert format_steps(274432, "es") == "274 432" and format_steps(274432, "en") == "274,432"
    label = tr("checkpoint", "es", index=2, count=3, percent="11 %")
    assert "checkpoint" not in label and "2/3" in label


def test_numbers_never_read_negative_zero() -> None:
    assert format_number(-1e-17) == "+0.00" and format_number(-0.004) == "+0.00"
    assert format_number(-0.0, signed=False) == "0.00"
    assert format_number(-0.01) == "−0.01"
    assert format_number(float("nan")) == "—"


@pytest.mark.parametrize(("env_id", "k"), [(DOG, 1), (DOG, 3), (DOG, 5), (CARTPOLE, 3)])
def test_grid_fits_the_screen_and_explains_its_borders(env_id: str, k: int) -> None:
    runner = GridRunner(resolve_target(env_id, seed=0), k)
    frame = runner.frame()
    runner.close()
    assert frame.shape[0] <= MAX_SIZE[1] and frame.shape[1] <= MAX_SIZE[0]
    legend = " ".join(text for _, text in runner.model.legend)
    assert "green border" in legend and "red border" in legend


def test_window_sizes_fit_a_1280_by_720_screen(display: None) -> None:
    assert MAX_SIZE[0] <= 1280 and MAX_SIZE[1] <= 720
    for scene in ((600, 400), (528, 612), (500, 500), (1600, 300), (300, 1600)):
        width, height = canvas_size(scene)
        assert width <= MAX_SIZE[0] and height <= MAX_SIZE[1], scene
    session = PlaySession(CARTPOLE, seed=0)
    frame = session.frame()
    assert frame.shape[1] <= MAX_SIZE[0] and frame.shape[0] <= MAX_SIZE[1]
    # No key in CartPole alternates the pushes, and the key help says so.
    assert any("alternate" in text for _, text in session.model.keys)
    session.close()
    # A smaller screen gets the frame scaled down, not cut.
    assert fit_size((1264, 680), (1024, 768)) <= (1024 - 16, 768 - 64)
    assert fit_size((888, 680), (1280, 1024)) == (888, 680)
    assert fit_size((888, 680), None) == (888, 680)


def test_bladder_tag_sits_clear_of_its_threshold_line() -> None:
    bar = pygame.Rect(86, 48, 428, 22)
    for mark in range(bar.left + 2, bar.right - 2, 7):
        tag = dog_drawing.marker_tag_rect(mark, (40, 13), bar)
        assert tag.right < mark - 1 or tag.left > mark + 1, mark  # Not over the 2 px line.
        assert bar.contains(tag), mark


def test_the_panel_says_how_the_bold_action_was_chosen() -> None:
    target = resolve_target(DOG, seed=0)
    sampled = EpisodeRunner(target, seed=0)
    greedy = EpisodeRunner(target, seed=0, deterministic=True)
    assert "random" in sampled.model.readout_note and "--greedy" in sampled.model.readout_note
    assert "most likely" in greedy.model.readout_note
    sampled.close()
    greedy.close()
    # A continuous action: the mean ± std, and the action drawn from it, by name.
    pendulum = EpisodeRunner(resolve_target("sandbox/Pendulum-v1", seed=0), seed=0)
    assert pendulum.model.readout.taken == pendulum.action.reshape(-1).tolist()
    assert "mean ± std" in pendulum.model.readout_note and "next" in pendulum.model.readout_note
    pendulum.close()


@pytest.mark.parametrize(
    ("info", "action", "expected"),
    [
        ({}, 5, "tried to relieve"),  # relieve, but nothing happened: bladder below the mark.
        ({"relief_outdoors": True}, 5, "relieved in the garden"),
        ({"on_sofa": True}, 5, "sofa"),
        ({}, 4, None),
        ({}, None, None),
    ],
)
def test_a_relieve_that_does_nothing_is_told(info: dict, action: int, expected: str) -> None:
    event = describe_step(DOG, info, 0.0, False, False, "en", action)
    if expected is None:
        assert event is None
    else:
        assert event is not None and expected in event.text


def test_progress_keeps_replaying_the_last_checkpoint(cartpole_run: Path) -> None:
    targets = progress_targets(str(cartpole_run), env_kwargs={"max_episode_steps": 4})
    viewer = Viewer(targets, fps=0, episodes=1, progress=True, linger=True, max_steps=40)
    assert viewer.run() == 0
    finished = [runner.episodes_finished for runner in viewer.runners]
    assert finished[:-1] == [1] * (len(targets) - 1)
    assert finished[-1] >= 3  # It went on past one episode, until --max-steps here.


def test_n_on_the_last_checkpoint_keeps_the_window(cartpole_run: Path) -> None:
    targets = progress_targets(str(cartpole_run), env_kwargs={"max_episode_steps": 4})[-2:]

    class PressingN(Viewer):  # n before every frame
        def frame(self, runner, episodes):  # type: ignore[no-untyped-def]
            self.controls.next_checkpoint = True
            return super().frame(runner, episodes)

    viewer = PressingN(targets, fps=0, episodes=1, progress=True, linger=True, max_steps=40)
    assert viewer.run() == 0
    assert len(viewer.runners) == 2
    assert viewer.steps >= 40  # the last checkpoint played on until --max-steps, not closed by n


@pytest.mark.parametrize("grid", ["0", "11"])
def test_grid_sizes_outside_one_screen_are_refused(grid: str, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["watch", "sandbox/CartPole-v1", "--grid", grid, "--max-steps", "1"]) == 2
    assert "--grid" in capsys.readouterr().err


def test_watch_on_another_env_leaves_the_runs_env_arguments(dog_run: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["watch", str(dog_run), "--env", "sandbox/CartPole-v1", "--max-steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "does not match the checkpoint's spaces" in err and "reward_scheme" not in err


def _sampled_actions(target: object, global_seed: int, seed: int = 7) -> list[int]:
    torch.manual_seed(global_seed)  # Whatever the global RNG holds...
    runner = EpisodeRunner(target, seed=seed)
    actions = []
    while runner.episodes_finished < 2:
        if not runner.ended:
            actions.append(runner.action)
        runner.tick()
    runner.close()
    return actions


def test_sampled_episodes_follow_the_seed_alone(dog_run: Path, tmp_path: Path) -> None:
    import imageio.v3 as iio

    target = resolve_target(str(dog_run))
    first = _sampled_actions(target, global_seed=1)
    assert _sampled_actions(target, global_seed=2) == first  # ...the episodes are the same.
    assert _sampled_actions(target, global_seed=1, seed=8) != first
    # So rl record writes the same episodes at any --scale.
    counts = []
    for i, scale in enumerate(("0.25", "0.4")):
        torch.manual_seed(i)
        out = tmp_path / f"dog_{i}.gif"
        argv = ["record", str(dog_run), "--episodes", "2", "--scale", scale, "--out", str(out)]
        assert main(argv) == 0
        counts.append(len(list(iio.imread(out, index=None))))
    assert counts[0] == counts[1]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["record", "sandbox/CartPole-v1", "--out", "{afile}/x.gif"], "cannot write the video"),
        (["plot", "{run}", "--out", "{afile}/x.png"], "cannot write the plot"),
        (["play", "sandbox/CartPole-v1", "--record-demos", "{afile}/d.pt"], "cannot write"),
        (["play", "sandbox/CartPole-v1", "--record-demos", "{demos}"], "exists: give a new file"),
    ],
)
def test_an_output_that_cannot_be_written_is_said_before_the_work(
    argv: list[str], message: str, dog_run: Path, tmp_path: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "afile").write_text("")  # a file where a folder should be
    (tmp_path / "demos.pt").write_bytes(b"a session recorded earlier")
    paths = {"afile": tmp_path / "afile", "run": dog_run, "demos": tmp_path / "demos.pt"}
    assert main([word.format(**paths) for word in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "demos.pt").read_bytes() == b"a session recorded earlier"


def test_gif_frame_times_keep_the_asked_frame_rate() -> None:
    """A GIF holds whole centiseconds: 30 fps as 30 ms frames would play 11 % fast."""
    from rl.cli.record_cmd import gif_delays

    delays = gif_delays([1000 / 30] * 30)
    assert set(delays) == {30, 40} and sum(delays) == 1000
    assert sum(gif_delays([125.0] * 8)) == 1000  # 8 fps
    assert min(gif_delays([1000 / 60] * 60)) == 20  # browsers slow down shorter frames


def test_cartpole_gauges_are_signed_with_zero_in_the_middle() -> None:
    """A cart at -0.06 is near the middle, not "at the left edge" of a magnitude bar."""
    from rl.cli.hud import env_gauges

    angle, position = env_gauges(CARTPOLE, np.array([-1.2, 0.0, 0.1, 0.0]), None, "en")
    assert angle.signed and position.signed
    assert position.fraction == pytest.approx(-0.5) and angle.fraction == pytest.approx(
        0.1 / 0.2095
    )
    assert position.text == "−1.20" and angle.text.startswith("+5.7")


def test_record_refuses_a_gif_faster_than_gifs_play(tmp_path: Path, capsys) -> None:
    assert main(["record", CARTPOLE, "--out", str(tmp_path / "x.gif"), "--fps", "60"]) == 2
    assert "a GIF plays at most 50 frames per second" in capsys.readouterr().err


def test_play_demos_keep_an_episode_left_with_r_apart_from_the_next(display: None) -> None:
    session = PlaySession(CARTPOLE, seed=0, record=True)
    session.tick()
    session.tick()
    _post_key(pygame.K_r)
    session.handle(pygame.event.get())
    session.tick()
    assert session.demos()["episode_ids"].tolist() == [0, 0, 1]
    session.close()


def test_watch_ends_with_the_episodes_it_showed(display: None, capsys) -> None:
    viewer = Viewer([resolve_target(CARTPOLE, seed=0)], fps=0, episodes=2)
    assert viewer.run() == 0
    lines = capsys.readouterr().out.splitlines()
    returns = [float(line.split("return ")[1].split()[0]) for line in lines if "episode " in line]
    assert len(returns) == 2
    assert lines[-1] == f"2 episode(s) watched, mean return {sum(returns) / 2:+.2f}"


def test_every_languages_banners_fit_the_dogs_scene_whole() -> None:
    """Spanish's 'quiso hacer pis: vejiga a menos de la mitad' was wider than the scene at the
    banner's size, and both its ends were cut off: a banner that would not fit is smaller."""
    import gymnasium

    from rl.cli.hud import BANNER_SIZE, STRINGS, banner_label, scene_height

    env = gymnasium.make("sandbox/DogTraining-v0", render_mode="rgb_array")
    env.reset(seed=0)
    h, w = env.render().shape[:2]
    env.close()
    width = round(w * scene_height((w, h)) / h)
    for words in STRINGS.values():
        for text in words.values():
            if "\n" not in text:
                assert banner_label(text, width).get_width() <= width - 56, text
    assert banner_label("treat!", width).get_height() >= BANNER_SIZE - 10  # short ones stay big


def test_a_misspelt_run_folder_is_suggested_like_a_misspelt_env_id(tmp_path: Path) -> None:
    (tmp_path / "lesson" / "coached").mkdir(parents=True)
    with pytest.raises(CLIError, match=r"did you mean '.*lesson/coached'\?"):
        resolve_target(str(tmp_path / "lesson" / "coachd"))
    with pytest.raises(CLIError, match=r"did you mean 'sandbox/DogTraining-v0'\?"):
        resolve_target("sandbox/DogTrainin-v0")
