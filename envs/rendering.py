"""Small pygame helpers shared by the sandbox's renderers.

pygame is imported lazily (:func:`import_pygame`), so the environments import, step and train
without it. Frames are drawn on off-screen ``pygame.Surface`` objects, which need no display;
only ``render_mode="human"`` opens a :class:`Window`.

pygame's display subsystem is process-global: one env calling ``pygame.display.quit()`` (as
Gymnasium's own classic-control envs do in ``close()``) shuts every other env's window. A
:class:`Window` instead counts the open windows and quits the display only when the last closes,
and opens again when someone else quit the display under it.
"""

from __future__ import annotations

import math
import weakref
from types import ModuleType
from typing import Any

import numpy as np

INSTALL_HINT = (
    "rendering needs pygame: pip install pygame-ce  "
    "(the `pygame-ce` distribution imports as `pygame`; do not install `pygame` alongside it)"
)

# The human windows open in this process; the display is initialised while there are any.
_windows: weakref.WeakSet[Window] = weakref.WeakSet()
_quit_hook_registered = False


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


def _start_display(pygame: Any) -> None:
    """Initialise pygame's display if it is down, forgetting the windows that went with it."""
    global _quit_hook_registered
    if not pygame.display.get_init():
        _forget_windows()
        pygame.display.init()
    # pygame runs its quit functions in pygame.quit() (Gymnasium's classic-control envs call it
    # in close()) and then drops them. That is when the windows die, and another env may start
    # the display again before ours next draw, so they are forgotten there and then.
    if not _quit_hook_registered:
        pygame.register_quit(_on_pygame_quit)
        _quit_hook_registered = True


def _on_pygame_quit() -> None:
    global _quit_hook_registered
    _quit_hook_registered = False
    _forget_windows()


def _forget_windows() -> None:
    """Drop every window's handle once pygame's display is gone, as it takes its windows with it.

    SDL frees a window when its display quits, yet the ``pygame.Window`` keeps the stale pointer
    and destroys it when collected. SDL reuses freed memory, so a window opened later can sit at
    that address: the late destroy closed it ("Invalid window" on the next frame). ``destroy()``
    now, while the display is down, is a no-op in SDL and clears the pointer.
    """
    for window in list(_windows):
        window._forget()


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
        pygame = import_pygame()
        _start_display(pygame)
        self._pygame = pygame
        self._own_windows = hasattr(pygame, "Window")  # pygame < 2.5: one display surface
        self.title = title
        self.size = size
        self._window: Any = None
        try:
            self._open()
        except pygame.error:
            if not _windows:
                pygame.display.quit()
            raise
        _windows.add(self)
        self.fps = fps
        self._clock = pygame.time.Clock()
        self.is_open = True

    def _open(self) -> None:
        pygame = self._pygame
        if self._own_windows:
            self._window = pygame.Window(self.title, self.size)
        else:  # pragma: no cover - pygame < 2.5 has one display surface per process.
            self._window = pygame.display.set_mode(self.size)
            pygame.display.set_caption(self.title)

    def _forget(self) -> None:
        if self._own_windows and self._window is not None:
            self._window.destroy()
        self._window = None

    def show(self, frame: np.ndarray) -> None:
        """Draw an ``(H, W, 3)`` uint8 frame, process window events and wait for the next tick."""
        if not self.is_open:
            raise RuntimeError("this window was closed; create a new env to render again")
        pygame = self._pygame
        # Someone else quit pygame's display (closing one of Gymnasium's classic-control envs
        # does), and with it every window: open this one again rather than fail on this frame.
        _start_display(pygame)
        if self._window is None:
            self._open()
        pixels = np.asarray(frame).transpose(1, 0, 2)
        if self._own_windows:
            pygame.surfarray.blit_array(self._window.get_surface(), pixels)
            self._window.flip()
        else:  # pragma: no cover
            pygame.surfarray.blit_array(pygame.display.get_surface(), pixels)
            pygame.display.flip()
        # Pumping keeps the OS from marking the window unresponsive; events are process-global.
        pygame.event.pump()
        if self.fps:
            self._clock.tick(self.fps)

    def close(self) -> None:
        """Close this window (idempotent); quit pygame's display when no other window is open."""
        if not self.is_open:
            return
        self.is_open = False
        self._forget()
        _windows.discard(self)
        if not _windows:
            self._pygame.display.quit()
