"""Runs: the folder, TensorBoard logging, checkpoints, episode statistics and the progress bar.

A run lives in ``runs/<env>__<algo>__<seed>__<timestamp>/``::

    events.out.tfevents.*   TensorBoard (charts/episodic_return, charts/SPS, losses/...)
    config.json             the full config, enough to rebuild the run
    .lock                   held while a training writes the folder (a second one is refused)
    checkpoints/            latest.pt, best.pt and step_<global_step>.pt snapshots
    eval.json               written by the final evaluation and by `rl eval`

Every agent uses :class:`TrainingRun` so runs look the same whatever the algorithm.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rl.checkpoint import (
    CheckpointDamaged,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
    temp_file_beside,
)

if TYPE_CHECKING:
    from rl.evaluation import EvalResult

RUNS_ROOT = "runs"
LOCK_NAME = ".lock"  # in a run folder: held while a training writes it
SNAPSHOT_PATTERN = re.compile(r"^step_(\d+)\.pt$")


_STOP = threading.Event()


def stop_requested() -> bool:
    """Whether a first Ctrl-C under :func:`stop_on_interrupt` asked training to stop: trainers
    check it where an iteration (or a logging window) ends, save and stop as if training were
    over."""
    return _STOP.is_set()


@contextlib.contextmanager
def stop_on_interrupt() -> Iterator[None]:
    """Within: a first Ctrl-C stops training at the end of its iteration, with a checkpoint
    there (nothing trained is lost, and ``--resume`` continues from it); a second one
    interrupts at once (``KeyboardInterrupt``), as before. Off the main thread, or for a
    distributed run (every rank would have to stop at the same iteration), do not use it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if _STOP.is_set():
            raise KeyboardInterrupt
        _STOP.set()
        print(
            "\nCtrl-C: stopping after this iteration, with a checkpoint (press again to stop "
            "at once)",
            file=sys.stderr,
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        _STOP.clear()


class TrainingDiverged(RuntimeError):
    """Training produced a non-finite loss or parameter; the last good checkpoint is kept."""


def run_name(env_id: str, algo: str, seed: int) -> str:
    """``sandbox/DogTraining-v0`` + ppo + 1 → ``sandbox-DogTraining-v0__ppo__1__<timestamp>``."""
    safe_env = re.sub(r"[^A-Za-z0-9._-]+", "-", env_id)
    return f"{safe_env}__{algo}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"


def make_new_dir(root: str | os.PathLike, name: str) -> Path:
    """Make and return the new folder ``root/name``, or ``name-2``, ``name-3``, ... where that
    one exists: runs named by the clock collide when started in the same second (a parallel
    sweep), and ``mkdir`` is atomic, so two trainings never share a folder they did not name."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder, k = root / name, 1
    while True:
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            k += 1
            folder = root / f"{name}-{k}"


def default_run_dir(env_id: str, algo: str, seed: int, *, make: bool = True) -> Path:
    """``runs/<env>__<algo>__<seed>__<timestamp>``, made new (:func:`make_new_dir`); with
    ``make=False`` (a process that writes nothing, e.g. a distributed run's other ranks) only
    the name."""
    name = run_name(env_id, algo, seed)
    return make_new_dir(RUNS_ROOT, name) if make else Path(RUNS_ROOT) / name


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write JSON atomically (temp file + ``os.replace``); a failed write (a full disk, a value
    JSON cannot hold) leaves the old file and no temporary one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(path)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as handle:
        return json.load(handle)


def find_checkpoint(path: str | os.PathLike, which: str = "latest") -> Path:
    """A checkpoint file from a run directory or a file path.

    For a run directory, ``which`` picks ``latest`` (the weights training ended with, the ones
    ``rl train`` evaluated and ``eval.json`` describes; falling back to ``best``) or ``best``
    (the best training return so far, falling back to ``latest``). A supervised run saves its
    best-validation weights as both.

    Raises:
        CheckpointError: nothing usable there.
    """
    path = Path(path)
    if path.is_file():
        return path
    if not path.exists():
        raise CheckpointError(
            f"{path} does not exist: {did_you_mean_path(path)}expected a run directory or a .pt "
            "file"
        )
    folder = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    if which not in ("latest", "best"):
        raise ValueError(f"which must be 'latest' or 'best', got {which!r}")
    order = ["best.pt", "latest.pt"] if which == "best" else ["latest.pt", "best.pt"]
    for name in order:
        if (folder / name).is_file():
            return folder / name
    if (path / "multiseed.pt").is_file():
        seeds = sorted(
            p.name for p in path.parent.glob(path.name.split("__ppo-seeds__")[0] + "__ppo__*")
        )
        example = f", e.g. {path.parent / seeds[0]}" if seeds else ""
        raise CheckpointError(
            f"{path} is a multi-seed group folder (for rl train --resume); give one seed's run "
            f"folder{example}"
        )
    if an_interrupted_first_save(path):
        raise CheckpointError(
            f"{path} holds no trained checkpoint: its training stopped during its first save "
            f"(only the untrained {FIRST_SNAPSHOT}); train it again with rl train --run-dir "
            f"{path} (or --resume-if-exists)"
        )
    snapshots = list_snapshots(path)
    if snapshots:  # latest.pt and best.pt lost
        raise CheckpointError(
            f"{path} holds no latest.pt or best.pt, only step_*.pt snapshots; give one, e.g. "
            f"the newest: {snapshots[-1][1]}"
        )
    inner = runs_inside(path)
    # runs/, runs/lesson/, or a supervised comparison (its config.json beside source/, ...);
    # a run still starting has its checkpoints/ folder already.
    if inner and not (path / "checkpoints").is_dir():
        names = ", ".join(str(p) for p in inner[:3])
        raise CheckpointError(
            f"{path} is a folder of runs, not one run; give one of them, e.g. {names}"
        )
    if (path / "config.json").is_file():  # a run folder whose training saved nothing yet
        raise CheckpointError(
            f"{path} holds no checkpoint yet: its training is still starting (the first comes "
            "within seconds: try again) or stopped before its first save"
        )
    raise CheckpointError(
        f"{path} holds no checkpoint (looked for {', '.join(order)} in {folder}); "
        "expected a run directory made by `rl train` or a .pt file"
    )


def runs_inside(folder: Path, checkpoint: str = "*.pt", levels: int = 2) -> list[Path]:
    """The run folders up to ``levels`` below ``folder`` that hold ``checkpoints/<checkpoint>``
    (a glob pattern), sorted, each once: what to name when a folder of runs is given for one."""
    patterns = (
        "/".join(["*"] * depth) + f"/checkpoints/{checkpoint}" for depth in range(1, levels + 1)
    )
    return sorted({p.parent.parent for pattern in patterns for p in folder.glob(pattern)})


def did_you_mean_path(path: Path) -> str:
    """``"did you mean 'runs/lesson/coached'? "`` for a misspelt path whose folder exists, else
    ``""`` (a bare word too: for the CLI, that may be a misspelt env id)."""
    folder = path.parent
    if str(folder) in ("", ".") and os.sep not in str(path):
        return ""
    if not folder.is_dir():
        return ""
    close = difflib.get_close_matches(path.name, [p.name for p in folder.iterdir()], n=1)
    return f"did you mean {str(folder / close[0])!r}? " if close else ""


def list_snapshots(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """The run's ``step_<N>.pt`` snapshots as ``(global_step, path)``, in training order."""
    folder = Path(run_dir) / "checkpoints"
    found = []
    if folder.is_dir():
        for entry in folder.iterdir():
            match = SNAPSHOT_PATTERN.match(entry.name)
            if match:
                found.append((int(match.group(1)), entry))
    return sorted(found)


class EpisodeTracker:
    """Sums finished episodes' statistics on the device; one host sync per :meth:`summary`.

    Reads the vector env's ``info["episode"]`` (``r``, ``l`` and optional per-episode counts
    ``successes``/``attempts``) where ``info["_episode"]`` is set.
    """

    EXTRAS = ("successes", "attempts")

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._sums = torch.zeros(3 + len(self.EXTRAS), dtype=torch.float64, device=device)

    def record(self, info: dict[str, Any]) -> None:
        mask = info.get("_episode")
        if mask is None:
            return
        episode = info["episode"]
        weight = mask.to(torch.float64)
        parts = [weight.sum(), (episode["r"] * weight).sum(), (episode["l"] * weight).sum()]
        for key in self.EXTRAS:
            value = episode.get(key)
            parts.append((value * weight).sum() if value is not None else weight.new_zeros(()))
        self._sums += torch.stack(parts)

    def summary(self) -> dict[str, float] | None:
        """Mean return, length and success rate since the last call; ``None`` if none ended."""
        return self.summarize(self.take().tolist())  # sync: once per iteration

    def take(self) -> torch.Tensor:
        """The running sums as a device tensor, zeroing them; no host sync.

        Lets a caller fetch these sums together with its own statistics in one host sync, then
        turn them into a summary with :meth:`summarize`.
        """
        sums = self._sums.clone()
        self._sums.zero_()
        return sums

    @staticmethod
    def summarize(sums: list[float]) -> dict[str, float] | None:
        """:meth:`take`'s sums, on the host, as :meth:`summary`'s dict (``None`` if none ended)."""
        count, ret, length, successes, attempts = sums
        if count == 0:
            return None
        stats = {
            "episodes": count,
            "episodic_return": ret / count,
            "episodic_length": length / count,
        }
        if attempts > 0:
            stats["success_rate"] = successes / attempts
        return stats

    @classmethod
    def charts(cls, sums: list[float]) -> tuple[dict[str, float], str]:
        """:meth:`take`'s sums as TensorBoard's ``charts/episodic_return``, ``episodic_length``
        and ``success_rate``, and the progress line's words for them (none if none ended)."""
        stats = cls.summarize(sums)
        if stats is None:
            return {}, ""
        charts = {f"charts/{key}": stats[key] for key in ("episodic_return", "episodic_length")}
        status = f"return {stats['episodic_return']:.1f}"
        if "success_rate" in stats:
            charts["charts/success_rate"] = stats["success_rate"]
            status += f" | success {stats['success_rate']:.0%}"
        return charts, status


def describe_os_error(exc: OSError) -> str:
    """``[Errno 30] Read-only file system: 'runs/x'`` as ``runs/x: Read-only file system``
    where the error names its file: the one line a command prints for it."""
    if exc.filename is None or not exc.strerror:
        return str(exc)
    return f"{exc.filename}: {exc.strerror}"


class RunInUse(ValueError):
    """The run folder is being written by another training (its ``.lock`` is held)."""


# Run folders this process holds: resolved path -> [the open lock file (None: no lock on this
# file system), how many holders]. Re-entrant, so `rl train` can hold the folder from before it
# reads the checkpoint to resume until eval.json is written, around the TrainingRun inside.
_HELD: dict[str, list[Any]] = {}


def acquire_run_folder(run_dir: str | os.PathLike) -> None:
    """Hold ``run_dir/.lock`` for this process (made if missing), so that a second training
    into the same folder fails at once instead of interleaving its checkpoints, config and
    events with the first's. Released by :func:`release_run_folder` as often as acquired, or
    when the process ends (a kill -9 included).

    Raises:
        RunInUse: another process holds it.
    """
    folder = Path(run_dir)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        return
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        _HELD[key] = [None, 1]
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = (folder / LOCK_NAME).open("a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            # A file system without flock (some NFS, FUSE or Lustre mounts): train unlocked.
            handle.close()
            print(f"note: cannot lock {folder} ({exc.strerror}); training without the lock "
                  "that refuses a second training into it", file=sys.stderr)  # fmt: skip
            _HELD[key] = [None, 1]
            return
        handle.seek(0)
        holder = handle.read().strip()
        handle.close()
        who = f" (pid {holder})" if holder else ""
        raise RunInUse(
            f"{folder} is being written by another training{who}; wait for it to end, or "
            "train into another folder"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _HELD[key] = [handle, 1]


def release_run_folder(run_dir: str | os.PathLike) -> None:
    """Undo one :func:`acquire_run_folder`; the last one releases the lock."""
    key = str(Path(run_dir).resolve())
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        if held[0] is not None:
            held[0].close()


@contextlib.contextmanager
def run_folder_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """:func:`acquire_run_folder` for the ``with`` block."""
    acquire_run_folder(run_dir)
    try:
        yield
    finally:
        release_run_folder(run_dir)


def refuse_another_run_in(
    run_dir: str | os.PathLike, *, resumable: bool = True, hint: str | None = None
) -> None:
    """A ValueError if a new run would train into ``run_dir`` while it holds another run's
    checkpoints (or a multi-seed group's): that would overwrite its ``latest.pt`` and ``best.pt``
    and mix the two runs' snapshots and TensorBoard events. A folder whose training ended before
    its first checkpoint (a config.json, no .pt) or during it (:func:`an_interrupted_first_save`)
    holds nothing to keep: training starts there afresh, so that ``--resume-if-exists``
    (torchrun's restart) is not stuck between "already holds a run" and "nothing to resume". A
    folder with an ``eval.json`` holds a finished run (its curves), checkpoints or not. A
    training still writing it is refused by the folder's lock instead.

    Args:
        resumable: the runs written there can be continued (the agents'), not only redone (a
            supervised fit's): what the message suggests.
        hint: what to do instead, in the caller's words (``rl train``'s flags).
    """
    folder = Path(run_dir)
    finished = (folder / "eval.json").is_file()  # its checkpoints deleted, its curves kept
    if not (
        finished or any(folder.glob("checkpoints/*.pt")) or (folder / "multiseed.pt").is_file()
    ):
        return
    if an_interrupted_first_save(folder) and not finished:
        return  # nothing there resumes; the new run's first save replaces it
    what = ""
    try:
        config = read_json(folder / "config.json")
        what = f" (seed {config['seed']}, {config['env_id']})"
    except (OSError, ValueError, TypeError, KeyError):
        pass
    if hint is None:
        hint = (
            f"continue it with resume={os.fspath(run_dir)!r} (rl train --resume), or give the "
            "new run another run_dir"
            if resumable
            else "give the new run another run_dir (these runs do not resume: each starts afresh)"
        )
    raise ValueError(f"{folder} already holds a run{what}; {hint}")


FIRST_SNAPSHOT = "step_000000000.pt"


def an_interrupted_first_save(run_dir: str | os.PathLike) -> bool:
    """Whether ``run_dir``'s only checkpoint file is the untrained snapshot of step 0: what a
    training stopped during its first save leaves (every agent saves first at step 0, the
    snapshot before ``latest.pt``, :meth:`TrainingRun.save`). Nothing there resumes, so a new
    run may start there afresh: without this, a kill in those milliseconds left a folder that
    ``--resume-if-exists`` could neither continue nor restart. Any other file (a ``best.pt``, a
    later snapshot, a replay buffer) is a run's to keep."""
    names = [path.name for path in (Path(run_dir) / "checkpoints").glob("*.pt")]
    return names == [FIRST_SNAPSHOT] and not (Path(run_dir) / "multiseed.pt").exists()


def _remove_stale_temp_files(checkpoint_dir: Path) -> None:
    """Temporary checkpoint files that a killed training left half written
    (``.latest.pt.*.tmp``): with the folder locked, no other training is writing them."""
    for stale in checkpoint_dir.glob(".*.pt.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


class TrainingRun:
    """The run directory, TensorBoard writer, checkpoints and progress bar of one training.

    Args:
        run_dir: the folder (created if missing).
        config: the JSON-ready config written to ``config.json``.
        total_timesteps: for the progress bar and the snapshot schedule.
        num_snapshots: snapshots at 0 %, 1/K, ..., 100 % of training for before/after replays.
        purge_step: when resuming, TensorBoard drops events at or after this step.
        writer: ``False`` on non-zero ranks of a distributed run (no files written).
        progress: show a progress bar.
        resumable: a resume can continue this run (the agents'; a supervised fit's cannot):
            what the refusal of a folder holding another run suggests.
    """

    def __init__(
        self,
        run_dir: str | os.PathLike,
        config: dict[str, Any],
        *,
        total_timesteps: int,
        num_snapshots: int = 10,
        purge_step: int | None = None,
        writer: bool = True,
        progress: bool = True,
        resumable: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.total_timesteps = int(total_timesteps)
        self.num_snapshots = max(1, int(num_snapshots))
        self.is_writer = writer
        self.best_return = -math.inf
        self._next_snapshot = 0
        self._writer = None
        self._progress = None
        self._task = None
        self._start_time = time.perf_counter()
        self._start_step = purge_step or 0
        self._locked = False
        if writer and purge_step is None:
            refuse_another_run_in(self.run_dir, resumable=resumable)
        if writer:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            acquire_run_folder(self.run_dir)
            self._locked = True
            _remove_stale_temp_files(self.checkpoint_dir)
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / "config.json", config)
            from torch.utils.tensorboard import (
                SummaryWriter,
            )  # Lazy: tensorboard is slow to import.

            # A new run where an earlier attempt stopped before its first checkpoint (the only
            # runs a new one may train over): TensorBoard drops that attempt's events as a
            # resume drops the steps after its checkpoint, from step 0.
            restart = purge_step is None and any(self.run_dir.glob("events.out.tfevents.*"))
            if purge_step is not None or restart:
                _wait_past_existing_event_files(self.run_dir)
            self._writer = SummaryWriter(str(self.run_dir), purge_step=0 if restart else purge_step)
        if progress and writer:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            # On stderr, as progress bars go: stdout stays the command's results (--json).
            console = Console(stderr=True)
            if not console.is_terminal:  # a log file: its last line in full, not cut at 80
                console = Console(stderr=True, width=160)
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("steps"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                TextColumn("{task.fields[status]}"),
                console=console,
                redirect_stdout=False,  # stdout stays the command's own, not the bar's stream
            )
            self._progress.start()
            self._task = self._progress.add_task(
                "training", total=self.total_timesteps, completed=self._start_step, status=""
            )

    # -- logging -------------------------------------------------------------------------------
    def log(self, metrics: dict[str, float], global_step: int) -> None:
        """Scalars under their tags (``charts/...``, ``losses/...``)."""
        if self._writer is None:
            return
        for tag, value in metrics.items():
            self._writer.add_scalar(tag, value, global_step)

    def log_video(self, tag: str, frames: torch.Tensor, global_step: int, fps: int) -> None:
        """A ``(1, T, C, H, W)`` uint8 video (needs moviepy for TensorBoard's encoder)."""
        if self._writer is not None:
            self._writer.add_video(tag, frames, global_step, fps=fps)

    def sps(self, global_step: int) -> float:
        elapsed = time.perf_counter() - self._start_time
        return (global_step - self._start_step) / max(elapsed, 1e-9)

    def write_evaluation(
        self,
        evaluation: EvalResult,
        *,
        algo: str,
        global_step: int,
        seed: int,
        env_kwargs: dict[str, Any] | None = None,
    ) -> Path:
        """``eval.json``: the run's final evaluation of ``latest.pt``, recorded as ``rl eval RUN``
        records it (:meth:`rl.evaluation.EvalResult.record`)."""
        latest = (self.checkpoint_dir / "latest.pt").relative_to(self.run_dir).as_posix()
        record = evaluation.record(
            algo=algo, checkpoint=latest, global_step=global_step, seed=seed, env_kwargs=env_kwargs
        )
        return write_json(self.run_dir / "eval.json", record)

    def report(self, metrics: dict[str, float], global_step: int, status: str) -> None:
        """An iteration's scalars with ``charts/SPS`` added (in ``metrics`` too), and the
        progress bar moved to ``global_step`` with ``status``."""
        metrics["charts/SPS"] = self.sps(global_step)
        self.log(metrics, global_step)
        self.update_progress(global_step, status)

    def update_progress(self, global_step: int, status: str = "") -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=min(global_step, self.total_timesteps), status=status
            )

    # -- checkpoints -------------------------------------------------------------------------
    def snapshot_due(self, global_step: int) -> bool:
        """True once per 1/K of training (and at step 0), for before/after replays."""
        threshold = self._next_snapshot * self.total_timesteps / self.num_snapshots
        return self._next_snapshot <= self.num_snapshots and global_step >= threshold

    def save(
        self,
        payload: dict[str, Any],
        global_step: int,
        *,
        mean_return: float | None = None,
        snapshot: bool = False,
    ) -> Path | None:
        """Write ``latest.pt``; also ``best.pt`` on a new best return and a step snapshot.

        On a rank that writes nothing (``writer=False``) the snapshot schedule still moves on:
        every rank must keep asking :meth:`snapshot_due` the same question, since saving is a
        collective (the ranks' state is gathered) and a rank that saves alone waits forever.
        """
        if snapshot:
            self._advance_snapshots(global_step)
        if not self.is_writer:
            return None
        if self._writer is not None:
            # Events up to the checkpoint reach the disk before it does: after a kill -9 and a
            # resume (purge_step), TensorBoard then has no gap before the resumed steps.
            self._writer.flush()
        # planned_timesteps: what "30 % of training" is of (total_timesteps in whole iterations).
        # torch_threads: the CPU thread count, without which a resume is not bit for bit.
        payload = {
            **payload,
            "global_step": int(global_step),
            "planned_timesteps": int(self.total_timesteps),
            "torch_threads": torch.get_num_threads(),
        }
        # latest.pt last: it is what a resume starts from, so once it says step S, best.pt and
        # the snapshot of step S are on disk too. A kill before it repeats this iteration,
        # which writes the same files again.
        if mean_return is not None and mean_return > self.best_return:
            self.best_return = mean_return
            save_checkpoint(
                {**payload, "best_return": mean_return}, self.checkpoint_dir / "best.pt"
            )
        if snapshot:
            save_checkpoint(payload, self.checkpoint_dir / f"step_{int(global_step):09d}.pt")
        return save_checkpoint(payload, self.checkpoint_dir / "latest.pt")

    def _advance_snapshots(self, global_step: int) -> None:
        # To the first mark past this step, k > global_step * K / T: jumped to, not counted up
        # to (num_snapshots may exceed the run's iterations many times over).
        if self.snapshot_due(global_step):
            passed = global_step * self.num_snapshots // max(1, self.total_timesteps)
            self._next_snapshot = min(self.num_snapshots + 1, passed + 1)

    def restore_schedule(self, global_step: int, best_return: float | None) -> None:
        """After a resume: skip snapshots already taken and remember the best return."""
        # The first mark past this step, k > global_step * K / T: every mark up to the step of
        # the checkpoint had its snapshot written with it or before it (save's order).
        first = global_step * self.num_snapshots // max(1, self.total_timesteps) + 1
        self._next_snapshot = max(self._next_snapshot, min(self.num_snapshots + 1, first))
        if best_return is not None:
            self.best_return = best_return

    def close(self) -> None:
        if self._progress is not None:
            task = next(t for t in self._progress.tasks if t.id == self._task)
            if task.completed < self.total_timesteps:
                # Stopped before the plan (solved, Ctrl-C, an error): a finished bar that says
                # so, not one frozen at 16 % with a time-remaining estimate.
                done = int(task.completed)
                self._progress.update(
                    self._task,
                    total=max(done, 1),
                    status=" | ".join(x for x in (task.fields.get("status"), "stopped early") if x),
                )
            self._progress.stop()
            self._progress = None
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None
        if self._locked:
            release_run_folder(self.run_dir)
            self._locked = False


def _wait_past_existing_event_files(run_dir: Path) -> None:
    """Sleep (at most ~1 s) until a new event file's name sorts after every existing one.

    TensorBoard reads a run's event files in name order, and the purge that drops duplicate
    steps after a resume only works if the resumed file is read last. Names start with the
    creation second, then a per-process counter, so two writers opened within one second can
    sort the wrong way round (counter 9 → 10). A new second settles it.
    """
    newest = 0
    for path in run_dir.glob("events.out.tfevents.*"):
        parts = path.name.split(".")
        if len(parts) > 3 and parts[3].isdigit():
            newest = max(newest, int(parts[3]))
    while int(time.time()) <= newest:
        time.sleep(0.05)


def load_resume_checkpoint(run_dir: str | os.PathLike) -> dict[str, Any]:
    """``latest.pt`` of a run, for ``--resume``; a clear :class:`CheckpointError` otherwise."""
    path = Path(run_dir) / "checkpoints" / "latest.pt"
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"cannot resume: {run_dir} is not a run directory")
    if not path.is_file():
        groups = list(Path(run_dir).glob("*/multiseed.pt"))
        if groups:  # a multi-seed run's folder: its group continues every seed
            newest = max(groups, key=lambda p: p.stat().st_mtime).parent
            raise CheckpointError(
                f"cannot resume: {run_dir} is a folder of runs, not one run; to continue its "
                f"newest multi-seed run (every seed), give its group folder: --resume {newest}"
            )
        inner = runs_inside(Path(run_dir), "latest.pt", levels=1)
        if inner:
            raise CheckpointError(
                f"cannot resume: {run_dir} is a folder of runs, not one run; give one of them, "
                f"e.g. --resume {inner[0]}"
            )
        if an_interrupted_first_save(run_dir):
            raise CheckpointError(
                f"cannot resume: {run_dir}'s training stopped during its first checkpoint (only "
                f"the untrained {FIRST_SNAPSHOT}, no latest.pt): train it afresh with --run-dir "
                f"{run_dir}, or with --resume-if-exists"
            )
        snapshots = list_snapshots(run_dir)
        if snapshots:
            raise CheckpointError(
                f"cannot resume: {run_dir} holds no checkpoints/latest.pt; "
                + _from_a_snapshot(snapshots[-1], path)
            )
        if "-seeds__" in Path(run_dir).name and not any(Path(run_dir).iterdir()):
            raise CheckpointError(
                f"cannot resume: {run_dir} is a multi-seed group folder whose training stopped "
                "before its first checkpoint; run its rl train --seeds command again"
            )
        started = (Path(run_dir) / "config.json").is_file()  # stopped before its first save
        raise CheckpointError(
            f"cannot resume: {run_dir} holds no checkpoints/latest.pt (no run was saved there"
            + (
                "; its training stopped before its first checkpoint: train it afresh with "
                f"--run-dir {run_dir}, or with --resume-if-exists)"
                if started
                else ")"
            )
        )
    try:
        checkpoint = load_checkpoint(path)
    except CheckpointDamaged as exc:  # (a newer format or a refused pickle: a snapshot shares it)
        # A resume always reads latest.pt: say how to continue from an earlier one instead.
        snapshots = list_snapshots(run_dir)
        if snapshots:
            how = _from_a_snapshot(snapshots[-1], path)
            raise CheckpointError(f"{exc.description}; {how}") from None
        if exc.advice:
            raise CheckpointError(
                f"{exc}; to continue from one, copy it over {path} (the steps after it are "
                "trained again)"
            ) from None
        raise
    _refuse_another_runs_checkpoint(Path(run_dir), path, checkpoint)
    return checkpoint


# What makes a run that run, for telling a latest.pt copied in from elsewhere apart: never
# changed by a resume, nor adjusted by a trainer (other fields are: total_timesteps, device,
# ... by the user; A2C's vf_coef for checkpoints from before its value-loss fix).
RUN_IDENTITY = ("env_id", "env_kwargs", "seed")


def _refuse_another_runs_checkpoint(run_dir: Path, path: Path, checkpoint: dict) -> None:
    """Raise if ``latest.pt`` was not written by the training in ``run_dir`` (a file copied in
    from another run): another algorithm's config, or another :data:`RUN_IDENTITY` than the
    folder's ``config.json`` (numbers compared as numbers: a resume rewrites config.json with
    ``200.0`` where the checkpoint kept ``200``). A folder without ``config.json`` (or an
    unreadable one) is not checked."""
    saved = checkpoint.get("config")
    try:
        folder = read_json(run_dir / "config.json")
    except (OSError, ValueError):
        return
    if not isinstance(saved, dict) or not isinstance(folder, dict):
        return
    ours, theirs = set(folder) - set(saved), set(saved) - set(folder)
    if ours and theirs:  # a field each lacks: not a newer version's addition
        differ = f"its fields are another algorithm's (it is {checkpoint.get('algo')}'s run)"
    else:
        changed = [
            k
            for k in RUN_IDENTITY
            if k in saved and k in folder and _as_numbers(saved[k]) != _as_numbers(folder[k])
        ]
        if not changed:
            return
        differ = (
            f"it trained with {', '.join(f'{k}={saved[k]!r}' for k in changed)}, config.json "
            f"says {', '.join(f'{k}={folder[k]!r}' for k in changed)}"
        )
    raise CheckpointError(
        f"cannot resume: {path} was not written by the training in {run_dir} (its "
        f"config.json): {differ}; was it copied in from another run? Resume that run's own "
        "folder (to branch a run, copy its whole folder)"
    )


def _as_numbers(value: Any) -> Any:
    """``value`` with every int as a float (JSON and configs write ``200`` and ``200.0`` for
    one number) and tuples as lists, for comparing configs."""
    if isinstance(value, bool) or not isinstance(value, (int, float, list, tuple, dict)):
        return value
    if isinstance(value, dict):
        return {k: _as_numbers(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_numbers(v) for v in value]
    return float(value)


def _from_a_snapshot(snapshot: tuple[int, Path], latest: Path) -> str:
    """How to resume from ``snapshot`` (``(step, path)``) where ``latest`` cannot be read."""
    step, path = snapshot
    return (
        f"to continue from its newest snapshot (step {step:,}), copy {path} over {latest} (the "
        "steps after it are trained again)"
    )
