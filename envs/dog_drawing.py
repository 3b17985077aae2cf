"""Pygame drawing for DogTraining: the house, the dog, its bladder and its trainer's reactions.

Everything here turns a plain :class:`Scene` (Python values, no tensors) into an ``(H, W, 3)``
uint8 frame; pygame is imported lazily (:mod:`envs.rendering`) so the env runs without it, and
the off-screen surface needs no display.

The words drawn in the frame (status bar, the trainer's speech bubbles) exist in English and
Spanish; the env draws in English unless a caller (``rl watch --lang es``) wraps its rendering in
:func:`language`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from envs.rendering import font, format_number, import_pygame, new_canvas, surface_to_array

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


WORDS: dict[str, dict[str, str]] = {
    "en": {
        "step": "Step {steps}",
        "return": "Return {value}",
        "rewards": "rewards: {scheme}",
        "bladder": "Bladder",
        "can_go": "can go",
        "good_dog": "Good dog!",
        "no_outside": "No! Outside!",
        "accident_no": "Accident! No!",
        "oops": "oops...",
        "off_sofa": "Off the sofa!",
    },
    "es": {
        "step": "Paso {steps}",
        "return": "Retorno {value}",
        "rewards": "recompensas: {scheme}",
        "bladder": "Vejiga",
        "can_go": "ya puede",
        "good_dog": "¡Buen perro!",
        "no_outside": "¡No! ¡Fuera!",
        "accident_no": "¡Accidente! ¡No!",
        "oops": "uy...",
        "off_sofa": "¡Baja del sofá!",
    },
}
_language = "en"  # What draw_frame writes in; see language().


@contextmanager
def language(lang: str) -> Iterator[None]:
    """Draw the frame's words in ``lang`` (a key of :data:`WORDS`) inside this block.

    The env builds its :class:`Scene` itself and knows nothing of who watches it, so the
    viewer (``rl watch --lang es``) chooses the words around ``env.render()``.
    """
    global _language
    if lang not in WORDS:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(WORDS)}")
    previous, _language = _language, lang
    try:
        yield
    finally:
        _language = previous


def _word(key: str, **values: Any) -> str:
    return WORDS[_language][key].format(**values)


@dataclass(frozen=True)
class Scene:
    """What one frame shows, in plain Python values."""

    tiles: list[list[int]]
    row: int
    col: int
    bladder: float  # 0 empty .. 1 full
    relief_mark: float  # the level from which relieve succeeds (DogParams.relief_mark)
    facing_left: bool
    steps: int
    episode_return: float
    event: int  # EVENT_* of the last step
    reward: float  # reward of the last step
    scheme: str


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
    label = font(26).render(text, True, _COLOURS["white"])
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
    small, big = font(22), font(28)
    dim = (180, 184, 200)
    # Laid out left to right from the words' widths: Spanish words are longer than English.
    step = big.render(_word("step", steps=scene.steps), True, _COLOURS["text"])
    surface.blit(step, (12, 12))
    ret = big.render(
        _word("return", value=format_number(scene.episode_return)), True, _COLOURS["text"]
    )
    x = max(118, 12 + step.get_width() + 22)
    surface.blit(ret, (x, 12))
    x += ret.get_width() + 14
    if scene.steps > 0:  # the last step's reward, coloured by sign
        colour = (
            _COLOURS["good"] if scene.reward > 0 else _COLOURS["bad"] if scene.reward < 0 else None
        )
        text = small.render(f"({format_number(scene.reward)})", True, colour or dim)
        surface.blit(text, (x, 16))
        x += text.get_width() + 14
    # The scheme on the right, shortened to its name when the whole label would not fit.
    for label in (_word("rewards", scheme=scene.scheme), scene.scheme):
        scheme = small.render(label, True, dim)
        if width - 12 - scheme.get_width() >= x:
            surface.blit(scheme, (width - scheme.get_width() - 12, 16))
            break
    # Bladder meter: green while low, amber once the dog may relieve, red when nearly full.
    name = small.render(_word("bladder"), True, _COLOURS["text"])
    surface.blit(name, (12, 52))
    left = max(86, 12 + name.get_width() + 12)
    bar = pygame.Rect(left, 48, width - left - 14, 22)
    pygame.draw.rect(surface, (70, 74, 90), bar, border_radius=6)
    level = min(max(scene.bladder, 0.0), 1.0)
    if level < scene.relief_mark:
        colour = (92, 190, 96)
    else:
        colour = (236, 180, 60) if level < 0.85 else (226, 72, 60)
    if level > 0:
        fill = pygame.Rect(bar.x, bar.y, max(int(bar.w * level), 8), bar.h)
        pygame.draw.rect(surface, colour, fill, border_radius=6)
    mark = bar.x + int(bar.w * scene.relief_mark)
    pygame.draw.line(surface, _COLOURS["white"], (mark, bar.y - 3), (mark, bar.bottom + 2), 2)
    # "can go" on a dark tag clear of the line: readable on any fill (green, amber, red, grey),
    # and see-through, so the fill moving past the line shows under it.
    # An en space: the font's own is 3 px at this size, and "ya puede" read as one word.
    tag = font(18).render(_word("can_go").replace(" ", "\u2002"), True, _COLOURS["white"])
    box = marker_tag_rect(mark, tag.get_size(), bar)
    shade = pygame.Surface(box.size, pygame.SRCALPHA)
    pygame.draw.rect(shade, (*_COLOURS["hud"], 150), shade.get_rect(), border_radius=4)
    surface.blit(shade, box.topleft)
    surface.blit(tag, (box.x + 4, box.y + (box.h - tag.get_height()) // 2 + 1))
    pygame.draw.rect(surface, (200, 204, 220), bar, 2, border_radius=6)


def marker_tag_rect(mark: int, size: tuple[int, int], bar: Any) -> Any:
    """Where the threshold's tag goes: inside the bar, 5 px right of the line at ``mark``
    (left of it when the bar ends first), never over the line."""
    pygame = import_pygame()
    w, h = size[0] + 8, min(size[1] + 2, bar.h - 4)
    x = mark + 5 if mark + 5 + w <= bar.right - 3 else mark - 5 - w
    return pygame.Rect(x, bar.y + (bar.h - h) // 2, w, h)


# How far the dog sprite reaches from its body centre, in px (facing right; mirrored when
# facing left): the tail behind, the nose in front, the ear above, the paws below.
DOG_BEHIND, DOG_AHEAD, DOG_ABOVE, DOG_BELOW = 25, 35, 23, 21


def dog_centre(scene: Scene, width: int, height: int) -> tuple[int, int]:
    """The dog's body centre in the frame: its tile's centre, moved just enough for the whole
    sprite (wider than a tile) to stay inside the house, e.g. in the rightmost garden column."""
    cx, cy = scene.col * TILE + TILE // 2, HUD + scene.row * TILE + TILE // 2 + 4
    left, right = (DOG_AHEAD, DOG_BEHIND) if scene.facing_left else (DOG_BEHIND, DOG_AHEAD)
    cx = min(max(cx, left), width - 1 - right)
    cy = min(max(cy, HUD + DOG_ABOVE), height - 1 - DOG_BELOW)
    return cx, cy


def frame_size(size: int) -> tuple[int, int]:
    """``(width, height)`` in pixels of the frame of a ``size`` x ``size`` house."""
    return size * TILE, HUD + size * TILE


def draw_frame(scene: Scene) -> np.ndarray:
    """Draw ``scene`` to an ``(H, W, 3)`` uint8 array (no window needed)."""
    pygame = import_pygame()
    size = len(scene.tiles)
    width, height = frame_size(size)
    surface = new_canvas(width, height)
    for r in range(size):
        for c in range(size):
            _draw_tile(pygame, surface, scene.tiles, r, c)
    cx, cy = dog_centre(scene, width, height)
    # Anything that still reaches past the house is cut at its edge, not drawn over the bar.
    surface.set_clip(pygame.Rect(0, HUD, width, height - HUD))
    if scene.event != EVENT_NONE:  # the puddle it just made
        pygame.draw.ellipse(surface, _COLOURS["puddle"], (cx - 20, cy + 6, 30, 12))
    _draw_dog(pygame, surface, cx, cy, scene.facing_left)
    surface.set_clip(None)
    # The trainer's reaction is the reward itself: a learner sees what the scheme teaches.
    if scene.event == EVENT_RELIEF_OUTDOORS and scene.reward > 0:
        _draw_bubble(pygame, surface, _word("good_dog"), _COLOURS["good"], cx, cy - 24, bone=True)
    elif scene.event != EVENT_NONE and scene.reward < 0:
        key = "accident_no" if scene.event == EVENT_ACCIDENT else "no_outside"
        _draw_bubble(pygame, surface, _word(key), _COLOURS["bad"], cx, cy - 24)
    elif scene.event != EVENT_NONE:
        text = _word("oops") if scene.event == EVENT_ACCIDENT else "..."
        _draw_bubble(pygame, surface, text, _COLOURS["neutral"], cx, cy - 24)
    elif scene.tiles[scene.row][scene.col] == SOFA and scene.reward < 0:
        _draw_bubble(pygame, surface, _word("off_sofa"), _COLOURS["bad"], cx, cy - 24)
    _draw_hud(pygame, surface, scene)
    return surface_to_array(surface)
