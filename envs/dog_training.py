"""DogTraining: teach a dog to relieve itself in the garden, and never reward it on the sofa.

The sandbox's signature environment, written once as pure batched torch functions
(:func:`dog_reset`, :func:`dog_step`, :func:`dog_observe` over a :class:`DogState` of ``(N, ...)``
tensors) and exposed as :class:`DogTrainingVectorEnv` (tensors on any device) and
:class:`DogTrainingEnv` (numpy, for ``gymnasium.make``). The reward scheme is a constructor
argument so a learner can compare how treats and scolding shape what the dog learns.

Houses are drawn from a fixed, numbered catalogue: house ``k`` is generated from seed ``k`` and is
the same on every machine and device. ``layout="random"`` uses houses ``layout_offset ..
layout_offset + num_layouts - 1``, so two disjoint sets (e.g. pretrain on 0..99, fine-tune on
100..149) are two offsets. Each row picks its house from the env's ``torch.Generator``, so
``reset(seed=...)`` reproduces houses, start cells and bladder levels.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch
from gymnasium import spaces

from envs.core import TorchSingleEnv, TorchVectorEnv
from envs.dog_drawing import Scene, draw_frame
from envs.rng import integers_from_bits, random_bits
from rl.config import is_int
from rl.device import resolve_device

__all__ = [
    "DEFAULT_REWARD_SCHEME",
    "OBS_SIZE",
    "REWARD_EVENTS",
    "REWARD_PRESETS",
    "SOLVED_MEAN_RETURN",
    "SOLVED_SUCCESS_RATE",
    "DogParams",
    "DogState",
    "DogTrainingEnv",
    "DogTrainingVectorEnv",
    "Houses",
    "dog_observe",
    "dog_reset",
    "dog_step",
    "expert_policy",
    "make_houses",
    "measure_policies",
    "random_policy",
    "resolve_reward_scheme",
    "solved_bar",
]

ENV_ID = "sandbox/DogTraining-v0"
SIZE = 11  # The grid is SIZE x SIZE tiles in every house, so houses stack into one tensor.
WALL, FLOOR, SOFA, DOOR, GARDEN = range(5)
TILE_NAMES = ("wall", "floor", "sofa", "door", "garden")
STAY, UP, DOWN, LEFT, RIGHT, RELIEVE = range(6)
ACTION_NAMES = ("stay", "up", "down", "left", "right", "relieve")
NUM_ACTIONS = 6
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # a larger reward weight is inf in float32
# (row, col) offset of each action; stay and relieve do not move.
_MOVES = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (0, 0))
# Last-event codes kept in the state so a frame can show the treat or the scolding.
EVENT_NONE, EVENT_RELIEF_OUTDOORS, EVENT_RELIEF_INDOORS, EVENT_ACCIDENT = range(4)
_VIEW_CODES = (WALL, SOFA, DOOR, GARDEN)  # One channel each; floor is all zeros.
_NUM_SCALARS = 5  # Observation entries computed per step; the rest come from Houses.features.
_NUM_FLAGS = 6  # outdoors, on sofa, 4 x heading: the 0/1 entries before the view.
_INF = 10_000  # Path length of a tile that cannot reach the garden (never in a valid house).

DEFAULT_HOUSE = (
    "#########GG",
    "#SS.#...#GG",
    "#...#...#GG",
    "#.......#GG",
    "#...#...DGG",
    "##.###.##GG",
    "#.......#GG",
    "#.......#GG",
    "#...SSS.#GG",
    "#.......#GG",
    "#########GG",
)
_CHARS = {"#": WALL, ".": FLOOR, "S": SOFA, "D": DOOR, "G": GARDEN}
LAYOUTS = ("default", "random")
DEFAULT_NUM_LAYOUTS = 1000
MAX_NUM_LAYOUTS = 100_000
"""The most houses ``layout="random"`` may use: each is drawn when the env is made (about half a
millisecond and 16 KB apiece)."""
MAX_HOUSE_NUMBER = 2**64 - 1
"""House ``k`` is drawn from ``torch.Generator().manual_seed(k)``, which takes 64-bit seeds."""

# -- rewards ---------------------------------------------------------------------------------
REWARD_EVENTS = ("relief_outdoors", "relief_indoors", "accident", "on_sofa", "step", "progress")
"""Events a reward scheme prices. ``progress`` is paid per tile of path to the garden gained
(and charged per tile lost), i.e. undiscounted potential-based shaping with potential ``-path
length`` (see the env's "Rewards" section for what that means under a discount)."""

REWARD_PRESETS: dict[str, dict[str, float]] = {
    # Positive reinforcement only: a treat for going in the garden, silence otherwise.
    "treats": {"relief_outdoors": 1.0},
    # Punishment only: nothing for doing it right, "No!" for doing it wrong.
    "scolding_only": {"relief_indoors": -1.0, "accident": -1.0, "on_sofa": -0.1},
    "treats_and_scolding": {
        "relief_outdoors": 1.0,
        "relief_indoors": -1.0,
        "accident": -1.0,
        "on_sofa": -0.1,
    },
    # treats_and_scolding plus a trainer who encourages every step towards the door and a small
    # cost of time: dense enough for PPO to solve it in well under a minute of CPU.
    "coached": {
        "relief_outdoors": 1.0,
        "relief_indoors": -1.0,
        "accident": -1.0,
        "on_sofa": -0.1,
        "step": -0.01,
        "progress": 0.05,
    },
}
DEFAULT_REWARD_SCHEME = "coached"

# Events that may never pay: each would reward the dog for something we must never reward.
_NEVER_POSITIVE = {
    "relief_indoors": "relieving indoors must never be rewarded",
    "accident": "an accident must never be rewarded",
    "on_sofa": "being on the sofa must never be rewarded",
    "step": "a positive step reward would also pay the dog for lying on the sofa",
}

# Relative to the expert, measured with measure_policies() (100 episodes, seed 0, "coached"):
# expert success 1.00, mean return +1.27 on the default house (+1.31 on random houses).
SOLVED_SUCCESS_RATE = 0.9
"""Fraction of reliefs (accidents included) that must happen in the garden, over 100 episodes."""
SOLVED_MEAN_RETURN = 1.0
"""Mean return over 100 episodes under the default ``"coached"`` scheme: ~80 % of the expert's."""


def solved_bar(
    reward_scheme: str | Mapping[str, float] = DEFAULT_REWARD_SCHEME, **_: Any
) -> dict[str, float]:
    """The "solved" bar under ``reward_scheme`` (``rl train`` and ``rl eval`` judge by it).

    The success rate counts in any scheme. A return is counted in its own scheme's units (a
    perfect ``scolding_only`` dog scores 0), so :data:`SOLVED_MEAN_RETURN`, measured under
    ``coached``, applies only to a scheme that pays as ``coached`` does.
    """
    bar = {"success_rate": SOLVED_SUCCESS_RATE}
    if resolve_reward_scheme(reward_scheme) == resolve_reward_scheme(DEFAULT_REWARD_SCHEME):
        bar["mean_return"] = SOLVED_MEAN_RETURN
    return bar


def resolve_reward_scheme(scheme: str | Mapping[str, float]) -> dict[str, float]:
    """Turn a preset name or a custom ``{event: reward}`` mapping into weights for every event.

    Args:
        scheme: a key of :data:`REWARD_PRESETS`, or a mapping from events in
            :data:`REWARD_EVENTS` to finite rewards (missing events are worth 0).

    Returns:
        A dict with one float per event in :data:`REWARD_EVENTS`.

    Raises:
        ValueError: for an unknown preset or event, a non-finite reward, or a positive reward
            for relieving indoors, accidents, the sofa or mere steps.
    """
    if isinstance(scheme, str):
        if scheme not in REWARD_PRESETS:
            raise ValueError(
                f"{ENV_ID}: unknown reward_scheme {scheme!r}; choose a preset from "
                f"{sorted(REWARD_PRESETS)} or pass a dict of event -> reward"
            )
        scheme = REWARD_PRESETS[scheme]
    elif not isinstance(scheme, Mapping):
        raise ValueError(
            f"{ENV_ID}: reward_scheme must be a preset name {sorted(REWARD_PRESETS)} or a dict "
            f"of event -> reward, got {type(scheme).__name__}"
        )
    unknown = sorted(str(key) for key in scheme if key not in REWARD_EVENTS)
    if unknown:
        raise ValueError(
            f"{ENV_ID}: unknown reward event(s) {unknown}; valid events are {list(REWARD_EVENTS)}"
        )
    weights = dict.fromkeys(REWARD_EVENTS, 0.0)
    for event, value in scheme.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{ENV_ID}: reward for {event!r} must be a number, got {value!r}")
        if not math.isfinite(value) or abs(value) > _FLOAT32_MAX:
            raise ValueError(
                f"{ENV_ID}: reward for {event!r} must be finite in float32 (within "
                f"±{_FLOAT32_MAX:.3g}, the env's dtype), got {value!r}"
            )
        if event in _NEVER_POSITIVE and value > 0:
            raise ValueError(
                f"{ENV_ID}: reward for {event!r} is {value}, but {_NEVER_POSITIVE[event]}; "
                "use 0 or a negative value"
            )
        weights[event] = float(value)
    return weights


# -- parameters and houses -------------------------------------------------------------------
@dataclass(frozen=True)
class DogParams:
    """The dog's physiology and senses (shared by every house)."""

    fill_steps: int = 40
    """Steps for the bladder to fill from empty; when it is full the dog has an accident."""
    min_relief_level: float = 0.5
    """Bladder level below which ``relieve`` does nothing (and earns nothing): no treat farming."""
    start_bladder_max: float = 0.4
    """Start levels are drawn uniformly from ``{0, 1/fill_steps, ..., start_bladder_max}``."""
    view_radius: int = 2
    """The egocentric view covers ``(2 * view_radius + 1)`` tiles square around the dog."""

    def __post_init__(self) -> None:
        if not is_int(self.fill_steps):
            raise ValueError(f"DogParams.fill_steps must be an int, got {self.fill_steps!r}")
        if not 0.0 < self.min_relief_level <= 1.0:
            raise ValueError(
                f"DogParams.min_relief_level must be in (0, 1], got {self.min_relief_level!r}"
            )
        if not 0.0 <= self.start_bladder_max < 1.0:
            raise ValueError(
                f"DogParams.start_bladder_max must be in [0, 1), got {self.start_bladder_max!r}"
            )
        if isinstance(self.view_radius, bool) or self.view_radius not in range(1, SIZE):
            raise ValueError(f"DogParams.view_radius must be in 1..{SIZE - 1}")
        if self.max_path < 2 * SIZE:
            raise ValueError(
                f"DogParams leave the dog {self.max_path} steps to reach the garden from the "
                f"fullest start bladder; raise fill_steps or lower start_bladder_max so that "
                f"fill_steps - start_bladder_max * fill_steps - 1 >= {2 * SIZE}"
            )

    @property
    def min_relief_count(self) -> int:
        """Bladder fill (in steps) from which ``relieve`` empties it."""
        return max(1, math.ceil(self.min_relief_level * self.fill_steps - 1e-9))

    @property
    def relief_mark(self) -> float:
        """The observed bladder level from which ``relieve`` succeeds. A step fills the bladder
        before ``relieve`` acts, so that is one step below :attr:`min_relief_count`: the level
        at which observation index 3 turns on and the drawn meter's "can go" mark stands."""
        return (self.min_relief_count - 1) / self.fill_steps

    @property
    def start_max_count(self) -> int:
        return math.floor(self.start_bladder_max * self.fill_steps + 1e-9)

    @property
    def max_path(self) -> int:
        """Longest allowed path to the garden: reachable before an accident from any start."""
        return self.fill_steps - self.start_max_count - 1

    @property
    def view_size(self) -> int:
        return 2 * self.view_radius + 1

    @property
    def obs_size(self) -> int:
        return _NUM_SCALARS + _NUM_FLAGS + len(_VIEW_CODES) * self.view_size**2


OBS_SIZE = DogParams().obs_size


class Houses(NamedTuple):
    """A catalogue of ``K`` houses as tensors (all ``SIZE x SIZE``)."""

    tiles: torch.Tensor  # (K, S, S) long tile codes
    distance: torch.Tensor  # (K, S, S) long path length to the garden (around the sofa)
    direction: torch.Tensor  # (K, S, S) long first move (UP..RIGHT) of that path; STAY outside
    # (K, S*S, F) uint8: the observation's 0/1 entries (outdoors, sofa, heading, view) per tile,
    # precomputed so that observing is one gather instead of a dozen ops per step.
    features: torch.Tensor
    start_cells: torch.Tensor  # (K, C) long flat indices of floor tiles, padded with the first
    num_start_cells: torch.Tensor  # (K,) long

    def to(self, device: torch.device) -> Houses:
        return Houses(*(field.to(device) for field in self))


def _neighbours(r: int, c: int) -> tuple[tuple[int, int, int], ...]:
    """(action, row, col) of the in-grid 4-neighbours, in action order UP, DOWN, LEFT, RIGHT."""
    return tuple(
        (action, r + _MOVES[action][0], c + _MOVES[action][1])
        for action in (UP, DOWN, LEFT, RIGHT)
        if 0 <= r + _MOVES[action][0] < SIZE and 0 <= c + _MOVES[action][1] < SIZE
    )


_NEIGHBOURS = [[_neighbours(r, c) for c in range(SIZE)] for r in range(SIZE)]  # Built once.


def _distances(grid: list[list[int]]) -> list[list[int]]:
    """Shortest path length to the garden from every tile (breadth-first from the garden).

    Paths never cross the sofa (the expert walks around it); a sofa tile's distance is that of
    the way off the sofa. Walls and unreachable tiles get ``_INF``.
    """
    dist = [[0 if tile == GARDEN else _INF for tile in row] for row in grid]
    queue = deque((r, c) for r in range(SIZE) for c in range(SIZE) if grid[r][c] == GARDEN)
    while queue:
        r, c = queue.popleft()
        for _, nr, nc in _NEIGHBOURS[r][c]:
            if dist[nr][nc] == _INF and grid[nr][nc] in (FLOOR, DOOR):
                dist[nr][nc] = dist[r][c] + 1
                queue.append((nr, nc))
    sofa = [(r, c) for r in range(SIZE) for c in range(SIZE) if grid[r][c] == SOFA]
    for _ in range(len(sofa)):  # Relax along the sofa: enough passes for its whole length.
        for r, c in sofa:
            best = min(dist[nr][nc] for _, nr, nc in _NEIGHBOURS[r][c])
            dist[r][c] = min(dist[r][c], best + 1)
    return dist


def _directions(tiles: torch.Tensor, dist: torch.Tensor) -> torch.Tensor:
    """First move (UP..RIGHT) of the shortest path from every tile; STAY where there is none.

    Args:
        tiles: ``(K, S, S)`` tile codes.
        dist: ``(K, S, S)`` path lengths from :func:`_distances`.
    """
    padded = torch.nn.functional.pad(dist, (1, 1, 1, 1), value=_INF)
    sofa = torch.nn.functional.pad(tiles == SOFA, (1, 1, 1, 1), value=False)
    around = []  # Neighbour distances in action order UP, DOWN, LEFT, RIGHT: ties go to the first.
    for action in (UP, DOWN, LEFT, RIGHT):
        dr, dc = _MOVES[action]
        window = (slice(None), slice(1 + dr, 1 + dr + SIZE), slice(1 + dc, 1 + dc + SIZE))
        # Off the sofa any way is fine; from the floor the path never steps onto the sofa.
        blocked = sofa[window] & (tiles != SOFA)
        around.append(torch.where(blocked, _INF, padded[window]))
    first_move = torch.stack(around, dim=1).argmin(dim=1) + UP  # (K, S, S)
    walkable = (tiles == FLOOR) | (tiles == DOOR) | (tiles == SOFA)
    return torch.where(walkable & (dist < _INF), first_move, STAY)


def _longest_path(grid: list[list[int]], dist: list[list[int]]) -> int:
    """Longest shortest path to the garden from a start (floor) tile."""
    return max(dist[r][c] for r in range(SIZE) for c in range(SIZE) if grid[r][c] == FLOOR)


def _features(tiles: torch.Tensor, direction: torch.Tensor, radius: int) -> torch.Tensor:
    """The observation's 0/1 entries for the dog standing on each tile, ``(K, S*S, F)`` uint8.

    Per tile: outdoors, on sofa, the one-hot first move to the garden (up, down, left, right),
    then the egocentric view: one channel per code in ``_VIEW_CODES``, off-grid tiles are walls.
    """
    k = tiles.shape[0]
    padded = torch.nn.functional.pad(tiles, (radius,) * 4, value=WALL)
    size = 2 * radius + 1
    windows = padded.unfold(1, size, 1).unfold(2, size, 1)  # (K, S, S, V, V)
    codes = torch.tensor(_VIEW_CODES)
    view = windows.unsqueeze(3) == codes[:, None, None]  # (K, S, S, C, V, V)
    heading = direction.unsqueeze(-1) == torch.arange(UP, RIGHT + 1)  # (K, S, S, 4)
    flags = torch.stack((tiles == GARDEN, tiles == SOFA), dim=-1)  # (K, S, S, 2)
    table = torch.cat((flags, heading, view.flatten(3)), dim=-1)
    return table.reshape(k, SIZE * SIZE, -1).to(torch.uint8)


def _canonical_house(draw: Any) -> list[list[int]] | None:
    """A house with the garden on the right (cols 9-10), or None when the sofa did not fit."""
    grid = [[WALL] * SIZE for _ in range(SIZE)]
    inner = SIZE - 3  # Column of the house's garden-side wall; rooms span cols 1..inner-1.
    for r in range(SIZE):
        grid[r][SIZE - 2] = grid[r][SIZE - 1] = GARDEN
        if 0 < r < SIZE - 1:
            for c in range(1, inner):
                grid[r][c] = FLOOR
    has_v, has_h = draw(0, 4) > 0, draw(0, 4) > 0  # Each interior wall with probability 0.8.
    cv, rh = draw(3, inner - 3), draw(3, SIZE - 4)
    if has_v:
        for r in range(1, SIZE - 1):
            grid[r][cv] = WALL
        for lo, hi in [(1, rh - 1), (rh + 1, SIZE - 2)] if has_h else [(1, SIZE - 2)]:
            grid[draw(lo, hi)][cv] = FLOOR  # One doorway per wall segment: rooms stay connected.
    if has_h:
        for c in range(1, inner):
            grid[rh][c] = WALL
        for lo, hi in [(1, cv - 1), (cv + 1, inner - 1)] if has_v else [(1, inner - 1)]:
            grid[rh][draw(lo, hi)] = FLOOR
    door_rows = [r for r in range(1, SIZE - 1) if not (has_h and r == rh)]
    grid[door_rows[draw(0, len(door_rows) - 1)]][inner] = DOOR
    length = draw(2, 3)
    sofa_rows = [1, SIZE - 2] + ([rh - 1, rh + 1] if has_h else [])
    r, c0 = sofa_rows[draw(0, len(sofa_rows) - 1)], draw(1, inner - length)
    if any(grid[r][c] != FLOOR for c in range(c0, c0 + length)):
        return None
    for c in range(c0, c0 + length):
        grid[r][c] = SOFA
    return grid


def _generate_house(index: int, max_path: int) -> tuple[list[list[int]], list[list[int]]]:
    """House number ``index`` of the catalogue: its own CPU generator makes it device-free."""
    generator = torch.Generator().manual_seed(index)

    def draw(low: int, high: int) -> int:  # An integer in [low, high].
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    for _ in range(200):
        grid = _canonical_house(draw)
        if grid is None:
            continue
        for _ in range(draw(0, 3)):  # Rotate so the garden can be on any side.
            grid = [list(row) for row in zip(*grid[::-1], strict=True)]
        # Solvable: every start tile reaches the garden, around the sofa, before an accident.
        dist = _distances(grid)
        if _longest_path(grid, dist) <= max_path:
            return grid, dist
    raise ValueError(f"{ENV_ID}: could not draw house {index} with paths <= {max_path} steps")


@functools.lru_cache(maxsize=8)
def _cached_houses(layout: str, num_layouts: int, layout_offset: int, params: DogParams) -> Houses:
    if layout == "default":
        grids = [[[_CHARS[ch] for ch in row] for row in DEFAULT_HOUSE]]
        dists = [_distances(grids[0])]
    else:
        drawn = [
            _generate_house(k, params.max_path)
            for k in range(layout_offset, layout_offset + num_layouts)
        ]
        grids, dists = [grid for grid, _ in drawn], [dist for _, dist in drawn]
    distance = torch.tensor(dists, dtype=torch.long)
    starts = [
        [r * SIZE + c for r in range(SIZE) for c in range(SIZE) if grid[r][c] == FLOOR]
        for grid in grids
    ]
    width = max(len(cells) for cells in starts)
    tiles = torch.tensor(grids, dtype=torch.long)
    direction = _directions(tiles, distance)
    return Houses(
        tiles=tiles,
        distance=distance,
        direction=direction,
        features=_features(tiles, direction, params.view_radius),
        start_cells=torch.tensor([cells + cells[:1] * (width - len(cells)) for cells in starts]),
        num_start_cells=torch.tensor([len(cells) for cells in starts]),
    )


def make_houses(
    layout: str = "default",
    num_layouts: int | None = None,
    layout_offset: int | None = None,
    params: DogParams | None = None,
    device: str | torch.device = "cpu",
) -> Houses:
    """The catalogue a layout selects, validated, on ``device`` (cached on the CPU).

    Args:
        layout: ``"default"`` (one fixed house) or ``"random"`` (numbered, generated houses).
        num_layouts: how many numbered houses (``"random"`` only; default 1000, at most
            :data:`MAX_NUM_LAYOUTS`). Drawing them costs about half a millisecond each, once
            per process.
        layout_offset: number of the first house (``"random"`` only; default 0).
        params: the dog's parameters (they bound the longest path a house may have).
        device: where the tensors live.
    """
    params = DogParams() if params is None else params
    if layout not in LAYOUTS:
        raise ValueError(f"{ENV_ID}: unknown layout {layout!r}; choose one of {list(LAYOUTS)}")
    # The values first, whatever the layout: a bad one is wrong in itself, not only unused.
    for name, value, low in (("num_layouts", num_layouts, 1), ("layout_offset", layout_offset, 0)):
        if value is not None and not is_int(value, low, numpy=True):
            raise ValueError(f"{ENV_ID}: {name} must be an integer >= {low}, got {value!r}")
    if num_layouts is not None and num_layouts > MAX_NUM_LAYOUTS:
        raise ValueError(
            f"{ENV_ID}: num_layouts must be at most {MAX_NUM_LAYOUTS:,}, got {int(num_layouts):,}:"
            f" every house is drawn when the env is made (about half a millisecond and 16 KB "
            f"apiece, so {MAX_NUM_LAYOUTS:,} already take a minute and 1.6 GB)"
        )
    if layout == "default":
        if num_layouts is not None or layout_offset is not None:
            raise ValueError(
                f'{ENV_ID}: num_layouts and layout_offset choose houses for layout="random"; '
                'the "default" layout is a single house'
            )
        num_layouts, layout_offset = 1, 0
    num_layouts = DEFAULT_NUM_LAYOUTS if num_layouts is None else num_layouts
    layout_offset = 0 if layout_offset is None else layout_offset
    if layout_offset + num_layouts - 1 > MAX_HOUSE_NUMBER:
        raise ValueError(
            f"{ENV_ID}: house numbers stop at 2**64 - 1 (each seeds a torch.Generator), but "
            f"layout_offset {layout_offset} + num_layouts {num_layouts} goes past it"
        )
    houses = _cached_houses(layout, int(num_layouts), int(layout_offset), params)
    return houses.to(torch.device(device))


# -- the pure core ---------------------------------------------------------------------------
class DogState(NamedTuple):
    """Batched state; every field has the batch dimension first."""

    house: torch.Tensor  # (N,) long index into the Houses catalogue
    pos: torch.Tensor  # (N, 2) long (row, col)
    bladder: torch.Tensor  # (N,) long fill in steps, 0..fill_steps
    facing: torch.Tensor  # (N,) long LEFT or RIGHT, for drawing
    steps: torch.Tensor  # (N,) long steps this episode, for drawing
    ret: torch.Tensor  # (N,) float return this episode, for drawing
    last_event: torch.Tensor  # (N,) long EVENT_* of the last step, for drawing
    last_reward: torch.Tensor  # (N,) float reward of the last step, for drawing
    successes: torch.Tensor  # (N,) long reliefs in the garden this episode
    attempts: torch.Tensor  # (N,) long reliefs anywhere plus accidents this episode


def dog_start_states(
    params: DogParams, houses: Houses, bits: torch.Tensor, dtype: torch.dtype = torch.float32
) -> DogState:
    """Start states from ``(3, n)`` int32 random bits: house, floor tile, bladder level."""
    device = houses.tiles.device
    n = bits.shape[1]
    house = integers_from_bits(bits[0], houses.tiles.shape[0])  # always 0 for one house
    pick = integers_from_bits(bits[1], houses.num_start_cells[house])  # a floor tile, uniform
    cell = houses.start_cells[house, pick]
    bladder = integers_from_bits(bits[2], params.start_max_count + 1)
    zeros = torch.zeros(n, dtype=torch.long, device=device)
    fzeros = torch.zeros(n, dtype=dtype, device=device)
    return DogState(
        house=house,
        pos=torch.stack((cell // SIZE, cell % SIZE), dim=-1),
        bladder=bladder,
        facing=torch.full((n,), RIGHT, dtype=torch.long, device=device),
        steps=zeros,
        ret=fzeros,
        last_event=zeros,
        last_reward=fzeros,
        successes=zeros,
        attempts=zeros,
    )


def dog_reset(
    params: DogParams,
    houses: Houses,
    n: int,
    generator: torch.Generator,
    dtype: torch.dtype = torch.float32,
) -> DogState:
    """``n`` start states: a random house, a random floor tile, a random low bladder."""
    bits = random_bits(generator, 3, n, houses.tiles.device)
    return dog_start_states(params, houses, bits, dtype)


def _at(table: torch.Tensor, house: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``table[house, row, col]`` per row: ``(K, S, S)`` → ``(N,)``."""
    return table.flatten(1)[house, pos[:, 0] * SIZE + pos[:, 1]]


def dog_step(
    params: DogParams,
    houses: Houses,
    weights: Mapping[str, float],
    state: DogState,
    actions: torch.Tensor,
) -> tuple[DogState, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One step for every row: move, fill the bladder, relieve or have an accident, pay.

    Order within a step: the dog moves (walls block; stay and relieve do not move), the bladder
    fills by one step, then ``relieve`` empties it if it is at least ``min_relief_level`` full
    (otherwise it does nothing), else a full bladder empties by itself (an accident, even in
    the garden). Either ends the episode. A step that ends on the sofa, in an accident or in a
    relief indoors never pays more than 0.

    Args:
        params: the dog's parameters.
        houses: the catalogue ``state.house`` indexes.
        weights: one reward per event in :data:`REWARD_EVENTS`.
        state: the current state, ``(N, ...)``.
        actions: ``(N,)`` long in ``[0, 6)``.

    Returns:
        ``(next_state, reward (N,), terminated (N,) bool, info)`` with ``info`` holding ``(N,)``
        bool tensors ``relief_outdoors``, ``relief_indoors``, ``accident``, ``on_sofa``.
    """
    # Row and column offsets of the actions, by comparison: no per-step host-to-device copy.
    step_row = (actions == DOWN).long() - (actions == UP).long()
    step_col = (actions == RIGHT).long() - (actions == LEFT).long()
    target = (state.pos + torch.stack((step_row, step_col), dim=-1)).clamp(0, SIZE - 1)
    blocked = _at(houses.tiles, state.house, target) == WALL
    pos = torch.where(blocked.unsqueeze(-1), state.pos, target)
    tile = _at(houses.tiles, state.house, pos)
    outdoors = tile == GARDEN
    on_sofa = tile == SOFA
    bladder = (state.bladder + 1).clamp(max=params.fill_steps)
    relief = (actions == RELIEVE) & (bladder >= params.min_relief_count)
    relief_outdoors = relief & outdoors
    relief_indoors = relief & ~outdoors
    accident = ~relief & (bladder >= params.fill_steps)
    terminated = relief | accident
    progress = _at(houses.distance, state.house, state.pos) - _at(houses.distance, state.house, pos)

    dtype = state.ret.dtype
    reward = (
        weights["relief_outdoors"] * relief_outdoors.to(dtype)
        + weights["relief_indoors"] * relief_indoors.to(dtype)
        + weights["accident"] * accident.to(dtype)
        + weights["on_sofa"] * on_sofa.to(dtype)
        + weights["progress"] * progress.to(dtype)
        + weights["step"]
    )
    # The sofa, an accident and a relief indoors are never rewarded, whatever the scheme: the
    # shaping a step earns (progress towards the door) stops at them.
    reward = torch.where(on_sofa | accident | relief_indoors, reward.clamp(max=0.0), reward)

    moved_sideways = (actions == LEFT) | (actions == RIGHT)
    event = torch.where(
        relief_outdoors,
        EVENT_RELIEF_OUTDOORS,
        torch.where(relief_indoors, EVENT_RELIEF_INDOORS, accident.long() * EVENT_ACCIDENT),
    )
    next_state = DogState(
        house=state.house,
        pos=pos,
        bladder=torch.where(terminated, 0, bladder),
        facing=torch.where(moved_sideways, actions, state.facing),
        steps=state.steps + 1,
        ret=state.ret + reward,
        last_event=event,
        last_reward=reward,
        successes=state.successes + relief_outdoors.long(),
        attempts=state.attempts + terminated.long(),
    )
    info = {
        "relief_outdoors": relief_outdoors,
        "relief_indoors": relief_indoors,
        "accident": accident,
        "on_sofa": on_sofa,
    }
    return next_state, reward, terminated, info


def dog_observe(
    params: DogParams, houses: Houses, state: DogState, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The ``(N, params.obs_size)`` observation documented in :class:`DogTrainingVectorEnv`."""
    row, col = state.pos[:, 0], state.pos[:, 1]
    cell = row * SIZE + col
    distance = houses.distance.flatten(1)[state.house, cell].to(dtype) / params.max_path
    scalars = torch.stack(
        (
            row.to(dtype) / (SIZE - 1),
            col.to(dtype) / (SIZE - 1),
            state.bladder.to(dtype) / params.fill_steps,
            (state.bladder + 1 >= params.min_relief_count).to(dtype),  # relieve works now
            distance.clamp(max=1.0),
        ),
        dim=-1,
    )
    return torch.cat((scalars, houses.features[state.house, cell].to(dtype)), dim=-1)


# -- the environments ------------------------------------------------------------------------
class DogTrainingVectorEnv(TorchVectorEnv):
    """Teach a dog to relieve itself in the garden: N houses stepped at once, in torch.

    ## Description

    A dog lives in a small house on an 11 x 11 grid: rooms divided by walls with doorways, a
    sofa, one door, and a garden along one side. Its bladder fills by ``1 / fill_steps`` every
    step; once at least half full the dog may relieve itself, and when it is full it has an
    accident wherever it is. The reward scheme (treats, scolding, both, coaching, or your own)
    decides what the dog learns: a learner can compare them with ``reward_scheme=...``.

    ## Action Space

    ``Discrete(6)``:

    | Num | Action  | Effect                                                              |
    |-----|---------|---------------------------------------------------------------------|
    | 0   | stay    | wait                                                                |
    | 1   | up      | move one tile up (walls block; the sofa and the door do not)        |
    | 2   | down    | move one tile down                                                  |
    | 3   | left    | move one tile left                                                  |
    | 4   | right   | move one tile right                                                 |
    | 5   | relieve | empty the bladder if it is >= ``min_relief_level`` full, else wait  |

    ## Observation Space

    ``Box(0, 1, (111,), float32)`` (default ``view_radius=2``). Houses differ, the encoding
    does not, so a policy can generalise across houses:

    | Index   | Observation                                                                 |
    |---------|-----------------------------------------------------------------------------|
    | 0       | row / 10 (0 = top)                                                          |
    | 1       | column / 10 (0 = left)                                                      |
    | 2       | bladder level (0 empty, 1 full: accident)                                   |
    | 3       | 1 if ``relieve`` would succeed now (after this step's filling, the bladder  |
    |         | is >= ``min_relief_level``): the level of index 2 is >= ``relief_mark``     |
    | 4       | length of the shortest path to the garden / ``max_path`` (23), clipped to 1 |
    | 5       | 1 if outdoors (on a garden tile)                                            |
    | 6       | 1 if on the sofa                                                            |
    | 7-10    | first move of that path, one-hot (up, down, left, right); the path walks    |
    |         | around the sofa; all 0 in the garden                                        |
    | 11-110  | egocentric 5 x 5 view centred on the dog: 4 channels (wall, sofa, door,     |
    |         | garden) x 5 rows x 5 columns, channel-major; floor is all 0; off-grid = wall |

    Index 3 turns on one step earlier than it did before 2026-11-27 (it lagged ``relieve``
    by a step): checkpoints trained, and demonstrations recorded, before then saw it late.

    ## Rewards

    A scheme prices events; the reward of a step is the sum over the events that happened:

    | Event              | treats | scolding_only | treats_and_scolding | coached (default) |
    |--------------------|--------|---------------|---------------------|-------------------|
    | relief_outdoors    | +1     | 0             | +1                  | +1                |
    | relief_indoors     | 0      | -1            | -1                  | -1                |
    | accident           | 0      | -1            | -1                  | -1                |
    | on_sofa (per step) | 0      | -0.1          | -0.1                | -0.1              |
    | step               | 0      | 0             | 0                   | -0.01             |
    | progress (/tile)   | 0      | 0             | 0                   | +0.05             |

    ``progress`` pays for each tile of path to the garden gained and charges each tile lost:
    shaping ``Φ(s') - Φ(s)`` with the potential ``Φ = -progress x path length``. Undiscounted,
    an episode's sum telescopes and walking back and forth earns nothing. Under a discount γ
    it is not exactly Ng et al.'s (1999) policy-invariant ``γΦ(s') - Φ(s)``: a tile gained and
    then lost is worth ``(1 - γ) x progress`` (0.0005 under ``coached`` at γ = 0.99), less
    than the two steps' cost (0.0199). A custom ``{event: reward}`` dict may price any subset;
    ``relief_indoors``, ``accident``, ``on_sofa`` and ``step`` must be <= 0, and a step that
    ends on the sofa, in an accident or in a relief indoors pays at most 0 (progress included),
    so none of them is ever rewarded. ``relieve`` below ``min_relief_level`` does nothing:
    spamming it cannot farm treats.

    Measured by :func:`measure_policies` (100 episodes, seed 0, ``coached``). Default house:
    expert success rate 1.00, mean return +1.27; random policy 0.01, -1.24. Random houses
    (0..999): expert 1.00, +1.31; random 0.01, -1.18. Solved: success rate >=
    :data:`SOLVED_SUCCESS_RATE` (0.9) and mean return >= :data:`SOLVED_MEAN_RETURN` (+1.0,
    about 80 % of the expert's), both under ``coached``.

    ## Starting State

    A house (``layout``), a random floor tile (never the sofa, door or garden), facing right,
    and a bladder level drawn uniformly from ``{0, 1/fill_steps, ..., start_bladder_max}``.
    Every house lets the dog reach the garden from any start tile before an accident.

    ## Episode End

    Terminated when the bladder is emptied, by a relief (anywhere) or an accident: an episode
    is one trip, at most ``fill_steps`` (40) steps. The registered time limit (200 steps)
    never binds.

    ## Arguments

    ```python
    gymnasium.make_vec("sandbox/DogTraining-v0", num_envs=4096,
                       vectorization_mode="vector_entry_point", device="cuda",
                       reward_scheme="treats", layout="random", num_layouts=100)
    ```

    * ``reward_scheme``: a preset (``"treats"``, ``"scolding_only"``,
      ``"treats_and_scolding"``, ``"coached"``) or a dict ``{event: reward}``.
    * ``layout``: ``"default"`` (one fixed house) or ``"random"`` (numbered generated houses).
    * ``num_layouts``, ``layout_offset``: with ``"random"``, use houses ``layout_offset`` ..
      ``layout_offset + num_layouts - 1`` (default 0 .. 999; at most 100,000 houses, see
      :data:`MAX_NUM_LAYOUTS`). House ``k`` is the same everywhere, so disjoint ranges give
      disjoint training and test houses.
    * ``params``: a :class:`DogParams` (bladder speed, relief threshold, view radius).
    * ``device``, ``dtype``, ``max_episode_steps``, ``render_mode``, ``validate_actions``,
      ``compile``: as in :class:`envs.core.TorchVectorEnv`.

    ## Batched Semantics

    State is a :class:`DogState` of ``(N, ...)`` tensors; each row has its own house, drawn
    from the env's ``torch.Generator`` (``reset(seed=...)`` reproduces them). Finished rows
    reset in the same step (SAME_STEP autoreset), in a newly drawn house (a counter-based
    hash keyed from the generator: see :mod:`envs.core`). ``info`` holds
    ``(N,)`` bool event tensors ``relief_outdoors``, ``relief_indoors``, ``accident``,
    ``on_sofa``; ``info["episode"]`` adds ``successes`` (garden reliefs) and ``attempts``
    (reliefs anywhere plus accidents) to ``r``/``l``: success rate = sum(successes) /
    sum(attempts).

    ## Version History

    * v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {**TorchVectorEnv.metadata, "render_fps": 8}
    env_name: ClassVar[str] = ENV_ID
    start_lanes: ClassVar[int] = 3

    def __init__(
        self,
        num_envs: int = 1,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        validate_actions: bool = True,
        reward_scheme: str | Mapping[str, float] = DEFAULT_REWARD_SCHEME,
        layout: str = "default",
        num_layouts: int | None = None,
        layout_offset: int | None = None,
        params: DogParams | None = None,
        compile: bool | str = False,
    ) -> None:
        if params is not None and not isinstance(params, DogParams):
            raise ValueError(f"{ENV_ID}: params must be a DogParams, got {type(params).__name__}")
        self.params = DogParams() if params is None else params
        self.reward_weights = resolve_reward_scheme(reward_scheme)
        self.reward_scheme_name = reward_scheme if isinstance(reward_scheme, str) else "custom"
        try:
            house_device = resolve_device(device)
        except ValueError as exc:
            raise ValueError(f"{ENV_ID}: {exc}") from None
        self.layout = layout
        self.houses = make_houses(layout, num_layouts, layout_offset, self.params, house_device)
        # Rows index houses by number, so a single env compared with a row needs the same set.
        self._single_env_kwargs = {
            "reward_scheme": reward_scheme,
            "layout": layout,
            "num_layouts": num_layouts,
            "layout_offset": layout_offset,
            "params": params,
        }
        self.single_observation_space = spaces.Box(
            0.0, 1.0, (self.params.obs_size,), dtype=np.float32
        )
        self.single_action_space = spaces.Discrete(NUM_ACTIONS)
        self._setup(
            num_envs,
            device=house_device,
            dtype=dtype,
            max_episode_steps=max_episode_steps,
            render_mode=render_mode,
            validate_actions=validate_actions,
            compile=compile,
        )

    @property
    def single_env_kwargs(self) -> dict[str, Any]:
        """Arguments that make a :class:`DogTrainingEnv` with the same houses and rewards."""
        return dict(self._single_env_kwargs)

    def _start_states(self, bits: torch.Tensor) -> DogState:
        return dog_start_states(self.params, self.houses, bits, self.dtype)

    def _transition(
        self, state: DogState, actions: torch.Tensor
    ) -> tuple[DogState, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        return dog_step(self.params, self.houses, self.reward_weights, state, actions)

    def _observe(self, state: DogState) -> torch.Tensor:
        return dog_observe(self.params, self.houses, state, self.dtype)

    def _episode_extras(self, next_state: DogState) -> dict[str, torch.Tensor]:
        return {"successes": next_state.successes, "attempts": next_state.attempts}

    def _render_state(self, state_row: DogState) -> np.ndarray:
        house = int(state_row.house[0])
        return draw_frame(
            Scene(
                tiles=self.houses.tiles[house].tolist(),
                row=int(state_row.pos[0, 0]),
                col=int(state_row.pos[0, 1]),
                bladder=float(state_row.bladder[0]) / self.params.fill_steps,
                relief_mark=self.params.relief_mark,
                facing_left=int(state_row.facing[0]) == LEFT,
                steps=int(state_row.steps[0]),
                episode_return=float(state_row.ret[0]),
                event=int(state_row.last_event[0]),
                reward=float(state_row.last_reward[0]),
                scheme=self.reward_scheme_name,
            )
        )


class DogTrainingEnv(TorchSingleEnv):
    """One dog, numpy in and out, for ``gymnasium.make("sandbox/DogTraining-v0")``.

    The same dynamics as :class:`DogTrainingVectorEnv` (whose docstring is the full spec), run
    with N=1 in float64 on the CPU. ``info`` holds the step's events as Python bools.

    ## Description

    See :class:`DogTrainingVectorEnv`: reach the garden and relieve yourself there.

    ## Action Space

    ``Discrete(6)``: stay, up, down, left, right, relieve.

    ## Observation Space

    ``Box(0, 1, (111,), float32)``: position, bladder, the length and first move of the path
    to the garden, outdoors/sofa flags and a 5 x 5 egocentric view (table in the vector env).

    ## Rewards

    Set by ``reward_scheme``: ``"treats"``, ``"scolding_only"``, ``"treats_and_scolding"``,
    ``"coached"`` (default) or a custom dict; the sofa is never rewarded.

    ## Starting State

    A random floor tile of the house and a bladder at most 40 % full.

    ## Episode End

    Terminated by a relief or an accident; truncated at 200 steps by ``gymnasium.make``.

    ## Arguments

    ``render_mode`` (``"human"`` or ``"rgb_array"``), ``reward_scheme``, ``layout``,
    ``num_layouts``, ``layout_offset``, ``params``, as in the vector env.

    ## Batched Semantics

    None: one env. :class:`DogTrainingVectorEnv` runs N rows of the same core.

    ## Version History

    * v0: initial version.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["human", "rgb_array"], "render_fps": 8}
    vector_cls = DogTrainingVectorEnv
    window_title = "DogTraining-v0: teach the dog to go outside"
    core: DogTrainingVectorEnv

    def __init__(
        self,
        render_mode: str | None = None,
        *,
        reward_scheme: str | Mapping[str, float] = DEFAULT_REWARD_SCHEME,
        layout: str = "default",
        num_layouts: int | None = None,
        layout_offset: int | None = None,
        params: DogParams | None = None,
    ) -> None:
        super().__init__(
            render_mode,
            reward_scheme=reward_scheme,
            layout=layout,
            num_layouts=num_layouts,
            layout_offset=layout_offset,
            params=params,
        )


# -- policies --------------------------------------------------------------------------------
def _as_batch(obs: Any) -> tuple[torch.Tensor, bool]:
    obs = torch.as_tensor(obs)
    if obs.dim() not in (1, 2) or obs.shape[-1] < _NUM_SCALARS + _NUM_FLAGS:
        raise ValueError(
            f"{ENV_ID}: expected observations of shape (N, {OBS_SIZE}) or ({OBS_SIZE},), "
            f"got {tuple(obs.shape)}"
        )
    return (obs.unsqueeze(0), True) if obs.dim() == 1 else (obs, False)


def expert_policy(obs: torch.Tensor) -> torch.Tensor:
    """The scripted trainer's dog: from observations alone, optimal under every preset.

    In the house it takes the observed first move of the shortest path to the garden (around
    the sofa); in the garden it relieves itself as soon as the bladder allows, else waits.
    Going out at once is optimal: waiting indoors gains nothing and risks an accident.

    Args:
        obs: ``(N, obs_size)`` or ``(obs_size,)`` observations (tensor or array).

    Returns:
        ``(N,)`` (or scalar) long actions on ``obs``'s device.
    """
    batch, single = _as_batch(obs)
    outdoors = batch[:, 5] > 0.5
    can_relieve = batch[:, 3] > 0.5
    heading = batch[:, 7:11].argmax(dim=-1) + UP
    in_garden = torch.where(can_relieve, RELIEVE, STAY)
    actions = torch.where(outdoors, in_garden, heading)
    return actions[0] if single else actions


def random_policy(obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Uniformly random actions, one per observation row: the baseline to beat."""
    batch, single = _as_batch(obs)
    actions = torch.randint(
        NUM_ACTIONS, (batch.shape[0],), generator=generator, device=batch.device
    )
    return actions[0] if single else actions


def measure_policies(episodes: int = 100, seed: int = 0, **env_kwargs: Any) -> dict[str, Any]:
    """Success rate and mean return of the expert and the random policy (the docstring's).

    One vector-env row per episode, each counting its first episode only.
    """
    generator = torch.Generator().manual_seed(seed)
    policies = {
        "expert": expert_policy,
        "random": lambda obs: random_policy(obs, generator),
    }
    results: dict[str, Any] = {}
    for name, policy in policies.items():
        env = DogTrainingVectorEnv(episodes, max_episode_steps=200, **env_kwargs)
        obs, _ = env.reset(seed=seed)
        done = torch.zeros(episodes, dtype=torch.bool)
        returns = torch.zeros(episodes, dtype=torch.float64)
        successes = torch.zeros(episodes)
        attempts = torch.zeros(episodes)
        while not bool(done.all()):
            obs, _, _, _, info = env.step(policy(obs))
            ended = info["_episode"] & ~done
            returns = torch.where(ended, info["episode"]["r"].double(), returns)
            successes = torch.where(ended, info["episode"]["successes"].float(), successes)
            attempts = torch.where(ended, info["episode"]["attempts"].float(), attempts)
            done |= ended
        results[name] = {
            "mean_return": float(returns.mean()),
            "success_rate": float(successes.sum() / attempts.sum().clamp(min=1)),
        }
    return results
