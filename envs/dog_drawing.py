"""Pygame drawing for DogTraining: the house, the dog, its bladder and its trainer's reactions.

Everything here turns a plain :class:`Scene` (Python values, no tensors) into an ``(H, W, 3)``
uint8 frame; pygame is imported lazily (:mod:`envs.rendering`) so the env runs without it, and
the off-screen surface needs no display.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.rendering import import_pygame, new_canvas, surface_to_array

TILE = 48  # pixels per grid tile
HUD = 84  # pixels of status bar above the house
# Tile codes and event codes, as in envs.dog_training (not imported: that module imports this).
WALL, FLOOR, SOFA, DOOR, GARDEN = range(5)
EVENT_NONE, EVENT_RELIEF_OUTDOORS, EVENT_RELIEF_INDOORS, EVENT_ACCIDENT = range(4)

_COLOURS = {
    "hud": (38, 42, 56),
    "text": (236, 236, 240),
    "wall": (112, 84, 74),
    "mortar": (86, 62, 55),
    "floor": (222, 196, 150),
    "plank": (198, 170, 124),
    "grass": (104, 170, 74),
    "blade": (74, 138, 52),
    "door": (150, 96, 48),
    "door_dark": (112, 68, 30),
    "sofa": (170, 62, 84),
    "sofa_dark": (128, 40, 60),
    "cushion": (196, 88, 108),
    "fur": (196, 132, 68),
    "fur_dark": (126, 78, 36),
    "puddle": (238, 214, 74),
    "good": (68, 168, 86),
    "bad": (214, 62, 62),
    "neutral": (150, 150, 160),
    "bone": (250, 246, 230),
    "white": (255, 255, 255),
    "black": (24, 24, 28),
}


@dataclass(frozen=True)
class Scene:
    """What one frame shows, in plain Python values."""

    tiles: list[list[int]]
    row: int
    col: int
    bladder: float  # 0 empty .. 1 full
    min_relief_level: float
    facing_left: bool
    steps: int
    episode_return: float
    event: int  # EVENT_* of the last step
    reward: float  # reward of the last step
    scheme: str


_FONTS: dict[int, Any] = {}


def _font(pygame: Any, size: int) -> Any:
    if not pygame.font.get_init():
        # Someone called pygame.quit() (Gymnasium's classic-control envs do on close): every
        # cached Font is dead now, so drop them with the old font module.
        pygame.font.init()
        _FONTS.clear()
    if size not in _FONTS:
        _FONTS[size] = pygame.font.Font(None, size)  # pygame's bundled font: no system fonts
    return _FONTS[size]


def _noise(r: int, c: int, k: int) -> int:
    """A fixed pseudo-random number per tile, so grass and planks do not flicker."""
    return (r * 7919 + c * 104729 + k * 15485863) % 1000


def _draw_tile(pygame: Any, surface: Any, tiles: list[list[int]], r: int, c: int) -> None:
    x, y = c * TILE, HUD + r * TILE
    rect = pygame.Rect(x, y, TILE, TILE)
    tile = tiles[r][c]
    if tile == WALL:
        pygame.draw.rect(surface, _COLOURS["wall"], rect)
        for row in range(4):  # staggered bricks
            by = y + row * TILE // 4
            pygame.draw.line(surface, _COLOURS["mortar"], (x, by), (x + TILE, by), 2)
            offset = (TILE // 4) if (row + r) % 2 else 0
            for bx in range(x + offset, x + TILE, TILE // 2):
                pygame.draw.line(surface, _COLOURS["mortar"], (bx, by), (bx, by + TILE // 4), 2)
        return
    if tile == GARDEN:
        pygame.draw.rect(surface, _COLOURS["grass"], rect)
        for k in range(7):
            bx = x + 3 + _noise(r, c, k) % (TILE - 6)
            by = y + 6 + _noise(r, c, k + 9) % (TILE - 10)
            pygame.draw.line(surface, _COLOURS["blade"], (bx, by), (bx - 2, by - 6), 2)
            pygame.draw.line(surface, _COLOURS["blade"], (bx, by), (bx + 2, by - 5), 2)
        if _noise(r, c, 3) % 5 == 0:  # the odd flower
            fx, fy = x + 10 + _noise(r, c, 4) % 28, y + 10 + _noise(r, c, 5) % 28
            for dx, dy in ((-3, 0), (3, 0), (0, -3), (0, 3)):
                pygame.draw.circle(surface, (250, 240, 250), (fx + dx, fy + dy), 3)
            pygame.draw.circle(surface, (250, 204, 60), (fx, fy), 2)
        return
    pygame.draw.rect(surface, _COLOURS["floor"], rect)
    for k in range(1, 4):  # planks
        pygame.draw.line(surface, _COLOURS["plank"], (x, y + k * TILE // 4), (x + TILE, y + k * 12))
    if tile == DOOR:
        pygame.draw.rect(surface, _COLOURS["door"], rect.inflate(-6, -6), border_radius=4)
        pygame.draw.rect(surface, _COLOURS["door_dark"], rect.inflate(-6, -6), 3, border_radius=4)
        pygame.draw.circle(surface, (240, 200, 80), (x + TILE - 13, y + TILE // 2), 4)
    elif tile == SOFA:
        _draw_sofa_tile(pygame, surface, tiles, r, c)


def _draw_sofa_tile(pygame: Any, surface: Any, tiles: list[list[int]], r: int, c: int) -> None:
    """One seat of a sofa; the backrest goes against the nearest wall, armrests at the ends."""
    size = len(tiles)

    def tile_at(rr: int, cc: int) -> int:
        return tiles[rr][cc] if 0 <= rr < size and 0 <= cc < size else WALL

    x, y = c * TILE, HUD + r * TILE
    horizontal = SOFA in (tile_at(r, c - 1), tile_at(r, c + 1))
    if horizontal:
        # Backrest towards the wall behind the seat: up unless the wall is below.
        back_up = tile_at(r + 1, c) != WALL
        body = pygame.Rect(x, y + 3, TILE, TILE - 6)
        back = pygame.Rect(x, y + 3 if back_up else y + TILE - 17, TILE, 14)
        seat = pygame.Rect(x + 3, y + 15 if back_up else y + 6, TILE - 6, TILE - 24)
        arms = [
            pygame.Rect(ax, y + 3, 10, TILE - 6)
            for joined, ax in (
                (tile_at(r, c - 1) == SOFA, x),
                (tile_at(r, c + 1) == SOFA, x + TILE - 10),
            )
            if not joined
        ]
    else:
        back_left = tile_at(r, c + 1) != WALL
        body = pygame.Rect(x + 3, y, TILE - 6, TILE)
        back = pygame.Rect(x + 3 if back_left else x + TILE - 17, y, 14, TILE)
        seat = pygame.Rect(x + 15 if back_left else x + 6, y + 3, TILE - 24, TILE - 6)
        arms = [
            pygame.Rect(x + 3, ay, TILE - 6, 10)
            for joined, ay in (
                (tile_at(r - 1, c) == SOFA, y),
                (tile_at(r + 1, c) == SOFA, y + TILE - 10),
            )
            if not joined
        ]
    pygame.draw.rect(surface, _COLOURS["sofa"], body)
    pygame.draw.rect(surface, _COLOURS["sofa_dark"], back, border_radius=4)
    pygame.draw.rect(surface, _COLOURS["cushion"], seat, border_radius=6)
    pygame.draw.rect(surface, _COLOURS["sofa_dark"], seat, 1, border_radius=6)
    for arm in arms:
        pygame.draw.rect(surface, _COLOURS["sofa_dark"], arm, border_radius=5)


def _draw_dog(pygame: Any, surface: Any, cx: int, cy: int, facing_left: bool) -> None:
    """A side-view dog from primitives: tail, legs, body, head, ear, eye, nose."""
    d = -1 if facing_left else 1  # mirror horizontally
    fur, dark = _COLOURS["fur"], _COLOURS["fur_dark"]

    def p(dx: float, dy: float) -> tuple[int, int]:  # a point relative to the body centre
        return round(cx + d * dx), round(cy + dy)

    def box(dx: float, dy: float, w: float, h: float) -> tuple[int, int, int, int]:
        left = cx + dx if d > 0 else cx - dx - w  # mirror the box, not just its corner
        return round(left), round(cy + dy), round(w), round(h)

    pygame.draw.line(surface, dark, p(-15, -1), p(-22, -14), 5)  # tail, up: happy
    for lx in (-12, -5, 6, 13):  # legs, with paws
        pygame.draw.line(surface, dark, p(lx, 4), p(lx, 18), 5)
        pygame.draw.circle(surface, dark, p(lx, 18), 3)
    pygame.draw.ellipse(surface, fur, box(-19, -9, 38, 19))  # body
    pygame.draw.ellipse(surface, (236, 190, 130), box(-10, 0, 20, 8))  # belly
    pygame.draw.ellipse(surface, dark, box(-12, -8, 11, 8))  # a patch on the back
    pygame.draw.circle(surface, fur, p(17, -12), 11)  # head
    pygame.draw.ellipse(surface, (236, 190, 130), box(20, -12, 13, 10))  # snout
    pygame.draw.circle(surface, _COLOURS["black"], p(32, -9), 3)  # nose
    pygame.draw.ellipse(surface, dark, box(8, -21, 9, 19))  # floppy ear
    pygame.draw.circle(surface, _COLOURS["white"], p(20, -16), 4)  # eye
    pygame.draw.circle(surface, _COLOURS["black"], p(21, -16), 2)
    pygame.draw.ellipse(surface, (230, 90, 110), box(24, -4, 5, 6))  # tongue


def _draw_bone(pygame: Any, surface: Any, cx: int, cy: int) -> None:
    colour, edge = _COLOURS["bone"], (150, 130, 100)
    for dx in (-9, 9):
        for dy in (-4, 4):
            pygame.draw.circle(surface, edge, (cx + dx, cy + dy), 5)
            pygame.draw.circle(surface, colour, (cx + dx, cy + dy), 4)
    pygame.draw.rect(surface, colour, (cx - 9, cy - 3, 18, 7))


def _draw_bubble(
    pygame: Any, surface: Any, text: str, colour: tuple, cx: int, cy: int, bone: bool = False
) -> None:
    """A speech bubble whose tail points at (cx, cy), kept inside the house area."""
    label = _font(pygame, 26).render(text, True, _COLOURS["white"])
    extra = 34 if bone else 0  # room for the treat
    w, h = label.get_width() + 18 + extra, max(label.get_height() + 10, 28)
    x = min(max(cx - w // 2, 4), surface.get_width() - w - 4)
    y = max(cy - h - 16, HUD + 4)
    pygame.draw.polygon(surface, colour, [(cx - 7, y + h - 2), (cx + 7, y + h - 2), (cx, cy)])
    pygame.draw.rect(surface, colour, (x, y, w, h), border_radius=10)
    pygame.draw.rect(surface, _COLOURS["white"], (x, y, w, h), 2, border_radius=10)
    surface.blit(label, (x + 9, y + (h - label.get_height()) // 2 + 1))
    if bone:
        _draw_bone(pygame, surface, x + w - 22, y + h // 2)


def _draw_hud(pygame: Any, surface: Any, scene: Scene) -> None:
    width = surface.get_width()
    pygame.draw.rect(surface, _COLOURS["hud"], (0, 0, width, HUD))
    small, big = _font(pygame, 22), _font(pygame, 28)
    surface.blit(big.render(f"Step {scene.steps}", True, _COLOURS["text"]), (12, 12))
    surface.blit(
        big.render(f"Return {scene.episode_return:+.2f}", True, _COLOURS["text"]), (118, 12)
    )
    if scene.steps > 0:  # the last step's reward, coloured by sign
        colour = (
            _COLOURS["good"] if scene.reward > 0 else _COLOURS["bad"] if scene.reward < 0 else None
        )
        text = small.render(f"({scene.reward:+.2f})", True, colour or (180, 184, 200))
        surface.blit(text, (272, 16))
    scheme = small.render(f"rewards: {scene.scheme}", True, (180, 184, 200))
    surface.blit(scheme, (width - scheme.get_width() - 12, 16))
    # Bladder meter: green while low, amber once the dog may relieve, red when nearly full.
    surface.blit(small.render("Bladder", True, _COLOURS["text"]), (12, 52))
    bar = pygame.Rect(86, 48, width - 100, 22)
    pygame.draw.rect(surface, (70, 74, 90), bar, border_radius=6)
    level = min(max(scene.bladder, 0.0), 1.0)
    if level < scene.min_relief_level:
        colour = (92, 190, 96)
    else:
        colour = (236, 180, 60) if level < 0.85 else (226, 72, 60)
    if level > 0:
        fill = pygame.Rect(bar.x, bar.y, max(int(bar.w * level), 8), bar.h)
        pygame.draw.rect(surface, colour, fill, border_radius=6)
    mark = bar.x + int(bar.w * scene.min_relief_level)
    pygame.draw.line(surface, _COLOURS["white"], (mark, bar.y - 3), (mark, bar.bottom + 2), 2)
    tag = _font(pygame, 18).render("can go", True, (200, 204, 220))
    surface.blit(tag, (mark + 5, bar.y + (bar.h - tag.get_height()) // 2 + 1))
    pygame.draw.rect(surface, (200, 204, 220), bar, 2, border_radius=6)


def frame_size(size: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of the frame of a ``size`` x ``size`` house."""
    return size * TILE, HUD + size * TILE


def draw_frame(scene: Scene) -> np.ndarray:
    """Draw ``scene`` to an ``(H, W, 3)`` uint8 array (no window needed)."""
    pygame = import_pygame()
    size = len(scene.tiles)
    surface = new_canvas(*frame_size(size))
    for r in range(size):
        for c in range(size):
            _draw_tile(pygame, surface, scene.tiles, r, c)
    cx, cy = scene.col * TILE + TILE // 2, HUD + scene.row * TILE + TILE // 2 + 4
    if scene.event != EVENT_NONE:  # the puddle it just made
        pygame.draw.ellipse(surface, _COLOURS["puddle"], (cx - 20, cy + 6, 30, 12))
    _draw_dog(pygame, surface, cx, cy, scene.facing_left)
    # The trainer's reaction is the reward itself: a learner sees what the scheme teaches.
    if scene.event == EVENT_RELIEF_OUTDOORS and scene.reward > 0:
        _draw_bubble(pygame, surface, "Good dog!", _COLOURS["good"], cx, cy - 24, bone=True)
    elif scene.event != EVENT_NONE and scene.reward < 0:
        text = "Accident! No!" if scene.event == EVENT_ACCIDENT else "No! Outside!"
        _draw_bubble(pygame, surface, text, _COLOURS["bad"], cx, cy - 24)
    elif scene.event != EVENT_NONE:
        text = "oops..." if scene.event == EVENT_ACCIDENT else "..."
        _draw_bubble(pygame, surface, text, _COLOURS["neutral"], cx, cy - 24)
    elif scene.tiles[scene.row][scene.col] == SOFA and scene.reward < 0:
        _draw_bubble(pygame, surface, "Off the sofa!", _COLOURS["bad"], cx, cy - 24)
    _draw_hud(pygame, surface, scene)
    return surface_to_array(surface)
