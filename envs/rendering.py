"""Small pygame helpers shared by the sandbox's renderers.

pygame is imported lazily (:func:`import_pygame`), so the environments import, step and train
without it. Frames are drawn on off-screen ``pygame.Surface`` objects, which need no display;
only ``render_mode="human"`` opens a :class:`Window`.

pygame's display subsystem is process-global: one env calling ``pygame.display.quit()`` (as
Gymnasium's own classic-control envs do in ``close()``) shuts every other env's window. A
:class:`Window` instead counts the open windows and quits the display only when the last closes.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

INSTALL_HINT = (
    "rendering needs pygame: pip install pygame-ce  "
    "(the `pygame-ce` distribution imports as `pygame`; do not install `pygame` alongside it)"
)

# Human windows open in this process; the display is initialised while this is > 0.
_open_windows = 0
# Bumped each time pygame's display is initialised: a window opened under an older one was
# destroyed with that display (another library quit it) and must open again.
_display_generation = 0


def import_pygame() -> ModuleType:
    """Import and return ``pygame``, or raise an ``ImportError`` that says how to install it."""
    try:
        import pygame
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return pygame


# pygame's bundled fonts made so far, by (size, bold): see font().
_FONTS: dict[tuple[int, bool], Any] = {}


def font(size: int, bold: bool = False) -> Any:
    """pygame's bundled font at ``size`` points, made once and kept: the same glyphs (accents,
    ñ, ¡, the minus sign) on every machine, no system fonts.

    A font made before ``pygame.quit()`` is dead (Gymnasium's classic-control envs call it in
    ``close()``), so one is made again after the font module restarts.
    """
    pygame = import_pygame()
    if not pygame.font.get_init():
        pygame.font.init()
        _FONTS.clear()
    made = _FONTS.get((size, bold))
    if made is not None:
        try:
            made.get_height()
        except pygame.error:  # The font module was quit and started again by someone else.
            _FONTS.clear()
            made = None
    if made is None:
        made = _FONTS[(size, bold)] = pygame.font.Font(None, size)
        made.set_bold(bold)
    return made


def format_number(value: float, signed: bool = True) -> str:
    """``+1.25`` / ``−0.10`` with a true minus sign, as a number is drawn on screen; a value that
    rounds to zero is ``+0.00`` (never ``−0.00``: a return of -1e-17 is a sum of float rewards,
    not a loss) and one that is not finite is ``—``."""
    if not math.isfinite(value):
        return "—"
    value = round(value, 2) + 0.0  # + 0.0 turns -0.0 into 0.0
    text = f"{value:+.2f}" if signed else f"{value:.2f}"
    return text.replace("-", "−")


def surface_to_array(surface: Any) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 copy of a ``pygame.Surface`` (pygame indexes pixels ``(x, y)``)."""
    pygame = import_pygame()
    return np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))


def new_canvas(width: int, height: int, color: tuple[int, int, int] = (255, 255, 255)) -> Any:
    """An off-screen ``pygame.Surface`` of ``width x height`` filled with ``color``."""
    pygame = import_pygame()
    canvas = pygame.Surface((width, height))
    canvas.fill(color)
    return canvas


def _init_display(pygame: Any) -> None:
    global _display_generation
    pygame.display.init()
    _display_generation += 1


class Window:
    """A ``render_mode="human"`` window that can coexist with other open windows.

    With pygame-ce >= 2.5 each window is its own ``pygame.Window``; on older pygame the process
    has a single display surface, which every open :class:`Window` shares. Either way the
    display is quit only when the last :class:`Window` closes.

    Args:
        title: the window's caption.
        size: ``(width, height)`` in pixels.
        fps: frames per second that :meth:`show` paces to (0 for no pacing).
    """

    def __init__(self, title: str, size: tuple[int, int], fps: float) -> None:
        global _open_windows
        pygame = import_pygame()
        if _open_windows == 0 or not pygame.display.get_init():
            _init_display(pygame)
        self._pygame = pygame
        self.title = title
        self.size = size
        try:
            self._open()
        except pygame.error:
            if _open_windows == 0:
                pygame.display.quit()
            raise
        _open_windows += 1
        self.fps = fps
        self._clock = pygame.time.Clock()
        self.is_open = True

    def _open(self) -> None:
        pygame = self._pygame
        self._generation = _display_generation
        if hasattr(pygame, "Window"):
            self._window: Any = pygame.Window(self.title, self.size)
        else:  # pragma: no cover - pygame < 2.5 has one display surface per process.
            self._window = None
            pygame.display.set_mode(self.size)
            pygame.display.set_caption(self.title)

    def show(self, frame: np.ndarray) -> None:
        """Draw an ``(H, W, 3)`` uint8 frame, process window events and wait for the next tick."""
        if not self.is_open:
            raise RuntimeError("this window was closed; create a new env to render again")
        pygame = self._pygame
        # Someone else quit pygame's display (closing one of Gymnasium's classic-control envs
        # does), and with it every window: open this one again rather than fail on this frame.
        if not pygame.display.get_init():
            _init_display(pygame)
        if self._generation != _display_generation:
            self._open()
        screen = (
            self._window.get_surface() if self._window is not None else pygame.display.get_surface()
        )
        pygame.surfarray.blit_array(screen, np.asarray(frame).transpose(1, 0, 2))
        if self._window is not None:
            self._window.flip()
        else:  # pragma: no cover
            pygame.display.flip()
        # Pumping keeps the OS from marking the window unresponsive; events are process-global.
        pygame.event.pump()
        if self.fps:
            self._clock.tick(self.fps)

    def close(self) -> None:
        """Close this window (idempotent); quit pygame's display when no other window is open."""
        global _open_windows
        if not self.is_open:
            return
        self.is_open = False
        if self._window is not None:
            self._window.destroy()
            self._window = None
        _open_windows -= 1
        if _open_windows == 0:
            self._pygame.display.quit()
