"""Checkpoints: atomic, weights-only, with one clear line for every bad file."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import pytest
import torch

from rl.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    CheckpointError,
    atomic_save,
    load_checkpoint,
    save_checkpoint,
)
from rl.runs import load_resume_checkpoint


def test_round_trip_keeps_tensors_and_plain_values(tmp_path: Path) -> None:
    model = torch.nn.Linear(3, 2)
    path = save_checkpoint(
        {"model": model.state_dict(), "config": {"lr": 3e-4, "hidden": [64, 64]}, "global_step": 7},
        tmp_path / "ck.pt",
    )
    loaded = load_checkpoint(path)
    assert loaded["global_step"] == 7
    assert loaded["config"] == {"lr": 3e-4, "hidden": [64, 64]}
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["model"][key], value)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


class _Exploit:
    def __reduce__(self):  # Runs os.system on an unsafe torch.load.
        return (os.system, (f"touch {self.marker}",))

    def __init__(self, marker: Path) -> None:
        self.marker = marker


def test_crafted_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "rl-sandbox-checkpoint", "model": _Exploit(marker)}, path)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()


def test_plain_pickle_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"model": 1}))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_truncated_file_gives_one_line(tmp_path: Path) -> None:
    path = save_checkpoint({"model": torch.nn.Linear(50, 50).state_dict()}, tmp_path / "ck.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated") as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"", "empty"), (b"hello, not a checkpoint", "is not a torch file")],
)
def test_foreign_files(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_torch_file_without_marker_is_foreign(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not an RL Sandbox checkpoint"):
        load_checkpoint(path)


def test_missing_and_folder(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="folder"):
        load_checkpoint(tmp_path)


def test_payload_needs_a_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model"):
        save_checkpoint({"config": {}}, tmp_path / "ck.pt")


def test_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path = atomic_save({"a": torch.ones(2)}, tmp_path / "f.pt")

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_save({"a": Unpicklable()}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]


def test_files_get_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    from rl.runs import write_json

    old = os.umask(0o022)
    try:
        path = save_checkpoint({"model": {}}, tmp_path / "ck.pt")
        data = write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # mkstemp alone gives 0600
    assert stat.S_IMODE(data.stat().st_mode) == 0o644


def test_a_foreign_pickle_is_refused_in_one_line_without_torchs_warning(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    path = tmp_path / "plain.pt"
    path.write_bytes(pickle.dumps({"model": _Exploit(tmp_path / "pwned")}, protocol=4))
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)
    assert not [w for w in recwarn if "pickle protocol" in str(w.message)]


def test_a_damaged_zip_directory_is_one_line(tmp_path: Path) -> None:
    path = save_checkpoint({"model": {"w": torch.zeros(3)}}, tmp_path / "ck.pt")
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")  # the central directory's first entry
    data[at : at + 4] = b"XXXX"
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_damaged_bytes_inside_a_checkpoint_are_refused_not_loaded(tmp_path: Path) -> None:
    path = save_checkpoint({"model": {"w": torch.ones(4096)}}, tmp_path / "ck.pt")
    data = bytearray(path.read_bytes())
    start = data.index(b"\x00\x00\x80\x3f")  # the first 1.0f of the stored weights
    data[start : start + 64] = bytes(64)  # zeroed, as a bad sector or a broken copy would
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="fails its CRC check"):
        load_checkpoint(path)
    # A resume always reads latest.pt: it says how to continue from another checkpoint.
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    path.rename(tmp_path / "run" / "checkpoints" / "latest.pt")
    with pytest.raises(
        CheckpointError, match=r"a step_\*\.pt snapshot; to continue from one, copy"
    ):
        load_resume_checkpoint(tmp_path / "run")
    # With snapshots, it names the newest, for a damaged latest.pt and for a missing one.
    for step in (512, 1024):
        save_checkpoint({"model": {}}, tmp_path / "run" / "checkpoints" / f"step_{step:09d}.pt")
    newest = r"to continue from its newest snapshot \(step 1,024\), copy .*step_000001024\.pt over"
    with pytest.raises(CheckpointError, match=f"fails its CRC check .*; {newest}"):
        load_resume_checkpoint(tmp_path / "run")
    (tmp_path / "run" / "checkpoints" / "latest.pt").unlink()
    with pytest.raises(CheckpointError, match=f"holds no checkpoints/latest.pt; {newest}"):
        load_resume_checkpoint(tmp_path / "run")
    # A sound file that this version cannot read: a snapshot would not read either.
    atomic_save({"format": FORMAT, "format_version": FORMAT_VERSION + 1, "model": {}}, path)
    path.rename(tmp_path / "run" / "checkpoints" / "latest.pt")
    with pytest.raises(CheckpointError, match=r"upgrade rl-sandbox$"):
        load_resume_checkpoint(tmp_path / "run")


def test_a_full_disk_is_an_os_error_that_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = atomic_save({"a": torch.ones(2)}, tmp_path / "f.pt")

    def full(*args: object, **kwargs: object) -> None:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(OSError, match=r"cannot write .*f\.pt .*is the disk full\?"):
        atomic_save({"a": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]


def test_a_demonstrations_file_is_named_as_such(tmp_path: Path) -> None:
    from agents import bc

    path = bc.save_demos(
        tmp_path / "me.pt", torch.rand(3, 111), torch.zeros(3, dtype=torch.long), bc.DOG_ENV_ID
    )
    with pytest.raises(CheckpointError, match=r"is a demonstrations file .*bc --demos .*me\.pt"):
        load_checkpoint(path)
