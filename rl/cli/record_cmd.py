"""``rl record``: write what ``rl watch`` shows, HUD included, to a GIF or MP4 file.

Frames are composed off-screen, so recording needs no display. GIFs are written by ``imageio``
with Pillow; MP4 needs ``imageio-ffmpeg`` (``pip install -e ".[video]"`` in the checkout). What
is recorded follows ``--seed`` alone (sampled actions included): ``--scale`` changes the size,
never the episodes.

For training runs, :func:`capture_run_videos` records one episode per training snapshot into
``<run>/videos/step_<N>.gif`` and logs each to TensorBoard (``videos/episode`` at step ``N``),
so TensorBoard's Images tab plays the agent at 0 %, 10 %, ..., 100 % of training.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from rl.cli import CLIError, check_writable, whole_number
from rl.cli.hud import check_lang
from rl.cli.targets import (
    Target,
    progress_targets,
    targets_from_args,
)
from rl.cli.watch_cmd import (
    EpisodeRunner,
    add_common_arguments,
    checkpoint_label,
    default_fps,
    policy_title,
    positive_int,
)

VIDEO_EXTRA_HINT = (
    'MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg (pip install -e ".[video]" in the '
    "checkout), or write a .gif"
)
GIF_MAX_WIDTH = 720  # px: GIFs are held in memory until written; wider frames are scaled down.
HOLD_SECONDS = 0.8  # An episode's last frame stays this long, so the viewer sees how it ended.


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "record",
        help="record an agent (HUD included) to a GIF or MP4",
        description=(
            "Record a policy acting, with the HUD of `rl watch`, to FILE.gif or FILE.mp4 "
            '(MP4 needs imageio-ffmpeg: pip install -e ".[video]"). TARGET is a run directory, a '
            "checkpoint or an env id (random policy)."
        ),
    )
    parser.add_argument("target", metavar="TARGET", help="run directory, checkpoint or env id")
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="output file, .gif or .mp4"
    )
    parser.add_argument(
        "--episodes",
        type=whole_number,
        default=1,
        help="episodes to record (per checkpoint with --progress)",
    )
    parser.add_argument(
        "--fps", type=float, default=None, help="frames (env steps) per second of the video"
    )
    parser.add_argument(
        "--max-steps", type=whole_number, default=None, help="stop after this many env steps in all"
    )
    parser.add_argument(
        "--progress", action="store_true", help="record every training snapshot of a run in order"
    )
    parser.add_argument(
        "--checkpoints",
        default=None,
        metavar="PCTS",
        help="with --progress, only the snapshots nearest these percentages, e.g. 0,50,100",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=None,
        help=f"resize frames by this factor (default: GIFs at most {GIF_MAX_WIDTH} px wide)",
    )
    parser.add_argument("--no-hud", action="store_true", help="record the env's frames only")
    add_common_arguments(parser)
    parser.set_defaults(run=run)


# -- frames --------------------------------------------------------------------------------------
def episode_frames(
    runner: EpisodeRunner,
    episodes: int,
    *,
    max_steps: int | None = None,
    hud: bool = True,
) -> Iterator[np.ndarray]:
    """Frames of ``episodes`` whole episodes (fewer if ``max_steps`` env steps run out).

    Yields the first state, one frame per tick (an env step, or a held last frame) and ends
    after the last episode's final frame has been held.
    """
    frame = runner.frame if hud else runner.scene
    yield frame()
    start = runner.steps_taken
    while True:
        runner.tick()
        yield frame()
        if runner.episodes_finished >= episodes and runner.held:
            return
        if max_steps is not None and runner.steps_taken - start >= max_steps:
            return


def resize(frame: np.ndarray, scale: float) -> np.ndarray:
    """``frame`` scaled by ``scale`` (smoothly), as ``(H, W, 3)`` uint8."""
    if scale == 1.0:
        return frame
    from envs.rendering import import_pygame
    from rl.cli.hud import scene_surface, surface_pixels

    pygame = import_pygame()
    h, w = frame.shape[:2]
    size = (max(2, round(w * scale)), max(2, round(h * scale)))
    return surface_pixels(pygame.transform.smoothscale(scene_surface(frame), size))


def check_video_path(path: Path) -> str:
    """The container (``gif`` or ``mp4``) of ``path``; a CLIError for anything else.

    Raises:
        CLIError: another suffix, or ``.mp4`` without imageio-ffmpeg installed.
    """
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise CLIError(f"--out must end in .gif or .mp4, got {path}")
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise CLIError(VIDEO_EXTRA_HINT)
    return suffix[1:]


def write_video(path: Path, frames: Iterator[np.ndarray] | list[np.ndarray], fps: float) -> int:
    """Write ``frames`` to ``path`` (.gif or .mp4); return the number of frames written.

    MP4 frames are streamed to ffmpeg. GIF frames are kept until written (Pillow writes a GIF
    at once), runs of identical frames merged into one longer frame to keep the file small.

    Raises:
        CLIError: no frames, or an unsupported container.
    """
    import imageio.v3 as iio

    container = check_video_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if container == "mp4":
        import imageio.v2 as iio2

        count = 0
        # H.264's yuv420p needs even sizes: frames are padded to them, not rescaled.
        with iio2.get_writer(path, fps=fps, codec="libx264", macro_block_size=2) as writer:
            for frame in frames:
                writer.append_data(_even(frame))
                count += 1
        if count == 0:
            raise CLIError("no frames to write")
        return count
    unique, durations = _merge_repeats(frames, 1000.0 / fps)
    if not unique:
        raise CLIError("no frames to write")
    iio.imwrite(path, np.stack(unique), extension=".gif", duration=durations, loop=0)
    return len(unique)


def gif_bytes(frames: list[np.ndarray], fps: float) -> bytes:
    """An animated GIF of ``frames`` in memory."""
    import imageio.v3 as iio

    unique, durations = _merge_repeats(frames, 1000.0 / fps)
    return iio.imwrite("<bytes>", np.stack(unique), extension=".gif", duration=durations, loop=0)


def _merge_repeats(
    frames: Iterator[np.ndarray] | list[np.ndarray], duration_ms: float
) -> tuple[list[np.ndarray], list[int]]:
    unique: list[np.ndarray] = []
    durations: list[float] = []
    for frame in frames:
        if unique and np.array_equal(unique[-1], frame):
            durations[-1] += duration_ms
        else:
            unique.append(frame)
            durations.append(duration_ms)
    return unique, gif_delays(durations)


MAX_GIF_FPS = 50  # 20 ms frames: the shortest a GIF holds that browsers play as written


def gif_delays(durations_ms: list[float]) -> list[int]:
    """Frame times a GIF can hold (whole centiseconds) that add up to the wanted ones.

    A GIF stores each delay in 10 ms steps: 33.3 ms (30 fps) as 30 ms played 11 % fast. Each
    frame here ends at the rounded end time of the wanted frames so far (30, 40, 30, ... ms at
    30 fps), so the video keeps time up to :data:`MAX_GIF_FPS`; no delay is under 20 ms, which
    browsers slow down (above 50 fps the GIF plays slower than asked: ``rl record`` refuses).
    """
    delays, done, wanted = [], 0, 0.0
    for duration in durations_ms:
        wanted += duration
        delay = max(20, round(wanted / 10.0) * 10 - done)
        delays.append(delay)
        done += delay
    return delays


def _even(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


# -- the command ---------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    lang = check_lang(args.lang)
    check_video_path(args.out)
    check_writable(args.out, "the video", make_folder=True)
    positive_int(args.episodes, "--episodes")
    positive_int(args.max_steps, "--max-steps")
    if args.fps is not None and (args.fps <= 0 or not math.isfinite(args.fps)):
        raise CLIError(f"--fps must be > 0 for a video, got {args.fps}")
    if args.fps is not None and args.fps > MAX_GIF_FPS and args.out.suffix.lower() == ".gif":
        raise CLIError(
            f"a GIF plays at most {MAX_GIF_FPS} frames per second (its frame times are whole "
            f"hundredths of a second, and browsers slow down shorter ones), got --fps "
            f"{args.fps:g}: give --fps {MAX_GIF_FPS} or less, or write an .mp4"
        )
    if args.scale is not None and not (0 < args.scale <= 4):
        raise CLIError(f"--scale must be in (0, 4], got {args.scale}")
    targets = targets_from_args(args)
    fps = args.fps if args.fps is not None else default_fps(targets[0].env_id)
    frames = _frames(targets, args, lang, fps)
    count = write_video(args.out, frames, fps)
    print(f"rl record: wrote {args.out} ({count} frames at {fps:g} fps)")
    return 0


def _frames(
    targets: list[Target], args: argparse.Namespace, lang: str, fps: float
) -> Iterator[np.ndarray]:
    """Every target's episodes, one frame per tick, scaled; ``--max-steps`` counts across all."""
    hold = max(1, round(HOLD_SECONDS * fps))
    remaining = args.max_steps
    scale = args.scale
    for index, target in enumerate(targets):
        subtitle = policy_title(target, lang)
        if args.progress:
            subtitle.insert(0, checkpoint_label(target, index + 1, len(targets), lang))
        runner = EpisodeRunner(
            target,
            lang=lang,
            seed=args.seed + index,
            deterministic=args.greedy,
            subtitle=subtitle,
            keys=[],
            hold_ticks=hold,
        )
        try:
            for frame in episode_frames(
                runner, args.episodes, max_steps=remaining, hud=not args.no_hud
            ):
                if scale is None:
                    scale = (
                        min(1.0, GIF_MAX_WIDTH / frame.shape[1])
                        if args.out.suffix.lower() == ".gif"
                        else 1.0
                    )
                yield resize(frame, scale)
        finally:
            runner.close()
        if remaining is not None:
            remaining -= runner.steps_taken
            if remaining <= 0:
                return


# -- videos of a training run ---------------------------------------------------------------------
def capture_episode(
    target: Target,
    *,
    seed: int = 0,
    max_steps: int = 1000,
    lang: str = "en",
    deterministic: bool = True,
    hold_ticks: int = 4,
    scale: float = 0.5,
) -> list[np.ndarray]:
    """One episode of ``target``'s policy as ``(H, W, 3)`` uint8 frames with the HUD."""
    runner = EpisodeRunner(
        target,
        lang=lang,
        seed=seed,
        deterministic=deterministic,
        subtitle=policy_title(target, lang),
        hold_ticks=hold_ticks,
    )
    try:
        return [resize(f, scale) for f in episode_frames(runner, 1, max_steps=max_steps)]
    finally:
        runner.close()


def capture_run_videos(
    run_dir: str | Path,
    *,
    max_steps: int = 1000,
    fps: float | None = None,
    scale: float = 0.5,
    lang: str = "en",
    tag: str = "videos/episode",
) -> list[Path]:
    """Record one episode per training snapshot of a run, as GIFs and in TensorBoard.

    For each ``checkpoints/step_<N>.pt`` this writes ``<run_dir>/videos/step_<N>.gif`` and an
    animated image ``tag`` at global step ``N`` in the run's TensorBoard events (the Images
    tab plays it; no moviepy needed). Call it after training, e.g. from ``rl train
    --capture-video``.

    Args:
        run_dir: a run directory written by ``rl train``.
        max_steps: the longest episode recorded (env steps).
        fps: playback speed (default: the env's).
        scale: frame size relative to ``rl watch``'s window.
        lang: the HUD's language.
        tag: the TensorBoard tag.

    Returns:
        The GIF files written, in training order.

    Raises:
        CLIError: ``run_dir`` has no snapshots.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary
    from torch.utils.tensorboard import SummaryWriter

    run_dir = Path(run_dir)
    targets = progress_targets(str(run_dir))
    fps = fps or default_fps(targets[0].env_id)
    out_dir = run_dir / "videos"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    writer = SummaryWriter(str(run_dir))
    try:
        for target in targets:
            frames = capture_episode(target, max_steps=max_steps, lang=lang, scale=scale)
            data = gif_bytes(frames, fps)
            step = target.global_step or 0
            path = out_dir / f"step_{step:09d}.gif"
            path.write_bytes(data)
            written.append(path)
            h, w = frames[0].shape[:2]
            image = Summary.Image(height=h, width=w, colorspace=3, encoded_image_string=data)
            writer.file_writer.add_summary(
                Summary(value=[Summary.Value(tag=tag, image=image)]), step
            )
    finally:
        writer.close()
    return written
