"""``rl watch``: watch a policy act in a pygame window, with a HUD that explains what it sees.

``TARGET`` is a run directory, a checkpoint or an env id (then a random policy acts: the
"before" picture). ``--progress`` plays the run's snapshots in training order so a learner sees
the dog improve, and keeps replaying the last one until the learner quits; ``--grid K`` shows
K x K envs of the vector env stepped together, as training sees them. ``--max-steps`` ends after
that many env steps: the headless path CI runs with ``SDL_VIDEODRIVER=dummy``.

Sampled actions come from the runner's own seeded stream, so ``--seed`` alone fixes what is shown
(``rl record`` writes the same episodes whatever its ``--scale``).
"""

from __future__ import annotations

import argparse
import math
from collections import deque
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator

from envs.dog_drawing import HUD as DOG_STRIP
from envs.dog_drawing import language as scene_language
from envs.rendering import import_pygame
from rl.cli import CLIError, nonempty, seed_number, whole_number
from rl.cli.hud import (
    CARTPOLE_IDS,
    DOG_ID,
    LANGS,
    MAX_SIZE,
    PANEL_WIDTH,
    TONES,
    Controls,
    HudModel,
    PolicyReadout,
    ViewerWindow,
    action_names,
    bladder_tone,
    check_display,
    check_lang,
    compose_frame,
    describe_step,
    env_gauges,
    episode_report,
    fit_scene,
    format_number,
    format_steps,
    handle_watch_events,
    render_text,
    scene_surface,
    speed_text,
    surface_pixels,
    terminal_number,
    tr,
    watch_keys,
)
from rl.cli.targets import (
    Target,
    check_env_arguments,
    is_env_id,
    parse_env_overrides,
    sampling_generator,
    targets_from_args,
)
from rl.vector import env_spec, make_vector_env

DEFAULT_FPS = 8  # steps/s when the env does not say: slow enough to follow one dog's choices.
MAX_DEFAULT_FPS = 30
MAX_GRID = 10  # tiles of a 10 x 10 grid are ~70 px on a 1280 x 720 screen: still readable


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="watch an agent (or a random policy) in a window with a HUD",
        description=(
            "Watch a policy act in a pygame window with a HUD beside the scene: step, episode, "
            "return, the last reward and its event, the env's gauges, and the policy's action "
            "probabilities and value estimate. Actions are sampled from those probabilities "
            "unless --greedy. Keys: space pause/resume, → one step while paused, +/− speed, "
            "r restart the episode, n next checkpoint (--progress), q/Esc quit. Needs a display; "
            "`rl record` writes the same picture to a GIF without one."
        ),
    )
    parser.add_argument(
        "target",
        metavar="TARGET",
        help="a run directory (runs/<name>), a checkpoint (.pt), or an env id for a random policy",
    )
    add_common_arguments(parser)
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="env steps per second (0: as fast as possible; default: the env's)",
    )
    parser.add_argument(
        "--episodes",
        type=whole_number,
        default=None,
        help="episodes to play, per checkpoint with --progress (default: until you quit; with "
        "--progress 1 per checkpoint, then the last checkpoint repeats until you quit)",
    )
    parser.add_argument(
        "--max-steps",
        type=whole_number,
        default=None,
        help="exit after this many env steps (with --grid: steps of all K x K envs at once); "
        "the headless smoke path",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="play the run's checkpoints in training order (0 %%, 10 %%, ..., 100 %%), one "
        "episode each (n skips ahead); the window stays open on the last checkpoint, replaying "
        "its episodes until you quit, unless --episodes or --max-steps ends it",
    )
    parser.add_argument(
        "--checkpoints",
        default=None,
        metavar="PCTS",
        help="with --progress, only the snapshots nearest these percentages, e.g. 0,50,100",
    )
    parser.add_argument(
        "--grid",
        type=whole_number,
        default=None,
        metavar="K",
        help=f"show K x K envs of the vector env stepped together (K <= {MAX_GRID})",
    )
    parser.set_defaults(run=run)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``rl watch`` and ``rl record`` share."""
    parser.add_argument(
        "--env",
        default=None,
        type=nonempty,
        metavar="ID",
        help="show the policy in this env instead of the one it was trained in",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="env constructor argument, e.g. --set reward_scheme=treats (repeatable)",
    )
    parser.add_argument(
        "--greedy",
        action="store_true",
        help="take the most likely action instead of sampling the policy",
    )
    parser.add_argument(
        "--seed", type=seed_number, default=0, help="seed of the env and of the sampled actions"
    )
    parser.add_argument(
        "--lang", choices=LANGS, default="en", help="language of the HUD (es: español)"
    )


def positive_int(value: int | None, flag: str) -> int | None:
    """``value`` if it is None or >= 1; a CLIError naming ``flag`` otherwise."""
    if value is not None and value < 1:
        raise CLIError(f"{flag} must be >= 1, got {value}")
    return value


# -- one env, one policy -------------------------------------------------------------------------
def policy_title(target: Target, lang: str) -> list[str]:
    """Subtitle lines saying which policy acts: ``PPO · best.pt · 299,008 steps``."""
    if target.is_random:
        return [tr("random_policy", lang)]
    parts = [(target.algo or "").upper()]
    if target.checkpoint is not None and not target.checkpoint.name.startswith("step_"):
        parts.append(target.checkpoint.name)  # Snapshots say their step below.
    if target.global_step is not None:
        parts.append(tr("at_step", lang, step=format_steps(target.global_step, lang)))
    lines = [" · ".join(parts)]
    scheme = target.env_kwargs.get("reward_scheme")
    if isinstance(scheme, str):
        lines.append(f"reward_scheme = {scheme}")
    return lines


def checkpoint_label(target: Target, index: int, count: int, lang: str) -> str:
    """ "checkpoint 3/11: 20 % of training" (or the step when the run's length is unknown); a
    run's last checkpoint, where it stopped at its target early, says so."""
    percent = target.percent
    text = (
        f"{percent:.0f} %" if percent is not None else format_steps(target.global_step or 0, lang)
    )
    key = "checkpoint_solved" if target.solved_early else "checkpoint"
    return tr(key, lang, index=index, count=count, percent=text)


def act(
    policy: Any, obs: torch.Tensor, deterministic: bool, generator: torch.Generator
) -> torch.Tensor:
    """``policy.act(obs)``, its sampling drawn from ``generator`` instead of torch's global RNG.

    Policies sample with the global generator, which nothing here seeds: two runs of the same
    command showed (and ``rl record`` wrote) different episodes. Each call seeds a forked CPU
    generator from ``generator``, so the episodes follow ``--seed`` alone and the global RNG is
    left as it was.
    """
    if deterministic:
        return policy.act(obs, deterministic=True)
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)
        return policy.act(obs, deterministic=False)


class EpisodeRunner:
    """Steps one single env with a policy and keeps a :class:`HudModel` describing it.

    The action for the state on screen is chosen as soon as the state appears, so the HUD shows
    what the policy is about to do and why (its probabilities), not what it did before. On an
    episode's final frame no action is chosen: the panel keeps the odds of the last one.

    Args:
        target: the env and policy.
        lang: the HUD's language.
        seed: seed of the first episode (later episodes continue the env's generator) and of
            the sampled actions.
        deterministic: take the most likely action instead of sampling.
        subtitle: lines under the title (policy, checkpoint).
        keys: the key help to show.
        hold_ticks: ticks the last frame of an episode stays before the next one starts.
    """

    def __init__(
        self,
        target: Target,
        *,
        lang: str = "en",
        seed: int | None = 0,
        deterministic: bool = False,
        subtitle: list[str] | None = None,
        keys: list[tuple[str, str]] | None = None,
        hold_ticks: int = 0,
    ) -> None:
        self.target = target
        self.lang = lang
        self.deterministic = deterministic
        self.hold_ticks = hold_ticks
        try:
            self.env = gymnasium.make(target.env_id, render_mode="rgb_array", **target.env_kwargs)
        except (TypeError, ValueError, gymnasium.error.Error) as exc:
            raise CLIError(f"cannot make {target.env_id} with {target.env_kwargs}: {exc}") from None
        if "rgb_array" not in self.env.metadata.get("render_modes", []):
            self.env.close()
            raise CLIError(f"{target.env_id} cannot draw frames (it has no rgb_array render mode)")
        self.discrete = isinstance(self.env.action_space, spaces.Discrete)
        self.model = HudModel(
            title=target.env_id.split("/")[-1],
            lang=lang,
            subtitle=list(subtitle or []),
            action_names=action_names(target.env_id, self.env.action_space, lang),
            keys=list(keys or []),
        )
        self.episodes_finished = 0
        self.steps_taken = 0
        self.returns: list[float] = []
        self._holding = 0
        self._ended = False
        self._seed = seed
        self._generator = sampling_generator(seed)
        continuous = "" if self.discrete else "_continuous"
        self._note = tr(("note_greedy" if deterministic else "note_sampled") + continuous, lang)
        self._final_note = tr("note_final" + continuous, lang)
        self._value_note = tr("value_scaled", lang) if target.scaled_rewards else None
        self._reset()

    def _reset(self) -> None:
        self.obs, _ = self.env.reset(seed=self._seed)
        self._seed = None  # Later episodes continue the generator: new starts each time.
        self.model.start_episode()
        self._ended = False
        self._decide()

    def restart(self) -> None:
        """Abandon the episode and start the next one (the ``r`` key)."""
        self.model.episode += 1
        self._reset()

    def _decide(self) -> None:
        """Choose the action for ``self.obs`` and read the policy's view of it."""
        obs = torch.as_tensor(np.asarray(self.obs, dtype=np.float32)).unsqueeze(0)
        policy = self.target.policy
        with torch.no_grad():
            action = act(policy, obs, self.deterministic, self._generator)
            view = policy.explain(obs)
        action = action.detach().cpu()
        readout = PolicyReadout(value=float(view.value.reshape(-1)[0]), value_note=self._value_note)
        if self.discrete:
            self.action: Any = int(action.reshape(-1)[0])
            readout.chosen = self.action
            if view.probs is not None:
                readout.probs = view.probs[0].detach().cpu().tolist()
        else:
            self.action = action[0].numpy().astype(self.env.action_space.dtype)
            readout.taken = self.action.reshape(-1).astype(float).tolist()
            if view.mean is not None:
                readout.mean = view.mean[0].detach().cpu().reshape(-1).tolist()
                readout.std = (
                    view.std[0].detach().cpu().reshape(-1).tolist()
                    if view.std is not None
                    else None
                )
        self.model.readout = readout
        self.model.readout_note = self._note
        self.model.gauges = env_gauges(self.target.env_id, self.obs, self.env.unwrapped, self.lang)

    @property
    def ended(self) -> bool:
        """The episode on screen is over: its final frame is showing."""
        return self._ended

    def skip_hold(self) -> None:
        """Let the next :meth:`tick` start the next episode at once (→ while paused)."""
        self._holding = 0

    def tick(self) -> tuple[bool, bool]:
        """Advance one tick: an env step, or holding/starting after an episode ended.

        Returns:
            ``(stepped, ended)``: whether an env step was taken (what ``--max-steps`` counts)
            and whether it ended an episode.
        """
        self.model.tick_banner()
        if self._ended:
            if self._holding > 0:
                self._holding -= 1
            else:
                self.model.episode += 1
                self._reset()
            return False, False
        self.obs, reward, terminated, truncated, info = self.env.step(self.action)
        reward = float(reward)
        self.steps_taken += 1
        self.model.step += 1
        self.model.episode_return += reward
        self.model.last_reward = reward
        self.model.rewards.append(reward)
        event = describe_step(
            self.target.env_id, info, reward, terminated, truncated, self.lang, self.action
        )
        self.model.record_event(event, steps=6)
        if not (terminated or truncated):
            self._decide()
            return True, False
        self._ended = True
        self._holding = self.hold_ticks
        self.episodes_finished += 1
        self.returns.append(self.model.episode_return)
        # The final state keeps its gauges; no action is chosen in it, so the readout stays
        # that of the last action (the panel keeps its layout) and says so.
        self.model.gauges = env_gauges(self.target.env_id, self.obs, self.env.unwrapped, self.lang)
        self.model.readout_note = self._final_note
        return True, True

    @property
    def held(self) -> bool:
        """An episode ended and its last frame has been shown for ``hold_ticks`` ticks."""
        return self._ended and self._holding == 0

    def scene(self) -> np.ndarray:
        with scene_language(self.lang):
            return np.asarray(self.env.render())

    def frame(self) -> np.ndarray:
        """The scene with the HUD beside it, ``(H, W, 3)`` uint8."""
        return compose_frame(self.scene(), self.model)

    def close(self) -> None:
        self.env.close()


# -- K x K envs at once --------------------------------------------------------------------------
GRID_GAP = 4  # px between tiles.
TILE_LABEL = 22  # px: the tiles' return, legible whatever K.


def grid_cell(scene_size: tuple[int, int], k: int) -> tuple[int, int]:
    """``(width, height)`` of one of K x K tiles of a ``scene_size`` scene: the grid and the
    panel beside it fit :data:`rl.cli.hud.MAX_SIZE`."""
    w, h = scene_size
    max_w = (MAX_SIZE[0] - PANEL_WIDTH - GRID_GAP * (k + 1)) // k
    max_h = (MAX_SIZE[1] - GRID_GAP * (k + 1)) // k
    cell_h = max(1, min(max_h, math.floor(max_w * h / w)))
    return max(1, min(max_w, round(w * cell_h / h))), cell_h


class GridRunner:
    """K x K rows of the env's vector env, stepped together as training steps them.

    Each tile shows its return (and for the dog a bladder bar, in place of the env's own status
    bar, whose words would be a few pixels tall) and flashes green or red for a step that ends
    well or badly (for the dog: a garden relief, or a relief indoors or an accident); the
    panel's legend says so, and the HUD shows what all the envs did together.
    """

    def __init__(
        self,
        target: Target,
        k: int,
        *,
        lang: str = "en",
        seed: int = 0,
        deterministic: bool = False,
        subtitle: list[str] | None = None,
        keys: list[tuple[str, str]] | None = None,
    ) -> None:
        self.target = target
        self.k = k
        self.lang = lang
        self.deterministic = deterministic
        try:
            self.env = make_vector_env(target.env_id, k * k, "cpu", env_kwargs=target.env_kwargs)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"cannot make {k * k} envs of {target.env_id}: {exc}") from None
        if not hasattr(self.env, "render_row"):
            self.env.close()
            raise CLIError(
                f"--grid draws the sandbox's torch vector envs; {target.env_id} is not one "
                "(try sandbox/DogTraining-v0 or sandbox/CartPole-v1)"
            )
        self.obs, _ = self.env.reset(seed=seed)
        params = getattr(self.env, "params", None)  # DogParams: the threshold the env draws.
        self._relief_mark = params.relief_mark if hasattr(params, "relief_mark") else None
        n = k * k
        self.returns = torch.zeros(n, dtype=torch.float64)
        self.flash = [0] * n
        self.tone = ["neutral"] * n
        self.total_steps = 0
        self.episodes_finished = 0
        self.recent_returns: deque[float] = deque(maxlen=100)
        self.recent_success: deque[tuple[float, float]] = deque(maxlen=100)
        self._generator = sampling_generator(seed)
        self.model = HudModel(
            title=target.env_id.split("/")[-1],
            lang=lang,
            subtitle=[*(subtitle or []), tr("envs", lang, count=n)],
            keys=list(keys or []),
            legend=grid_legend(target.env_id, lang),
        )
        self._update_stats()

    def restart(self) -> None:
        self.obs, _ = self.env.reset()
        self.returns.zero_()

    def tick(self) -> tuple[bool, bool]:
        """Step every row once: ``(True, whether any episode ended)``."""
        with torch.no_grad():
            actions = act(self.target.policy, self.obs.float(), self.deterministic, self._generator)
        self.obs, reward, terminated, truncated, info = self.env.step(actions)
        self.total_steps += self.k * self.k
        self.returns += reward.double()
        good, bad = self._tones(info, reward, terminated, truncated)
        done = (terminated | truncated).tolist()
        for i, (is_good, is_bad) in enumerate(zip(good.tolist(), bad.tolist(), strict=True)):
            if is_good or is_bad:
                self.tone[i] = "good" if is_good else "bad"
                self.flash[i] = 6
            elif self.flash[i] > 0:
                self.flash[i] -= 1
        episode = info["episode"]
        for i in np.flatnonzero(done):
            self.episodes_finished += 1
            self.recent_returns.append(float(episode["r"][i]))
            if "successes" in episode:
                self.recent_success.append(
                    (float(episode["successes"][i]), float(episode["attempts"][i]))
                )
        self.returns[torch.as_tensor(done)] = 0.0
        self._update_stats()
        return True, any(done)

    def _tones(
        self,
        info: dict[str, Any],
        reward: torch.Tensor,
        terminated: torch.Tensor,
        truncated: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(good, bad)`` ``(N,)`` masks of the rows whose step deserves a flash."""
        if "relief_outdoors" in info:  # The dog: its events say it.
            good = info["relief_outdoors"] & (reward > 0)
            bad = info["relief_indoors"] | info["accident"]
            return good.cpu(), bad.cpu()
        if self.target.env_id in CARTPOLE_IDS:  # The pole fell, or it lasted the whole episode.
            return truncated.cpu(), terminated.cpu()
        bad = terminated & (reward <= 0)
        return torch.zeros_like(bad).cpu(), bad.cpu()

    def _update_stats(self) -> None:
        lang = self.lang
        mean = (
            format_number(sum(self.recent_returns) / len(self.recent_returns))
            if self.recent_returns
            else "—"
        )
        stats = [
            (tr("total_steps", lang), format_steps(self.total_steps, lang)),
            (tr("finished", lang), str(self.episodes_finished)),
            (tr("mean_return", lang), mean),
        ]
        if self.recent_success:
            successes = sum(s for s, _ in self.recent_success)
            attempts = sum(a for _, a in self.recent_success)
            stats.append((tr("success_rate", lang), f"{successes / max(attempts, 1):.0%}"))
        self.model.stats = stats

    def scene(self) -> np.ndarray:
        """The K x K rows' frames tiled, each with its return, bladder and a flash border."""
        pygame = import_pygame()
        dog = self.target.env_id == DOG_ID
        strip = DOG_STRIP if dog else 0  # The env's status bar, unreadable at tile size.
        with scene_language(self.lang):
            frames = [self.env.render_row(i) for i in range(self.k * self.k)]
        h, w = frames[0].shape[0] - strip, frames[0].shape[1]
        cell_w, cell_h = grid_cell((w, h), self.k)
        gap = GRID_GAP
        canvas = pygame.Surface((self.k * (cell_w + gap) + gap, self.k * (cell_h + gap) + gap))
        canvas.fill((20, 22, 28))
        for i, frame in enumerate(frames):
            cell = fit_scene(scene_surface(frame[strip:]), cell_h)
            x = gap + (i % self.k) * (cell_w + gap)
            y = gap + (i // self.k) * (cell_h + gap)
            canvas.blit(cell, (x, y))
            if self.flash[i] > 0:
                pygame.draw.rect(
                    canvas, TONES[self.tone[i]], (x - 2, y - 2, cell_w + 4, cell_h + 4), 4
                )
            if dog:
                self._bladder(canvas, i, (x + 6, y + 6, cell_w - 12, 10))
            label = render_text(
                format_number(float(self.returns[i])), TILE_LABEL, (255, 255, 255), True
            )
            backing = pygame.Surface(
                (label.get_width() + 8, label.get_height() + 4), pygame.SRCALPHA
            )
            backing.fill((0, 0, 0, 150))
            canvas.blit(backing, (x + 4, y + cell_h - backing.get_height() - 4))
            canvas.blit(label, (x + 8, y + cell_h - backing.get_height() - 2))
        return surface_pixels(canvas)

    def _bladder(self, canvas: Any, i: int, rect: tuple[int, int, int, int]) -> None:
        """Row ``i``'s bladder (``obs[2]``) as a bar, the relief threshold as a tick."""
        pygame = import_pygame()
        level = float(self.obs[i, 2].clamp(0, 1))
        threshold = self._relief_mark
        tone = bladder_tone(level, can_relieve=bool(self.obs[i, 3] > 0.5))
        x, y, w, h = rect
        pygame.draw.rect(canvas, (20, 22, 28), (x - 2, y - 2, w + 4, h + 4), border_radius=4)
        pygame.draw.rect(canvas, (70, 74, 90), rect, border_radius=3)
        if level > 0:
            pygame.draw.rect(canvas, TONES[tone], (x, y, max(4, round(w * level)), h), 0, 3)
        if threshold is not None:
            mark = x + round(w * threshold)
            pygame.draw.line(canvas, (255, 255, 255), (mark, y - 2), (mark, y + h + 1), 2)

    def frame(self) -> np.ndarray:
        return compose_frame(self.scene(), self.model)

    def close(self) -> None:
        self.env.close()


def grid_legend(env_id: str, lang: str) -> list[tuple[str, str]]:
    """The grid's legend: what a tile shows and what its coloured border means."""
    if env_id == DOG_ID:
        lines = [
            ("", "legend_tiles_dog"),
            ("good", "legend_dog_good"),
            ("bad", "legend_dog_bad"),
        ]
    elif env_id in CARTPOLE_IDS:
        lines = [("", "legend_tiles"), ("good", "legend_pole_good"), ("bad", "legend_pole_bad")]
    else:
        lines = [("", "legend_tiles"), ("bad", "legend_bad")]
    return [(tone, tr(key, lang)) for tone, key in lines] + [("", tr("legend_new", lang))]


# -- the command ---------------------------------------------------------------------------------
def default_fps(env_id: str) -> float:
    """The env's own ``render_fps``, capped so a learner can follow it."""
    fps = None
    entry = env_spec(env_id).entry_point
    if entry is not None:
        creator = load_env_creator(entry) if isinstance(entry, str) else entry
        fps = getattr(creator, "metadata", {}).get("render_fps")
    return float(min(fps or DEFAULT_FPS, MAX_DEFAULT_FPS))


def run(args: argparse.Namespace) -> int:
    lang = check_lang(args.lang)
    positive_int(args.episodes, "--episodes")
    positive_int(args.max_steps, "--max-steps")
    positive_int(args.grid, "--grid")
    if args.grid is not None and args.grid > MAX_GRID:
        raise CLIError(
            f"--grid draws K x K envs, at most {MAX_GRID} x {MAX_GRID} ({MAX_GRID**2} envs) "
            f"on one screen; got {args.grid}"
        )
    if args.fps is not None and (args.fps < 0 or not math.isfinite(args.fps)):
        raise CLIError(f"--fps must be >= 0 (0: as fast as possible), got {args.fps}")
    if args.progress and args.grid:
        raise CLIError("--progress and --grid do not combine; pick one")
    if args.checkpoints is not None and not args.progress:
        raise CLIError("--checkpoints picks snapshots for --progress; add --progress")
    env_kwargs = parse_env_overrides(args.set)  # a bad --set is told before the display is
    if env_kwargs and not Path(args.target).exists() and is_env_id(args.target):
        check_env_arguments(args.target, env_kwargs)
    check_display("rl watch")  # Before loading anything: no window, nothing to watch.
    targets = targets_from_args(args)
    fps = args.fps if args.fps is not None else default_fps(targets[0].env_id)
    viewer = Viewer(
        targets,
        lang=lang,
        fps=fps,
        seed=args.seed,
        deterministic=args.greedy,
        episodes=args.episodes or (1 if args.progress else None),
        max_steps=args.max_steps,
        grid=args.grid,
        progress=args.progress,
        # The "after" picture stays up: the last checkpoint replays until the learner quits.
        linger=args.progress and args.episodes is None,
    )
    return viewer.run()


class Viewer:
    """The window loop of ``rl watch``: keys, pacing, and the runner of each target in turn.

    Args:
        targets: what to show, in order.
        lang: the HUD's language.
        fps: env steps per second (0: as fast as possible).
        seed: seed of the envs and of sampled actions.
        deterministic: take the most likely actions.
        episodes: episodes per target (None: until the learner quits).
        max_steps: stop after this many env steps in all.
        grid: show K x K envs at once.
        progress: the targets are a run's snapshots (``n`` skips to the next one).
        linger: the last target plays on, past ``episodes``, until the learner quits.
    """

    def __init__(
        self,
        targets: list[Target],
        *,
        lang: str = "en",
        fps: float = DEFAULT_FPS,
        seed: int = 0,
        deterministic: bool = False,
        episodes: int | None = None,
        max_steps: int | None = None,
        grid: int | None = None,
        progress: bool = False,
        linger: bool = False,
    ) -> None:
        self.targets = targets
        self.lang = lang
        self.controls = Controls(fps=fps)
        self.seed = seed
        self.deterministic = deterministic
        self.episodes = episodes
        self.max_steps = max_steps
        self.grid = grid
        self.progress = progress
        self.linger = linger
        self.steps = 0
        self.window: ViewerWindow | None = None
        self.visited: list[Target] = []
        self.runners: list[EpisodeRunner | GridRunner] = []

    def _runner(self, index: int, target: Target) -> EpisodeRunner | GridRunner:
        subtitle = policy_title(target, self.lang)
        if self.progress:
            subtitle.insert(0, checkpoint_label(target, index + 1, len(self.targets), self.lang))
            if self.linger and index == len(self.targets) - 1:
                subtitle.insert(1, tr("linger", self.lang))
        # n (next checkpoint) until the last one, where it has nowhere to go.
        keys = watch_keys(self.lang, progress=self.progress and index < len(self.targets) - 1)
        if self.grid:
            return GridRunner(
                target,
                self.grid,
                lang=self.lang,
                seed=self.seed,
                deterministic=self.deterministic,
                subtitle=subtitle,
                keys=keys,
            )
        # Hold an episode's last frame ~0.8 s so the learner sees how it ended.
        hold = round(0.8 * self.controls.fps) if self.controls.fps > 0 else 0
        return EpisodeRunner(
            target,
            lang=self.lang,
            seed=self.seed + index,
            deterministic=self.deterministic,
            subtitle=subtitle,
            keys=keys,
            hold_ticks=hold,
        )

    def _status(self) -> str:
        return speed_text(self.controls.fps, self.lang)

    def run(self) -> int:
        """Play every target; 0 when done or quit."""
        # Envs are closed after the window: Gymnasium's classic-control envs call pygame.quit()
        # in close(), which would take the window down mid-way through --progress.
        self.runners = []
        try:
            for index, target in enumerate(self.targets):
                self.runners.append(self._runner(index, target))
                self.visited.append(target)
                if self.progress:
                    print(
                        checkpoint_label(target, index + 1, len(self.targets), self.lang),
                        flush=True,
                    )
                last = index == len(self.targets) - 1
                episodes = None if self.linger and last else self.episodes
                if not self._play(self.runners[-1], episodes):
                    return 0
        finally:
            if self.window is not None:
                self.window.close()
            for runner in self.runners:
                runner.close()
            self._summary()
        return 0

    def _summary(self) -> None:
        """One line per target that finished an episode: how many, and their mean return."""
        for index, runner in enumerate(self.runners):
            if not isinstance(runner, EpisodeRunner) or not runner.returns:
                continue  # a grid keeps its own tallies on screen
            mean = terminal_number(sum(runner.returns) / len(runner.returns))
            text = tr("watch_summary", self.lang, count=len(runner.returns), mean=mean)
            if len(self.runners) > 1:
                label = checkpoint_label(
                    self.visited[index], index + 1, len(self.targets), self.lang
                )
                text = f"{label}: {text}"
            print(text, flush=True)

    def _play(self, runner: EpisodeRunner | GridRunner, episodes: int | None) -> bool:
        """Run one target until ``episodes`` are done (None: until the learner quits or
        presses n); False when the learner quit or ``--max-steps`` ran out."""
        while True:
            outcome = self.frame(runner, episodes)
            if outcome is not None:
                return outcome

    def frame(self, runner: EpisodeRunner | GridRunner, episodes: int | None) -> bool | None:
        """Show one frame, apply the keys pressed since the last, take the steps due.

        Returns:
            None to go on; True to move to the next target; False to stop.
        """
        controls = self.controls
        runner.model.status = self._status()
        runner.model.paused = controls.paused
        frame = runner.frame()
        size = (frame.shape[1], frame.shape[0])
        if self.window is not None and self.window.size != size:
            self.window.close()  # Another env (--env) draws another size: a new window.
            self.window = None
        if self.window is None:
            self.window = ViewerWindow(f"rl watch — {runner.target.env_id}", size)
        self.window.show(frame)
        handle_watch_events(self.window.events(), controls)
        if controls.quit:
            return False
        if controls.next_checkpoint and self.progress:
            if len(self.runners) < len(self.targets):
                controls.consume()
                return True
            controls.next_checkpoint = False  # the last checkpoint: n has nowhere to go
        if controls.reset:
            runner.restart()
        if controls.paused and controls.single_step and isinstance(runner, EpisodeRunner):
            # → on an episode's final frame shows the next episode's first: one press, one
            # change on screen, however long the final frame is held while playing.
            runner.skip_hold()
        due = self.window.steps_due(controls)
        controls.consume()
        for _ in range(due):
            if self._done(runner, episodes):  # → on the last episode's final frame.
                return True
            stepped, ended = runner.tick()
            self.steps += stepped
            if ended and isinstance(runner, EpisodeRunner):
                self._report(runner)
            if self.max_steps is not None and self.steps >= self.max_steps:
                return False
            if self._done(runner, episodes):
                return True
        return None

    def _done(self, runner: EpisodeRunner | GridRunner, episodes: int | None) -> bool:
        """``episodes`` are over and the last one's final frame has been seen."""
        return (
            episodes is not None
            and runner.episodes_finished >= episodes
            and (not isinstance(runner, EpisodeRunner) or runner.held)
        )

    def _report(self, runner: EpisodeRunner) -> None:
        text = episode_report(runner.model)
        print(f"  {text}", flush=True)
