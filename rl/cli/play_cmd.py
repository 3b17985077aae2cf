"""``rl play``: be the policy. Drive a sandbox env from the keyboard and see the rewards arrive.

The dog walks with the arrow keys and relieves itself with space (or Enter); CartPole pushes
with ← and →; Pendulum, Gymnasium's Acrobot and MountainCar apply torque or push with ← and →.
With no key pressed the env takes its no-op action (CartPole has none: its pushes alternate
left and right, which roughly cancel out). Another env with up to 10 discrete actions takes
them from the keys 0-9, and action 0 with no key pressed.
Playing needs a display; without one the command says so and exits 2. ``--record-demos FILE``
saves the human's transitions as a tensor file (read safely with
``torch.load(weights_only=True)``) for behaviour cloning.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces

from envs.dog_drawing import language as scene_language
from rl.checkpoint import DEMOS_FORMAT, DEMOS_FORMAT_VERSION, atomic_save
from rl.cli import CLIError, check_writable, seed_number, whole_number
from rl.cli.hud import (
    CARTPOLE_IDS,
    DOG_ID,
    LANGS,
    PENDULUM_IDS,
    Controls,
    HudModel,
    ViewerWindow,
    action_names,
    check_display,
    check_lang,
    compose_frame,
    describe_step,
    env_gauges,
    episode_report,
    speed_text,
    tr,
)
from rl.cli.targets import check_env_arguments, parse_env_overrides
from rl.cli.train_cmd import check_env_id, register_envs

# How long an ended episode's last frame (its reward, event and return) stays before the next
# episode's start; an action key skips it.
END_HOLD_SECONDS = 2.0


@dataclass(frozen=True)
class KeyMap:
    """How keys become actions in one env.

    Attributes:
        keys: ``(key names, action)`` pairs; a name ``"up"`` is the constant ``pygame.K_UP``.
        labels: ``(key cap label, action)`` pairs for the key help.
        noop: the action taken while no key is pressed; ``None`` alternates the first two
            actions (CartPole has no action that does nothing: alternating pushes cancel out).
        fps: steps per second by default: slow enough for a person to react.
    """

    keys: tuple[tuple[tuple[str, ...], Any], ...]
    labels: tuple[tuple[str, Any], ...]
    noop: Any
    fps: float


KEYMAPS: dict[str, KeyMap] = {
    DOG_ID: KeyMap(
        keys=(
            (("up",), 1),
            (("down",), 2),
            (("left",), 3),
            (("right",), 4),
            (("space", "return"), 5),
        ),
        labels=(("↑", 1), ("↓", 2), ("←", 3), ("→", 4), ("space / Enter", 5)),
        noop=0,
        fps=5,
    ),
    **{
        env_id: KeyMap(
            keys=((("left",), 0), (("right",), 1)),
            labels=(("←", 0), ("→", 1)),
            noop=None,
            fps=15,
        )
        for env_id in CARTPOLE_IDS
    },
    **{
        env_id: KeyMap(
            keys=((("left",), -2.0), (("right",), 2.0)),
            labels=(("←", -2.0), ("→", 2.0)),
            noop=0.0,
            fps=20,
        )
        for env_id in PENDULUM_IDS
    },
    # Gymnasium's: action 0 pushes (or applies torque) left, 1 does nothing, 2 pushes right.
    **{
        env_id: KeyMap(
            keys=((("left",), 0), (("right",), 2)),
            labels=(("←", 0), ("→", 2)),
            noop=1,
            fps=15,
        )
        for env_id in ("Acrobot-v1", "MountainCar-v0")
    },
}


def generic_keymap(action_space: spaces.Space) -> KeyMap:
    """Digits 0-9 choose a discrete action; action 0 is taken while no key is pressed."""
    if not isinstance(action_space, spaces.Discrete) or action_space.n > 10:
        raise CLIError(
            f"rl play has no keyboard layout for the action space {action_space}; it plays the "
            "sandbox envs and envs with up to 10 discrete actions (keys 0-9)"
        )
    n = int(action_space.n)
    start = int(action_space.start)
    return KeyMap(
        keys=tuple(((str(i),), start + i) for i in range(n)),
        labels=tuple((str(i), start + i) for i in range(n)),
        noop=start,
        fps=10,
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "play",
        help="control an env with the keyboard (and record demonstrations)",
        description=(
            "Play an env yourself: the dog with the arrow keys and space to relieve itself, "
            "CartPole, Pendulum, Acrobot-v1 and MountainCar-v0 with ← and →. With no key "
            "pressed the env takes its no-op action (CartPole has none: its pushes alternate "
            "left and right). Other envs with up to 10 discrete actions: keys 0-9, action 0 "
            "with no key pressed. p pauses (an action key goes on), r restarts the episode, "
            "q/Esc quits. Needs a display."
        ),
    )
    parser.add_argument("env", metavar="ENV", help="env id, e.g. sandbox/DogTraining-v0")
    parser.add_argument(
        "--max-steps", type=whole_number, default=None, help="exit after this many env steps"
    )
    parser.add_argument(
        "--record-demos",
        type=Path,
        default=None,
        metavar="FILE",
        help="save your transitions (obs, actions, rewards) to FILE (.pt) for behaviour cloning",
    )
    parser.add_argument(
        "--fps", type=float, default=None, help="env steps per second (default: per env)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env constructor argument, e.g. --set reward_scheme=treats (repeatable)",
    )
    parser.add_argument("--seed", type=seed_number, default=0, help="seed of the first episode")
    parser.add_argument("--lang", choices=LANGS, default="en", help="language of the HUD")
    parser.set_defaults(run=run)


class PlaySession:
    """One env driven by the keyboard, with its HUD and the transitions recorded.

    Key presses are taken from events, not from ``pygame.key.get_pressed()``: a tap between
    two steps still counts, and posted events (tests, scripted demos) work like real keys.

    Args:
        env_id: the env to play.
        env_kwargs: its constructor arguments.
        lang: the HUD's language.
        seed: seed of the first episode.
        record: keep every transition for :meth:`demos`.
        wait_for_key: each episode starts at the first action key, so a person can get ready
            and see how the last one ended (off for the headless ``--max-steps`` path).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: dict[str, Any] | None = None,
        *,
        lang: str = "en",
        seed: int | None = 0,
        record: bool = False,
        wait_for_key: bool = False,
    ) -> None:
        pygame = _pygame()
        register_envs()
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {})
        try:
            self.env = gymnasium.make(env_id, render_mode="rgb_array", **self.env_kwargs)
        except (TypeError, ValueError, gymnasium.error.Error) as exc:
            raise CLIError(f"cannot make {env_id} with {self.env_kwargs}: {exc}") from None
        self.keymap = KEYMAPS.get(env_id) or generic_keymap(self.env.action_space)
        self.key_to_action = {
            getattr(pygame, f"K_{name.upper()}"): action
            for names, action in self.keymap.keys
            for name in names
        }
        self.lang = lang
        self.record = record
        self.held: list[int] = []  # Keys down now, most recent last.
        self.pressed: list[int] = []  # Presses since the last step, oldest first.
        self.quit = False
        self.wait_for_key = wait_for_key
        self.waiting = wait_for_key
        self.paused = False  # p: time stands still (to read the panel); an action key goes on
        self._alternate = 0
        names = action_names(env_id, self.env.action_space, lang)
        self.model = HudModel(
            title=env_id.split("/")[-1],
            lang=lang,
            subtitle=[tr("you", lang), *_scheme_line(self.env_kwargs)],
            keys=self._key_help(names),
        )
        self.transitions: dict[str, list[Any]] = {
            key: []
            for key in ("obs", "actions", "rewards", "terminated", "truncated", "episode_ids")
        }
        self.episodes_finished = 0
        self.over_until: float | None = None  # an ended episode's last frame shows until then
        self._seed = seed
        self._reset()

    def _key_help(self, names: list[str]) -> list[tuple[str, str]]:
        discrete = isinstance(self.env.action_space, spaces.Discrete)

        def name_of(action: Any) -> str:
            if discrete:
                return names[int(action) - int(self.env.action_space.start)]
            return f"{names[0]} {action:+g}"

        space = tr("space", self.lang)
        help_ = [
            (label.replace("space", space), name_of(action)) for label, action in self.keymap.labels
        ]
        if self.keymap.noop is None:  # What current_action() does: alternate the first two.
            help_.append(("", tr("key_noop_alternate", self.lang)))
        else:
            help_.append(("", tr("key_noop", self.lang, action=name_of(self.keymap.noop))))
        help_.append(("p", tr("key_pause", self.lang)))
        help_.append(("r", tr("key_reset", self.lang)))
        help_.append(("q / Esc", tr("key_quit", self.lang)))
        return help_

    def _reset(self) -> None:
        self.obs, _ = self.env.reset(seed=self._seed)
        self._seed = None
        self.model.start_episode()
        self.model.gauges = env_gauges(self.env_id, self.obs, self.env.unwrapped, self.lang)

    def handle(self, events: list[Any]) -> None:
        """Apply window events: action keys, p (pause), r (restart), q/Esc and the close
        button (quit)."""
        pygame = _pygame()
        for event in events:
            if event.type in (pygame.QUIT, getattr(pygame, "WINDOWCLOSE", -1)):
                self.quit = True
            elif event.type == pygame.KEYDOWN:
                if event.key in (pygame.K_q, pygame.K_ESCAPE):
                    self.quit = True
                elif event.key == pygame.K_p:
                    self.paused = not self.paused
                elif event.key == pygame.K_r:
                    if not (self.waiting and self.over_until is None):  # (a fresh start: as is)
                        self._next_episode()
                elif event.key in self.key_to_action:
                    self.paused = False
                    if self.over_until is not None:  # no need to wait out the last frame
                        self._next_episode()
                    self.pressed.append(event.key)
                    self.waiting = False
                    if event.key in self.held:
                        self.held.remove(event.key)
                    self.held.append(event.key)
            elif event.type == pygame.KEYUP and event.key in self.held:
                self.held.remove(event.key)

    def _next_episode(self) -> None:
        self.model.episode += 1
        self.over_until = None
        self._reset()
        self.waiting = self.wait_for_key

    def poll(self, now: float | None = None) -> None:
        """Start the next episode once an ended one's last frame has been shown long enough."""
        now = time.monotonic() if now is None else now
        if self.over_until is not None and now >= self.over_until:
            self._next_episode()

    def current_action(self) -> tuple[Any, int]:
        """The action for the next step and its row in the key help.

        A fresh press wins, else the key pressed last and still held, else the no-op (whose
        row follows the action keys').
        """
        if self.pressed:
            action = self.key_to_action[self.pressed.pop(0)]
        elif self.held:
            action = self.key_to_action[self.held[-1]]
        elif self.keymap.noop is None:
            self._alternate ^= 1
            return self._alternate, len(self.keymap.labels)
        else:
            return self.keymap.noop, len(self.keymap.labels)
        rows = [row_action for _, row_action in self.keymap.labels]
        return action, rows.index(action)

    def tick(self) -> tuple[bool, bool]:
        """Take one env step with the keyboard's action: ``(stepped, episode ended)``.

        While waiting for the first key of an episode nothing happens: ``(False, False)``.
        """
        if self.waiting or self.paused or self.over_until is not None:
            return False, False
        self.model.tick_banner()  # (before this step's event, which then shows in full)
        action, row = self.current_action()
        self.model.highlight_key = row
        env_action = (
            np.array([action], dtype=self.env.action_space.dtype)
            if isinstance(self.env.action_space, spaces.Box)
            else action
        )
        obs = self.obs
        self.obs, reward, terminated, truncated, info = self.env.step(env_action)
        reward = float(reward)
        if self.record:
            for key, value in zip(
                self.transitions,
                # The episode's own number less one: an episode left with r is one apart.
                (obs, env_action, reward, terminated, truncated, self.model.episode - 1),
                strict=True,
            ):
                self.transitions[key].append(value)
        self.model.step += 1
        self.model.episode_return += reward
        self.model.last_reward = reward
        self.model.rewards.append(reward)
        event = describe_step(self.env_id, info, reward, terminated, truncated, self.lang, action)
        self.model.record_event(event, steps=max(2, round(self.keymap.fps)))  # about 1 s
        self.model.gauges = env_gauges(self.env_id, self.obs, self.env.unwrapped, self.lang)
        if terminated or truncated:
            self.episodes_finished += 1
            print(f"  {episode_report(self.model)}", flush=True)
            if self.wait_for_key:  # a person plays: show how it ended, then the next start
                self.over_until = time.monotonic() + END_HOLD_SECONDS
                self.waiting = True
            else:
                self._next_episode()
            return True, True
        return True, False

    @property
    def status(self) -> str | None:
        """What the status line says while nothing moves (None: the speed, as usual)."""
        if self.over_until is not None:
            return tr("episode_over", self.lang)
        return tr("press_to_start", self.lang) if self.waiting else None

    def frame(self) -> np.ndarray:
        with scene_language(self.lang):
            scene = np.asarray(self.env.render())
        return compose_frame(scene, self.model)

    @property
    def num_transitions(self) -> int:
        return len(self.transitions["actions"])

    def demos(self) -> dict[str, Any]:
        """The recorded transitions in ``agents.bc``'s demonstration format.

        Keys: ``obs`` ``(T, *obs_shape)`` float32 (the observation the action was taken in),
        ``actions`` ``(T,)`` int64 (``(T, *action_shape)`` float32 for Box actions, which
        behaviour cloning does not read), ``episode_ids`` ``(T,)`` int64, ``env_id``,
        ``env_kwargs``, ``format``, ``format_version``; and, for learners' own analyses,
        ``rewards`` ``(T,)`` float32, ``terminated``/``truncated`` ``(T,)`` bool and
        ``source`` (``"human"``).
        """
        t = self.transitions
        discrete = isinstance(self.env.action_space, spaces.Discrete)
        obs_shape = self.env.observation_space.shape
        return {
            "format": DEMOS_FORMAT,
            "format_version": DEMOS_FORMAT_VERSION,
            "obs": torch.as_tensor(np.asarray(t["obs"], dtype=np.float32).reshape(-1, *obs_shape)),
            "actions": (
                torch.as_tensor(np.asarray(t["actions"], dtype=np.int64))
                if discrete
                else torch.as_tensor(
                    np.asarray(t["actions"], dtype=np.float32).reshape(
                        -1, *self.env.action_space.shape
                    )
                )
            ),
            "rewards": torch.as_tensor(np.asarray(t["rewards"], dtype=np.float32)),
            "terminated": torch.as_tensor(np.asarray(t["terminated"], dtype=bool)),
            "truncated": torch.as_tensor(np.asarray(t["truncated"], dtype=bool)),
            "episode_ids": torch.as_tensor(np.asarray(t["episode_ids"], dtype=np.int64)),
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "source": "human",
        }

    def close(self) -> None:
        self.env.close()


def _scheme_line(env_kwargs: dict[str, Any]) -> list[str]:
    scheme = env_kwargs.get("reward_scheme")
    return [f"reward_scheme = {scheme}"] if isinstance(scheme, str) else []


def _pygame() -> Any:
    from envs.rendering import import_pygame

    return import_pygame()


def run(args: argparse.Namespace) -> int:
    lang = check_lang(args.lang)
    if args.max_steps is not None and args.max_steps < 1:
        raise CLIError(f"--max-steps must be >= 1, got {args.max_steps}")
    if args.fps is not None and (args.fps < 0 or not math.isfinite(args.fps)):
        raise CLIError(f"--fps must be >= 0 (0: as fast as possible), got {args.fps}")
    if args.record_demos is not None:
        if args.record_demos.suffix != ".pt":
            raise CLIError(f"--record-demos writes a .pt file, got {args.record_demos}")
        if args.record_demos.exists():
            raise CLIError(
                f"--record-demos {args.record_demos} exists: give a new file name (rl supervised "
                "bc --demos takes several files), or delete it first"
            )
        check_writable(args.record_demos, "--record-demos", make_folder=True)
    register_envs()
    try:
        check_env_id(args.env)
    except CLIError:
        if Path(args.env).exists():  # a run folder or checkpoint: watched, not played
            raise CLIError(
                f"rl play plays an env by its id (e.g. sandbox/DogTraining-v0); {args.env} is "
                f"a file or folder: to see a trained agent, rl watch {args.env}"
            ) from None
        raise
    env_kwargs = parse_env_overrides(args.set)
    check_env_arguments(args.env, env_kwargs)  # before the display is looked at
    check_display("rl play")
    session = PlaySession(
        args.env,
        env_kwargs,
        lang=lang,
        seed=args.seed,
        record=args.record_demos is not None,
        wait_for_key=args.max_steps is None,
    )
    fps = args.fps if args.fps is not None else session.keymap.fps
    controls = Controls(fps=fps)
    speed = speed_text(fps, lang)
    window: ViewerWindow | None = None
    steps = 0
    try:
        while not session.quit:
            session.poll()
            session.model.status = session.status or speed
            session.model.attention = session.waiting
            session.model.paused = session.paused
            frame = session.frame()
            if window is None:
                size = (frame.shape[1], frame.shape[0])
                window = ViewerWindow(f"rl play — {args.env}", size)
            window.show(frame)
            session.handle(window.events())
            if session.quit:
                break
            for _ in range(window.steps_due(controls)):
                stepped, _ = session.tick()
                steps += stepped
                if args.max_steps is not None and steps >= args.max_steps:
                    session.quit = True
                    break
    finally:
        if window is not None:
            window.close()
        session.close()
        if args.record_demos is not None:
            _write(args.record_demos, session)
    return 0


def _write(path: Path, session: PlaySession) -> None:
    if session.num_transitions == 0:
        print(f"rl play: no steps taken, {path} not written", file=sys.stderr)
        return
    atomic_save(session.demos(), path)  # a reader never sees half a file
    print(
        f"rl play: saved {session.num_transitions} transitions "
        f"({session.episodes_finished} finished episode"
        f"{'' if session.episodes_finished == 1 else 's'}) to {path}"
    )
