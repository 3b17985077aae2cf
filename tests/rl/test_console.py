"""Output to a console or file without UTF-8: plain stand-ins, never a UnicodeEncodeError."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from rl.console import plain_where_needed


def test_streams_without_the_characters_write_plain_stand_ins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ascii_out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    latin_err = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", ascii_out)
    monkeypatch.setattr(sys, "stderr", latin_err)
    plain_where_needed()
    text = "→ runs/x: 1.28 ± 0.13 (≥ 1), −0.5, ¡Sí, señor! x² … ∈ 😀"
    for stream in (ascii_out, latin_err):
        stream.write(text)
        stream.flush()
    assert ascii_out.buffer.getvalue().decode("ascii") == (
        "-> runs/x: 1.28 +/- 0.13 (>= 1), -0.5, !Si, senor! x2 ... in ?"
    )
    # cp1252 has ±, ¡, í, ñ, ² and …: only what it lacks is replaced.
    assert latin_err.buffer.getvalue().decode("cp1252") == (
        "-> runs/x: 1.28 ± 0.13 (>= 1), -0.5, ¡Sí, señor! x² … in ?"
    )


def test_a_utf8_stream_is_left_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    monkeypatch.setattr(sys, "stdout", out)
    plain_where_needed()
    assert out.errors == "strict"


@pytest.mark.parametrize("module", ["rl", "agents.ppo"])
def test_help_with_arrows_on_an_ascii_console(module: str) -> None:
    """`rl eval --help` holds "±" and `python -m agents.ppo --help` "→": both raised before."""
    argv = [sys.executable, "-m", module, *(["eval"] if module == "rl" else []), "--help"]
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    done = subprocess.run(argv, capture_output=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr.decode("ascii", "replace")
    assert (b"+/-" if module == "rl" else b"->") in done.stdout
    assert b"Traceback" not in done.stderr
    done.stdout.decode("ascii")  # nothing but ASCII
