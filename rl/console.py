"""Terminal output that a console or file without UTF-8 cannot break.

The CLI writes arrows, minus signs and ``±`` (``→ runs/...``, ``1.28 ± 0.13``). Where stdout is
a file on Windows (cp1252), a Latin-1 locale or ``PYTHONIOENCODING=ascii``, Python raises
``UnicodeEncodeError`` at the first one, after the work is done: the summary and the paths to
the run are lost to a traceback. :func:`plain_where_needed` makes such streams write ``->``,
``-`` and ``+/-`` instead; UTF-8 streams are left as they are.
"""

from __future__ import annotations

import codecs
import sys
import unicodedata

ERRORS = "rl-plain"

# What a character the stream cannot encode is written as; others lose their accents
# (NFKD: "ó" → "o", "²" → "2") or become "?".
_PLAIN = {
    "→": "->", "←": "<-", "↑": "^", "↓": "v", "≥": ">=", "≤": "<=", "±": "+/-", "−": "-",
    "×": "x", "—": "--", "–": "-", "…": "...", "·": ".", "•": "*", "∈": "in", "°": " deg",
    "µ": "u", "«": '"', "»": '"', "¡": "!", "¿": "?",
}  # fmt: skip


def _plain(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    text = exc.object[exc.start : exc.end]
    return "".join(_plain_char(char) for char in text), exc.end


def _plain_char(char: str) -> str:
    if char in _PLAIN:
        return _PLAIN[char]
    ascii_only = unicodedata.normalize("NFKD", char).encode("ascii", "ignore").decode()
    return ascii_only or "?"


codecs.register_error(ERRORS, _plain)


def plain_where_needed() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` write plain stand-ins for the characters their
    encoding lacks (``→`` as ``->``) instead of raising; a UTF-8 stream is left as it is."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        encoding = codecs.lookup(getattr(stream, "encoding", None) or "ascii").name
        if reconfigure is None or encoding.startswith("utf"):
            continue
        reconfigure(errors=ERRORS)
