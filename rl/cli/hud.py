"""The learner's heads-up display (HUD) beside the scene, and its window, keys and words.

``rl watch``, ``rl play`` and ``rl record`` draw the same picture: the env's own frame on the
left and a panel on the right with the step, episode, return, the last reward and what caused it
("treat!", "scolded", "accident on the sofa"), the env's gauges (the dog's bladder) and, when a
policy drives, its action probabilities and value estimate. Everything a learner reads exists in
English and Spanish (``--lang es``): the material this project teaches is Spanish.

Frames are composed on off-screen ``pygame.Surface`` objects, so ``rl record`` needs no display;
only :class:`ViewerWindow` opens one, through :class:`envs.rendering.Window`, which counts open
windows so that closing one env's window never closes another. A window is only opened on a real
display: when SDL would silently draw off-screen, :func:`check_display` says so and the command
exits (a driver the user asked for with ``SDL_VIDEODRIVER``, e.g. ``dummy`` in tests, is kept).
"""

from __future__ import annotations

import math
import os
import sys
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from gymnasium import spaces

from envs import dog_training
from envs.rendering import Window, font, format_number, import_pygame
from rl.cli import CLIError

LANGS = ("en", "es")
PANEL_WIDTH = 360  # px; wide enough for "izquierda" + a probability bar at the HUD's font size.
MIN_HEIGHT = 680  # px; the panel's content, key help included, needs this much.
# px; every composed frame fits a 1280 x 720 screen, with room for the window's frame.
MAX_SIZE = (1264, 704)
# Scenes shorter than this fraction of MIN_HEIGHT are scaled up, others padded.
UPSCALE_BELOW = 0.75

DOG_ID = "sandbox/DogTraining-v0"
CARTPOLE_IDS = ("sandbox/CartPole-v1", "CartPole-v1")
PENDULUM_IDS = ("sandbox/Pendulum-v1", "Pendulum-v1")

# -- words -------------------------------------------------------------------------------------
STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "step": "step",
        "episode": "episode",
        "return": "return",
        "last_reward": "last reward",
        "events": "what happened",
        "recent_rewards": "rewards, newest on the right",
        "no_events": "nothing yet",
        "value": "value estimate V(s)",
        "no_value": "— (this policy has none)",
        "probs": "action probabilities",
        "action_mean": "action (mean ± std)",
        "you": "you are the policy",
        "random_policy": "random policy: the 'before' picture",
        "paused": "PAUSED",
        "speed": "{fps} steps/s",
        "speed_one": "1 step/s",
        "max_speed": "as fast as possible",
        "keys": "keys",
        "space": "space",
        "checkpoint": "checkpoint {index}/{count}: {percent} of training",
        "checkpoint_solved": "checkpoint {index}/{count}: solved early, at {percent} of training",
        "at_step": "{step} steps trained",
        "episode_report": "episode {episode}: return {ret} in {steps} steps",
        "watch_summary": "{count} episode(s) watched, mean return {mean}",
        "envs": "{count} envs stepped together",
        "finished": "episodes finished",
        "mean_return": "mean return (last 100)",
        "success_rate": "success rate (last 100)",
        "total_steps": "env steps (all envs)",
        "key_pause": "pause",
        "key_step": "one step",
        "key_speed": "speed",
        "key_reset": "restart",
        "key_next": "next checkpoint",
        "key_quit": "quit",
        "key_noop": "no key: {action}",
        "key_noop_alternate": "no key: pushes alternate left and right",
        "press_to_start": "press an action key to start",
        "episode_over": "episode over: a key starts the next one",
        "linger": "the last one: episodes repeat until you quit",
        "note_sampled": (
            "bold: the action it takes in this state,\ndrawn at random with these odds\n(--greedy: the most likely)"
        ),
        "note_greedy": (
            "bold: the action it takes in this state,\nalways the most likely one\n(--greedy)"
        ),
        "note_final": "episode over:\nthese were the odds of\nits last action (in bold)",
        "next_action": "next",
        "note_sampled_continuous": (
            "next: the action it takes in this state,\ndrawn from mean ± std (--greedy: the mean)"
        ),
        "note_greedy_continuous": "next: the action it takes in this state,\nthe mean (--greedy)",
        "note_final_continuous": "episode over: 'next' was the last\naction it took",
        "value_scaled": "(in the scaled rewards it learned from)",
        "legend": "legend",
        "legend_tiles_dog": "each tile: its return (bottom), bladder (top)",
        "legend_tiles": "each tile: its return so far (bottom)",
        "legend_dog_good": "green border: relieved in the garden",
        "legend_dog_bad": "red border: indoors, or an accident",
        "legend_pole_good": "green border: lasted the whole episode",
        "legend_pole_bad": "red border: the pole fell",
        "legend_bad": "red border: ended without reward",
        "legend_new": "then that tile starts a new episode",
        # Gauges.
        "bladder": "bladder",
        "can_relieve": "can relieve from here",
        "pole_angle": "pole angle (falls at the end)",
        "cart_position": "cart position (edge at the end)",
        # Events.
        "treat": "treat! relieved in the garden",
        "garden_no_treat": "relieved in the garden (no treat)",
        "scolded_indoors": "scolded: relieved indoors",
        "indoors_unnoticed": "relieved indoors (nobody saw)",
        "scolded_sofa": "scolded: relieved on the sofa",
        "sofa_unnoticed": "relieved on the sofa (nobody saw)",
        "accident": "accident! the bladder was full",
        "accident_sofa": "accident on the sofa",
        "accident_garden": "accident, but in the garden",
        "on_sofa": "on the sofa: 'get down!'",
        "on_sofa_quiet": "on the sofa",
        "tried_relieve": "tried to relieve: bladder under half",
        "pole_fell": "the pole fell",
        "time_up": "time is up",
    },
    "es": {
        "step": "paso",
        "episode": "episodio",
        "return": "retorno",
        "last_reward": "última recompensa",
        "events": "qué pasó",
        "recent_rewards": "recompensas, la última a la derecha",
        "no_events": "nada todavía",
        "value": "valor estimado V(s)",
        "no_value": "— (esta política no tiene)",
        "probs": "probabilidades de acción",
        "action_mean": "acción (media ± desv.)",
        "you": "tú eres la política",
        "random_policy": "política aleatoria: el 'antes'",
        "paused": "EN PAUSA",
        "speed": "{fps} pasos/s",
        "speed_one": "1 paso/s",
        "max_speed": "lo más rápido posible",
        "keys": "teclas",
        "space": "espacio",
        "checkpoint": "punto de control {index}/{count}: {percent} del entrenamiento",
        "checkpoint_solved": "punto de control {index}/{count}: resuelto antes, al {percent}",
        "at_step": "entrenado {step} pasos",
        "episode_report": "episodio {episode}: retorno {ret} en {steps} pasos",
        "watch_summary": "{count} episodio(s) vistos, retorno medio {mean}",
        "envs": "{count} entornos a la vez",
        "finished": "episodios terminados",
        "mean_return": "retorno medio (últimos 100)",
        "success_rate": "tasa de éxito (últimos 100)",
        "total_steps": "pasos (todos los entornos)",
        "key_pause": "pausa",
        "key_step": "un paso",
        "key_speed": "velocidad",
        "key_reset": "reiniciar",
        "key_next": "siguiente",
        "key_quit": "salir",
        "key_noop": "sin tecla: {action}",
        "key_noop_alternate": "sin tecla: empuja izq. y dcha. por turnos",
        "press_to_start": "pulsa una tecla de acción para empezar",
        "episode_over": "fin del episodio: una tecla empieza otro",
        "linger": "el último: se repite hasta que salgas",
        "note_sampled": (
            "en negrita: la acción que toma en este estado,\n"
            "sorteada con estas probabilidades\n(--greedy: la más probable)"
        ),
        "note_greedy": (
            "en negrita: la acción que toma en este estado,\nsiempre la más probable\n(--greedy)"
        ),
        "note_final": (
            "fin del episodio:\nestas eran las probabilidades\nde su última acción (en negrita)"
        ),
        "next_action": "próxima",
        "note_sampled_continuous": (
            "próxima: la acción que toma en este estado,\n"
            "sorteada con media ± desv. (--greedy: la media)"
        ),
        "note_greedy_continuous": (
            "próxima: la acción que toma en este estado,\nla media (--greedy)"
        ),
        "note_final_continuous": "fin del episodio: «próxima» fue la\núltima acción que tomó",
        "value_scaled": "(en las recompensas escaladas con que aprendió)",
        "legend": "leyenda",
        "legend_tiles_dog": "cada recuadro: su retorno (abajo), vejiga (arriba)",
        "legend_tiles": "cada recuadro: su retorno hasta ahora (abajo)",
        "legend_dog_good": "borde verde: lo hizo en el jardín",
        "legend_dog_bad": "borde rojo: dentro de casa, o un accidente",
        "legend_pole_good": "borde verde: aguantó todo el episodio",
        "legend_pole_bad": "borde rojo: el palo se cayó",
        "legend_bad": "borde rojo: terminó sin recompensa",
        "legend_new": "y ese recuadro empieza otro episodio",
        "bladder": "vejiga",
        "can_relieve": "desde aquí puede aliviarse",
        "pole_angle": "ángulo del palo (cae al final)",
        "cart_position": "posición del carro (borde al final)",
        "treat": "¡premio! lo hizo en el jardín",
        "garden_no_treat": "lo hizo en el jardín (sin premio)",
        "scolded_indoors": "regañado: lo hizo dentro de casa",
        "indoors_unnoticed": "lo hizo dentro (nadie lo vio)",
        "scolded_sofa": "regañado: lo hizo en el sofá",
        "sofa_unnoticed": "lo hizo en el sofá (nadie lo vio)",
        "accident": "¡accidente! la vejiga estaba llena",
        "accident_sofa": "accidente en el sofá",
        "accident_garden": "accidente, pero en el jardín",
        "on_sofa": "en el sofá: '¡abajo!'",
        "on_sofa_quiet": "en el sofá",
        "tried_relieve": "quiso hacer pis: vejiga a menos de la mitad",
        "pole_fell": "el palo se cayó",
        "time_up": "se acabó el tiempo",
    },
}

ACTION_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    DOG_ID: {
        "en": dog_training.ACTION_NAMES,
        "es": ("quieto", "arriba", "abajo", "izquierda", "derecha", "hacer pis"),
    },
    **{
        env_id: {"en": ("push left", "push right"), "es": ("empujar izq.", "empujar dcha.")}
        for env_id in CARTPOLE_IDS
    },
    **{env_id: {"en": ("torque",), "es": ("par motor",)} for env_id in PENDULUM_IDS},
    "Acrobot-v1": {
        "en": ("torque −1", "no torque", "torque +1"),
        "es": ("par −1", "sin par", "par +1"),
    },
    "MountainCar-v0": {
        "en": ("push left", "no push", "push right"),
        "es": ("empujar izq.", "no empujar", "empujar dcha."),
    },
}


def check_lang(lang: str) -> str:
    """``lang`` if the HUD speaks it, else a ValueError listing the languages."""
    if lang not in LANGS:
        raise ValueError(f"unknown language {lang!r}; choose one of {', '.join(LANGS)}")
    return lang


def terminal_number(value: float) -> str:
    """A number as the terminal lines print it: :func:`format_number` with an ASCII minus
    (a log or a grep should not meet U+2212)."""
    return format_number(value).replace("−", "-")


def episode_report(model: HudModel) -> str:
    """The terminal line for the episode ``model`` just finished (rl watch, rl play)."""
    return tr(
        "episode_report", model.lang, episode=model.episode,
        ret=terminal_number(model.episode_return), steps=model.step,
    )  # fmt: skip


def speed_text(fps: float, lang: str) -> str:
    """The status line's speed: "as fast as possible", "1 step/s", "8 steps/s"."""
    if fps <= 0:
        return tr("max_speed", lang)
    return tr("speed_one", lang) if fps == 1 else tr("speed", lang, fps=f"{fps:g}")


def tr(key: str, lang: str, **values: Any) -> str:
    """The HUD string ``key`` in ``lang``, formatted with ``values``."""
    return STRINGS[lang][key].format(**values)


def action_names(env_id: str, action_space: spaces.Space, lang: str) -> list[str]:
    """Names of the actions (discrete) or action dimensions (continuous) of ``env_id``.

    Envs the HUD does not know get "action 0", "action 1", ... ("acción 0", ... in Spanish).
    """
    count = (
        int(action_space.n)
        if isinstance(action_space, spaces.Discrete)
        else int(np.prod(action_space.shape))
    )
    names = ACTION_NAMES.get(env_id, {}).get(lang)
    if names is not None and len(names) == count:
        return list(names)
    word = "acción" if lang == "es" else "action"
    return [f"{word} {i}" for i in range(count)]


def format_steps(steps: int, lang: str) -> str:
    """``49152`` → ``49,152`` (``49 152`` in Spanish, which groups digits with a space).

    A plain space: pygame's bundled font has no glyph for the narrow no-break space.
    """
    text = f"{steps:,}"
    return text.replace(",", " ") if lang == "es" else text


# -- what happened -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """A step worth telling the learner about: its words and whether it was good or bad."""

    text: str
    tone: str  # "good", "bad" or "neutral": the colour it is drawn in.


def describe_step(
    env_id: str,
    info: dict[str, Any],
    reward: float,
    terminated: bool,
    truncated: bool,
    lang: str,
    action: Any = None,
) -> Event | None:
    """Words for what just happened, from the step's ``info`` events, reward and action.

    The dog's words depend on the reward as well as the event, which is the lesson of the
    reward presets: under ``scolding_only`` going in the garden earns no treat, under
    ``treats`` relieving indoors goes unpunished. A ``relieve`` that relieved nothing can only
    mean the bladder was below the threshold (the env's rule), so it is told as such.
    """
    if env_id == DOG_ID:
        on_sofa = bool(info.get("on_sofa", False))
        if info.get("relief_outdoors"):
            key = "treat" if reward > 0 else "garden_no_treat"
            return Event(tr(key, lang), "good" if reward > 0 else "neutral")
        if info.get("relief_indoors"):
            if on_sofa:
                key = "scolded_sofa" if reward < 0 else "sofa_unnoticed"
            else:
                key = "scolded_indoors" if reward < 0 else "indoors_unnoticed"
            return Event(tr(key, lang), "bad")
        if info.get("accident"):
            outdoors_ok = reward >= 0 and not on_sofa
            key = "accident_sofa" if on_sofa else ("accident_garden" if outdoors_ok else "accident")
            return Event(tr(key, lang), "bad")
        if on_sofa:
            return Event(tr("on_sofa" if reward < 0 else "on_sofa_quiet", lang), "bad")
        if action is not None and int(np.asarray(action).reshape(-1)[0]) == dog_training.RELIEVE:
            return Event(tr("tried_relieve", lang), "neutral")
    elif env_id in CARTPOLE_IDS and terminated:
        return Event(tr("pole_fell", lang), "bad")
    if truncated:
        return Event(tr("time_up", lang), "neutral")
    return None


# -- gauges ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Gauge:
    """A bar in the HUD: ``fraction`` in [0, 1] filled, with an optional threshold mark; or,
    ``signed``, ``fraction`` in [-1, 1] filled from the bar's middle (0) towards an end."""

    label: str
    fraction: float
    text: str
    marker: float | None = None
    marker_label: str | None = None
    tone: str = "neutral"
    signed: bool = False


def bladder_tone(level: float, can_relieve: bool) -> str:
    """The dog's bladder as its own meter colours it: green while it cannot go yet, amber once
    it may, red near full (a key of :data:`TONES`)."""
    return "bad" if level >= 0.85 else ("neutral" if can_relieve else "good")


def env_gauges(env_id: str, obs: np.ndarray, unwrapped: Any, lang: str) -> list[Gauge]:
    """The env's own gauges, read from its documented observation (no private state).

    Args:
        env_id: the registered id.
        obs: the current observation of one env.
        unwrapped: ``env.unwrapped``, for constants such as the dog's relief threshold.
        lang: the HUD's language.
    """
    obs = np.asarray(obs, dtype=np.float64).reshape(-1)
    if env_id == DOG_ID and obs.size > 3:
        level = float(np.clip(obs[2], 0.0, 1.0))  # obs[2]: bladder level (0 empty, 1 accident)
        params = getattr(getattr(unwrapped, "core", None), "params", None)
        threshold = getattr(params, "relief_mark", None)  # where index 3 turns on
        tone = bladder_tone(level, can_relieve=bool(obs[3] > 0.5))
        return [
            Gauge(
                tr("bladder", lang),
                level,
                f"{level:.0%}".replace("%", " %") if lang == "es" else f"{level:.0%}",
                marker=threshold,
                marker_label=tr("can_relieve", lang),
                tone=tone,
            )
        ]
    if env_id in CARTPOLE_IDS and obs.size == 4:
        # Gymnasium's CartPole terminates at |theta| > 12° (0.2095 rad) or |x| > 2.4: signed
        # bars, 0 in the middle, an end where the episode ends (left is left).
        angle = float(np.clip(obs[2] / 0.2095, -1.0, 1.0))
        position = float(np.clip(obs[0] / 2.4, -1.0, 1.0))
        return [
            Gauge(
                tr("pole_angle", lang),
                angle,
                f"{math.degrees(obs[2]):+.1f}°".replace("-", "−"),
                tone="bad" if abs(angle) > 0.7 else "neutral",
                signed=True,
            ),
            Gauge(
                tr("cart_position", lang),
                position,
                f"{obs[0]:+.2f}".replace("-", "−"),
                tone="bad" if abs(position) > 0.7 else "neutral",
                signed=True,
            ),
        ]
    return []


# -- the panel's content -------------------------------------------------------------------------
@dataclass
class PolicyReadout:
    """What the policy thinks of the current state (from ``Policy.explain``)."""

    value: float | None = None
    probs: list[float] | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    chosen: int | None = None
    taken: list[float] | None = None  # continuous: the action about to be taken
    value_note: str | None = None  # a line under the value (e.g. its units)


@dataclass
class HudModel:
    """Everything the panel shows; the commands update it and :func:`compose_frame` draws it."""

    title: str
    lang: str = "en"
    subtitle: list[str] = field(default_factory=list)
    step: int = 0
    episode: int = 1
    episode_return: float = 0.0
    last_reward: float | None = None
    events: deque[tuple[int, int, Event]] = field(default_factory=lambda: deque(maxlen=3))
    banner: Event | None = None
    banner_steps: int = 0
    gauges: list[Gauge] = field(default_factory=list)
    action_names: list[str] = field(default_factory=list)
    readout: PolicyReadout | None = None
    keys: list[tuple[str, str]] = field(default_factory=list)
    status: str = ""
    paused: bool = False
    attention: bool = False  # The status line asks the learner to act (e.g. press a key).
    stats: list[tuple[str, str]] = field(default_factory=list)
    rewards: deque[float] = field(default_factory=lambda: deque(maxlen=48))
    highlight_key: int | None = None  # Index into ``keys`` of the action just taken.
    readout_note: str = ""  # Lines under the probabilities: how the bold action was chosen.
    legend: list[tuple[str, str]] = field(default_factory=list)  # (tone or "", text) lines.

    def start_episode(self) -> None:
        """A new episode on screen: step and return from zero, and the last episode's banner
        gone (the event log keeps it, tagged with its episode)."""
        self.step, self.episode_return, self.last_reward = 0, 0.0, None
        self.banner, self.banner_steps = None, 0

    def record_event(self, event: Event | None, steps: int = 12) -> None:
        """Log ``event`` (with the episode and step) and flash it over the scene for ``steps``
        steps (:meth:`tick_banner`).

        A repeat of the latest event in the same episode (the dog lying on the sofa step after
        step) updates that entry instead of filling the log.
        """
        if event is None:
            return
        if self.events and self.events[0][0] == self.episode and self.events[0][2] == event:
            self.events[0] = (self.episode, self.step, event)
        else:
            self.events.appendleft((self.episode, self.step, event))
        self.banner, self.banner_steps = event, steps

    def tick_banner(self) -> None:
        """Count the banner down by one step (called once per env step, never per redraw: a
        window redraws many times a step when slowed down, a GIF once)."""
        if self.banner_steps > 0:
            self.banner_steps -= 1
            if self.banner_steps == 0:
                self.banner = None


def watch_keys(lang: str, progress: bool = False) -> list[tuple[str, str]]:
    """The key help of ``rl watch``."""
    keys = [
        (tr("space", lang), tr("key_pause", lang)),
        ("→", tr("key_step", lang)),
        ("+ / −", tr("key_speed", lang)),
        ("r", tr("key_reset", lang)),
    ]
    if progress:
        keys.append(("n", tr("key_next", lang)))
    keys.append(("q / Esc", tr("key_quit", lang)))
    return keys


# -- drawing -----------------------------------------------------------------------------------
BACKGROUND = (28, 31, 38)
PANEL = (36, 40, 49)
TEXT = (232, 234, 238)
DIM = (150, 156, 168)
TONES = {"good": (92, 201, 124), "bad": (240, 96, 96), "neutral": (236, 190, 84)}
BAR = (86, 132, 214)
BAR_CHOSEN = (255, 200, 87)
TRACK = (58, 63, 75)
REWARD_STRIP = 26  # px: the height of the recent rewards' bars.


class _Text:
    """Cached text surfaces: the panel redraws every frame, most of its words do not change."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int, bool, tuple[int, int, int]], Any] = {}

    def render(self, text: str, size: int, color: tuple[int, int, int], bold: bool = False) -> Any:
        if not import_pygame().font.get_init():
            # Someone called pygame.quit() (Gymnasium's classic-control envs do in close()):
            # start afresh, as font() does.
            self._cache.clear()
        key = (text, size, bold, color)
        surface = self._cache.get(key)
        if surface is None:
            surface = font(size, bold).render(text, True, color)
            if len(self._cache) > 2048:  # Bounded: returns and steps change every frame.
                self._cache.clear()
            self._cache[key] = surface
        return surface


_TEXT = _Text()


def render_text(text: str, size: int, color: tuple[int, int, int], bold: bool = False) -> Any:
    """A cached ``pygame.Surface`` of ``text`` in pygame's bundled font at ``size``."""
    return _TEXT.render(text, size, color, bold)


def _blit_text(
    target: Any,
    text: str,
    pos: tuple[int, int],
    size: int = 22,
    color: tuple[int, int, int] = TEXT,
    bold: bool = False,
    max_width: int | None = None,
    min_size: int | None = None,
) -> int:
    """Draw ``text`` at ``pos``; return its height. Text wider than ``max_width`` is drawn
    smaller, down to ``min_size`` points, and what still does not fit is cut with an ellipsis."""
    surface = _TEXT.render(text, size, color, bold)
    while max_width and min_size and size > min_size and surface.get_width() > max_width:
        size -= 1
        surface = _TEXT.render(text, size, color, bold)
    if max_width is not None and surface.get_width() > max_width:
        while len(text) > 1 and surface.get_width() > max_width:
            text = text[:-1]
            surface = _TEXT.render(text.rstrip() + "…", size, color, bold)
    target.blit(surface, pos)
    return surface.get_height()


def _bar(target: Any, rect: tuple[int, int, int, int], fraction: float, color: Any) -> None:
    pygame = import_pygame()
    x, y, w, h = rect
    pygame.draw.rect(target, TRACK, rect, border_radius=3)
    filled = round(w * min(max(fraction, 0.0), 1.0))
    if filled > 0:
        pygame.draw.rect(target, color, (x, y, filled, h), border_radius=3)


def _signed_bar(target: Any, rect: tuple[int, int, int, int], fraction: float, color: Any) -> None:
    """A bar whose middle is 0: filled from there to the left (< 0) or the right (> 0)."""
    pygame = import_pygame()
    x, y, w, h = rect
    pygame.draw.rect(target, TRACK, rect, border_radius=3)
    middle = x + w // 2
    reach = round(w / 2 * min(max(fraction, -1.0), 1.0))
    if reach:
        left = middle + min(reach, 0)
        pygame.draw.rect(target, color, (left, y, abs(reach), h), border_radius=3)
    pygame.draw.line(target, TEXT, (middle, y - 2), (middle, y + h + 1), 1)


def _section(target: Any, title: str, x: int, y: int) -> int:
    _blit_text(target, title.upper(), (x, y), 17, DIM, bold=True)
    return y + 18


def draw_panel(target: Any, rect: tuple[int, int, int, int], model: HudModel) -> dict[str, int]:
    """Draw the HUD panel of ``model`` into ``rect`` of the surface ``target``.

    Top to bottom: title and subtitle, counters, the last reward with recent events and rewards,
    the env's gauges, the policy's readout (or a grid's legend); the key help and the status
    line sit at the bottom. Each section keeps its height from frame to frame (the event list
    has room for all its lines even when empty), so nothing jumps as an episode goes on.

    Returns:
        The top ``y`` of each section drawn, by name (``"events"``, ``"gauges"``, ...).
    """
    pygame = import_pygame()
    x0, y0, width, height = rect
    pygame.draw.rect(target, PANEL, rect)
    pad = 16
    area = _Area(target, x0 + pad, width - 2 * pad, model)
    layout = {}
    y = y0 + 14
    y += _blit_text(target, model.title, (area.x, y), 28, TEXT, bold=True, max_width=area.inner)
    for line in model.subtitle:
        y += _blit_text(target, line, (area.x, y + 2), 20, DIM, max_width=area.inner, min_size=16)
        y += 1
    layout["counters"] = y = y + 12
    y = _draw_counters(area, y)
    if not model.stats:
        layout["rewards"] = y
        y = _draw_rewards(area, y)
    layout["gauges"] = y
    y = _draw_gauges(area, y)
    if model.readout is not None:
        layout["readout"] = y
        y = _draw_readout(area, model.readout, y)
    if model.legend:
        layout["legend"] = y
        y = _draw_legend(area, y)
    layout["end"] = y
    keys = _draw_keys(area, y, y0 + height)
    if keys is not None:
        layout["keys"] = keys
    return layout


@dataclass
class _Area:
    """Where the panel's sections draw: the surface, left edge, usable width, and the model."""

    target: Any
    x: int
    inner: int
    model: HudModel


def _draw_counters(area: _Area, y: int) -> int:
    """Episode, step and return in a row of three; or the grid's statistics as lines."""
    model, x, inner = area.model, area.x, area.inner
    if model.stats:
        for label, value in model.stats:
            _blit_text(area.target, label, (x, y + 3), 20, DIM)
            right = x + inner - _TEXT.render(value, 24, TEXT, True).get_width()
            _blit_text(area.target, value, (right, y), 24, TEXT, bold=True)
            y += 24
        return y + 6
    counters = [
        (tr("episode", model.lang), str(model.episode)),
        (tr("step", model.lang), str(model.step)),
        (tr("return", model.lang), format_number(model.episode_return)),
    ]
    column = inner // 3
    for i, (label, value) in enumerate(counters):
        _blit_text(area.target, label, (x + i * column, y), 18, DIM)
        _blit_text(area.target, value, (x + i * column, y + 16), 30, TEXT, bold=True)
    return y + 54


def _draw_rewards(area: _Area, y: int) -> int:
    """The last reward coloured by its sign, the recent events, and the recent rewards."""
    model, target, x, inner = area.model, area.target, area.x, area.inner
    reward = model.last_reward
    tone = "neutral" if reward is None or reward == 0 else ("good" if reward > 0 else "bad")
    text = "—" if reward is None else format_number(reward)
    _blit_text(target, tr("last_reward", model.lang), (x, y + 5), 20, DIM)
    _blit_text(target, text, (x + 170, y), 30, TONES[tone], bold=True)
    y = _section(target, tr("events", model.lang), x, y + 32)
    # Room for every line the log can hold, filled or not: the sections below never move.
    line = render_text("Ág", 20, TEXT).get_height() + 2
    bottom = y + line * (model.events.maxlen or len(model.events) or 1)
    if not model.events:
        _blit_text(target, tr("no_events", model.lang), (x, y), 20, DIM)
    for i, (episode, step, event) in enumerate(model.events):
        color = TONES[event.tone] if i == 0 else DIM
        when = (
            f"{tr('step', model.lang)} {step}"
            if episode == model.episode
            else f"{tr('episode', model.lang)[:2]}. {episode}"
        )
        _blit_text(target, when, (x, y + 2), 17, DIM)
        _blit_text(target, event.text, (x + 62, y), 20, color, max_width=inner - 62)
        y += line
    y = _section(target, tr("recent_rewards", model.lang), x, bottom + 4)
    if not model.rewards:
        return y + REWARD_STRIP + 6
    return _reward_strip(target, model.rewards, x, y, inner) + 6


def _draw_gauges(area: _Area, y: int) -> int:
    """Each gauge as a bar with its value and, when it has one, its threshold marked.

    The threshold's words sit on the gauge's title line, beside the mark, which runs up to
    them from the bar: a line of their own would push the key help off the panel.
    """
    pygame = import_pygame()
    target, x, inner = area.target, area.x, area.inner
    for gauge in area.model.gauges:
        top = y
        y = _section(target, gauge.label, x, y)
        y += 2
        bar_width = inner - 64
        mx = x + int(bar_width * gauge.marker) if gauge.marker is not None else None
        if mx is not None and gauge.marker_label:
            # The mark runs up from the bar to its words, which sit right of it if they fit.
            label = render_text(gauge.marker_label, 16, DIM)
            title = render_text(gauge.label.upper(), 17, DIM, True).get_width()
            left = mx + 6 if mx + 6 + label.get_width() <= x + inner else mx - 6 - label.get_width()
            left = max(left, x + title + 10)  # Never over the title.
            target.blit(label, (left, top + 1))
            pygame.draw.line(target, TEXT, (mx, top), (mx, y), 2)
        if gauge.signed:
            _signed_bar(target, (x, y, bar_width, 16), gauge.fraction, TONES[gauge.tone])
        else:
            _bar(target, (x, y, bar_width, 16), gauge.fraction, TONES[gauge.tone])
        _blit_text(target, gauge.text, (x + inner - 56, y - 1), 22, TEXT, bold=True)
        if mx is not None:
            pygame.draw.line(target, TEXT, (mx, y - 3), (mx, y + 18), 2)
        y += 30
    return y


def _draw_readout(area: _Area, readout: PolicyReadout, y: int) -> int:
    """The value estimate, then action probabilities (discrete) or mean ± std (continuous)."""
    model, target, x, inner = area.model, area.target, area.x, area.inner
    label = tr("value", model.lang)
    if readout.value is None or not math.isfinite(readout.value):
        _blit_text(target, label, (x, y), 20, DIM)
        y += 24 + _blit_text(target, tr("no_value", model.lang), (x, y + 18), 18, DIM)
    else:
        _blit_text(target, label, (x, y + 4), 20, DIM)
        _blit_text(target, format_number(readout.value), (x + 190, y), 28, TEXT, bold=True)
        y += 34
        if readout.value_note:
            y += _blit_text(target, readout.value_note, (x, y - 4), 16, DIM, max_width=inner)
    if readout.probs is not None:
        y = _section(target, tr("probs", model.lang), x, y)
        # Room for the widest name in bold (the chosen one is), then the bars.
        widest = max(
            (render_text(n, 20, TEXT, True).get_width() for n in model.action_names), default=0
        )
        name_width = min(max(112, widest + 8), inner // 2)
        for i, (name, prob) in enumerate(zip(model.action_names, readout.probs, strict=False)):
            chosen = i == readout.chosen  # The action about to be taken.
            color = TEXT if chosen else DIM
            _blit_text(target, name, (x, y + 1), 20, color, bold=chosen, max_width=name_width - 6)
            bar = (x + name_width, y + 2, inner - name_width - 48, 13)
            _bar(target, bar, prob, BAR_CHOSEN if chosen else BAR)
            _blit_text(target, f"{prob:.0%}", (x + inner - 42, y + 1), 19, color)
            y += 18
    elif readout.mean is not None:
        y = _section(target, tr("action_mean", model.lang), x, y)
        std = readout.std or [0.0] * len(readout.mean)
        taken = readout.taken or [math.nan] * len(readout.mean)
        for name, mean, sd, now in zip(model.action_names, readout.mean, std, taken, strict=False):
            text = f"{name}: {format_number(mean)} ± {sd:.2f}"
            if math.isfinite(now):
                text += f", {tr('next_action', model.lang)} {format_number(now)}"
            y += _blit_text(target, text, (x, y), 20, TEXT, max_width=inner) + 2
    y += 2
    for line in model.readout_note.splitlines():
        y += _blit_text(target, line, (x, y), 16, DIM, max_width=inner)
    return y + 2


def _draw_legend(area: _Area, y: int) -> int:
    """What the scene's marks mean: one line each, with a swatch of its colour if it has one."""
    pygame = import_pygame()
    target, x, inner = area.target, area.x, area.inner
    y = _section(target, tr("legend", area.model.lang), x, y + 4) + 2
    for tone, text in area.model.legend:
        indent = 0
        if tone:
            pygame.draw.rect(target, TONES[tone], (x, y + 2, 12, 12), 3)
            indent = 18
        y += _blit_text(target, text, (x + indent, y), 18, DIM, max_width=inner - indent) + 3
    return y + 6


def _draw_keys(area: _Area, y: int, bottom: int) -> int | None:
    """The key help in two columns above the status line, when there is room for it below
    ``y``; else one line of keys, the way out first, if that fits; returns its top, or None
    when it was left out."""
    model, target, x, inner = area.model, area.target, area.x, area.inner
    rows = _key_rows(model.keys)
    yk = bottom - 30 - 23 * len(rows)
    top = yk - 20 if rows and yk - 20 > y else None
    if top is None and rows and bottom - 54 > y:
        # Quitting is what a learner must always be able to find (the last key listed). Arrow
        # keys are left out: only keycaps can draw them (the font has no arrow glyphs).
        ordered = [model.keys[-1], *model.keys[:-1]]
        line = "   ".join(
            f"{key} {action}" if key else action
            for key, action in ordered
            if not any(arrow in key for arrow in ARROWS)
        )
        top = bottom - 50
        _blit_text(target, line, (x, top), 18, DIM, max_width=inner, min_size=14)
    elif top is not None:
        yk = _section(target, tr("keys", model.lang), x, top) + 4
        column = inner // 2
        for row in rows:
            for slot, i in enumerate(row):
                key, action = model.keys[i]
                left = x + slot * column
                right = _keycaps(target, key, left, yk)
                lit = i == model.highlight_key  # The key whose action was just taken.
                text_x = right + 6 if key else left
                width = (inner if len(row) == 1 else column) - (text_x - left) - 4
                color = BAR_CHOSEN if lit else DIM
                _blit_text(target, action, (text_x, yk + 2), 18, color, bold=lit, max_width=width)
            yk += 23
    status = model.status
    if model.paused:
        status = f"{tr('paused', model.lang)}   {status}"
    color = BAR_CHOSEN if model.paused or model.attention else DIM
    _blit_text(
        target, status, (x, bottom - 24), 20, color, bold=model.attention, max_width=inner,
        min_size=15,
    )  # fmt: skip
    return top


def _key_rows(keys: list[tuple[str, str]]) -> list[list[int]]:
    """Indices of ``keys`` laid out two per row; an entry with no key takes a whole row."""
    rows: list[list[int]] = []
    for i, (key, _) in enumerate(keys):
        if key and rows and len(rows[-1]) == 1 and keys[rows[-1][0]][0]:
            rows[-1].append(i)
        else:
            rows.append([i])
    return rows


def _reward_strip(target: Any, rewards: deque[float], x: int, y: int, width: int) -> int:
    """The last rewards as bars around a zero line, newest on the right; returns the bottom."""
    pygame = import_pygame()
    height = REWARD_STRIP
    mid = y + height // 2
    pygame.draw.line(target, TRACK, (x, mid), (x + width, mid), 1)
    scale = max(max(abs(r) for r in rewards), 1e-6)
    slot = width / rewards.maxlen if rewards.maxlen else width / max(len(rewards), 1)
    start = x + width - slot * len(rewards)
    for i, reward in enumerate(rewards):
        bar = round(abs(reward) / scale * (height // 2 - 1))
        if bar == 0:
            continue
        color = TONES["good"] if reward > 0 else TONES["bad"]
        top = mid - bar if reward > 0 else mid + 1
        pygame.draw.rect(
            target, color, (round(start + i * slot), top, max(1, round(slot) - 1), bar)
        )
    return y + height


ARROWS = {"←": (-1, 0), "→": (1, 0), "↑": (0, -1), "↓": (0, 1)}


def _keycaps(target: Any, label: str, x: int, y: int) -> int:
    """Draw ``"q / Esc"`` as key caps ``[q] [Esc]``; return the right edge.

    Arrow keys are drawn as triangles: pygame's bundled font has no arrow glyphs.
    """
    pygame = import_pygame()
    for part in label.split(" / ") if label else []:
        if part in ARROWS:
            width = 22
            pygame.draw.rect(target, TRACK, (x, y, width, 20), border_radius=4)
            dx, dy = ARROWS[part]
            cx, cy = x + width // 2, y + 10
            tip = (cx + 6 * dx, cy + 6 * dy)
            base = [
                (cx - 5 * dx + 5 * dy, cy - 5 * dy + 5 * dx),
                (cx - 5 * dx - 5 * dy, cy - 5 * dy - 5 * dx),
            ]
            pygame.draw.polygon(target, TEXT, [tip, *base])
        else:
            text = render_text(part, 18, TEXT, True)
            width = text.get_width() + 12
            pygame.draw.rect(target, TRACK, (x, y, width, 20), border_radius=4)
            target.blit(text, (x + 6, y + 3))
        x += width + 4
    return x


def scene_surface(frame: np.ndarray) -> Any:
    """A ``pygame.Surface`` of an ``(H, W, 3)`` uint8 frame (no display needed)."""
    pygame = import_pygame()
    if frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) frame, got shape {frame.shape}")
    if frame.shape[2] == 4 or frame.dtype != np.uint8 or not frame.flags.c_contiguous:
        frame = np.ascontiguousarray(frame[..., :3], dtype=np.uint8)
    return pygame.image.frombuffer(frame.tobytes(), (frame.shape[1], frame.shape[0]), "RGB")


def fit_scene(scene: Any, height: int) -> Any:
    """Scale a scene surface to ``height`` (integer factors stay crisp for pixel-art envs)."""
    pygame = import_pygame()
    w, h = scene.get_size()
    if h == height:
        return scene
    factor = height / h
    size = (max(1, round(w * factor)), height)
    if factor >= 1 and float(factor).is_integer():
        return pygame.transform.scale(scene, size)
    return pygame.transform.smoothscale(scene, size)


BANNER_SIZE = 34  # the banner's font size where its words fit the scene


def banner_label(text: str, scene_width: int) -> Any:
    """The banner's words at :data:`BANNER_SIZE`, or smaller where a longer language's do not
    fit a scene ``scene_width`` wide (within the box's margins and padding): whole, never cut."""
    size, room = BANNER_SIZE, scene_width - 56
    label = _TEXT.render(text, size, (255, 255, 255), True)
    while label.get_width() > room and size > 14:
        size = max(14, min(size - 1, size * room // label.get_width()))
        label = _TEXT.render(text, size, (255, 255, 255), True)
    return label


def draw_banner(target: Any, rect: tuple[int, int, int, int], event: Event) -> None:
    """The event in large words over the bottom of the scene, for the moment it happens.

    The bottom, because envs draw their own status bars at the top.
    """
    pygame = import_pygame()
    x, y, w, h = rect
    label = banner_label(event.text, w)
    box = pygame.Rect(0, 0, min(w - 20, label.get_width() + 36), label.get_height() + 18)
    box.midbottom = (x + w // 2, y + h - 14)
    overlay = pygame.Surface(box.size, pygame.SRCALPHA)
    overlay.fill((*TONES[event.tone], 225))
    target.blit(overlay, box.topleft)
    target.blit(label, (box.centerx - label.get_width() // 2, box.y + 9))


def scene_height(scene_size: tuple[int, int]) -> int:
    """The height a scene is drawn at: small scenes are scaled up, others keep their pixels,
    and any scene is scaled down to leave the frame within :data:`MAX_SIZE` (CartPole's wide
    600 x 400 picture would otherwise make a 1350 px window)."""
    w, h = scene_size
    drawn = MIN_HEIGHT if h < UPSCALE_BELOW * MIN_HEIGHT else h
    max_width, max_height = MAX_SIZE[0] - PANEL_WIDTH, MAX_SIZE[1]
    return max(1, min(drawn, max_height, math.floor(h * max_width / w)))


def canvas_size(scene_size: tuple[int, int]) -> tuple[int, int]:
    """``(width, height)`` of a composed frame for a scene of ``(width, height)``."""
    w, h = scene_size
    drawn = scene_height(scene_size)
    return round(w * drawn / h) + PANEL_WIDTH, max(drawn, MIN_HEIGHT)


def compose_frame(scene: np.ndarray | Any, model: HudModel) -> np.ndarray:
    """The scene (an array or a Surface) with the HUD beside it, as an ``(H, W, 3)`` uint8 array."""
    return surface_pixels(compose_surface(scene, model))


def surface_pixels(surface: Any) -> np.ndarray:
    """An ``(H, W, 3)`` uint8 copy of a Surface.

    ``tobytes`` is row-major already: ~8x faster than ``surfarray.array3d`` plus a transpose,
    which is most of a frame's cost at watch speed.
    """
    pygame = import_pygame()
    width, height = surface.get_size()
    data = pygame.image.tobytes(surface, "RGB")
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3).copy()


def compose_surface(scene: np.ndarray | Any, model: HudModel) -> Any:
    """:func:`compose_frame` as a ``pygame.Surface``."""
    pygame = import_pygame()
    if isinstance(scene, np.ndarray):
        scene = scene_surface(scene)
    width, height = canvas_size(scene.get_size())
    canvas = pygame.Surface((width, height))
    canvas.fill(BACKGROUND)
    scaled = fit_scene(scene, scene_height(scene.get_size()))
    canvas.blit(scaled, (0, (height - scaled.get_height()) // 2))
    scene_rect = (0, 0, width - PANEL_WIDTH, height)
    if model.banner is not None:
        draw_banner(canvas, scene_rect, model.banner)
    draw_panel(canvas, (width - PANEL_WIDTH, 0, PANEL_WIDTH, height), model)
    return canvas


# -- the window and its keys ---------------------------------------------------------------------
OFFSCREEN_DRIVERS = ("offscreen", "dummy")  # SDL video drivers that show nothing on a screen.


def display_problem(
    environ: Mapping[str, str], driver: str | None, platform: str | None = None
) -> str | None:
    """Why no window can be shown, or None when one can.

    Args:
        environ: the process environment (``DISPLAY``, ``WAYLAND_DISPLAY``, ``SDL_VIDEODRIVER``).
        driver: ``pygame.display.get_driver()`` after init, or None before it.
        platform: ``sys.platform`` unless given.

    A driver asked for in ``SDL_VIDEODRIVER`` is never a problem: tests and CI run the window
    loop on ``dummy`` on purpose. Otherwise SDL falls back to ``offscreen`` when it finds no
    display, and the command would run with no window and no way to quit but Ctrl-C.
    """
    if environ.get("SDL_VIDEODRIVER"):
        return None
    unset = not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    if (platform or sys.platform).startswith("linux") and unset:
        return "DISPLAY/WAYLAND_DISPLAY not set"
    if driver in OFFSCREEN_DRIVERS:
        if unset:
            return "DISPLAY/WAYLAND_DISPLAY not set"
        shown = environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")
        return f"the display {shown!r} could not be opened"
    return None


def check_display(command: str) -> None:
    """Raise a :class:`CLIError` when ``command`` (``"rl watch"``, ``"rl play"``) has no display.

    On Linux a missing ``DISPLAY`` is caught before SDL starts (which would print its own
    puzzling ``XDG_RUNTIME_DIR`` line); elsewhere, and for a display that does not answer, the
    driver SDL picked is checked after ``pygame.display.init()``.
    """
    problem = display_problem(os.environ, None)
    if problem is None and not os.environ.get("SDL_VIDEODRIVER"):
        pygame = import_pygame()
        was_init = pygame.display.get_init()
        try:
            pygame.display.init()
        except pygame.error as exc:
            problem = f"SDL could not start its video: {exc}"
        else:
            problem = display_problem(os.environ, pygame.display.get_driver())
            if problem is not None and not was_init:
                pygame.display.quit()
    if problem is None:
        return
    if command == "rl play":
        hint = "rl play needs a window for your keys: run it on a desktop (or ssh -X)"
    else:
        hint = "use `rl record ... --out x.gif` to make a GIF instead"
    raise CLIError(f"no display to open a window on ({problem}); {hint}")


def _desktop_size() -> tuple[int, int] | None:
    """The screen's size, or None on a driver without a screen (dummy, offscreen)."""
    pygame = import_pygame()
    if not pygame.display.get_init():
        pygame.display.init()
    if pygame.display.get_driver() in OFFSCREEN_DRIVERS:
        return None
    sizes = pygame.display.get_desktop_sizes()
    return tuple(sizes[0]) if sizes else None


def fit_size(size: tuple[int, int], screen: tuple[int, int] | None) -> tuple[int, int]:
    """``size`` scaled down (keeping its aspect) to fit ``screen`` less room for the window's
    title bar and the desktop's panels; unchanged when it fits or the screen is unknown."""
    if screen is None:
        return size
    room = (screen[0] - 16, screen[1] - 64)
    factor = min(1.0, room[0] / size[0], room[1] / size[1])
    if factor >= 1.0:
        return size
    return max(1, math.floor(size[0] * factor)), max(1, math.floor(size[1] * factor))


SPEEDS = (1, 2, 4, 8, 15, 30, 60, 120, 240)  # steps per second that + and − move between.


@dataclass
class Controls:
    """What the learner asked for with the keyboard since the last frame."""

    fps: float
    paused: bool = False
    quit: bool = False
    reset: bool = False
    single_step: bool = False
    next_checkpoint: bool = False

    def consume(self) -> None:
        """Forget the one-shot requests once they are acted on."""
        self.reset = self.single_step = self.next_checkpoint = False

    def faster(self, direction: int) -> None:
        if self.fps <= 0:  # "as fast as possible" slows down to the fastest listed speed.
            self.fps = SPEEDS[-1] if direction < 0 else 0
            return
        index = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self.fps))
        self.fps = SPEEDS[min(max(index + direction, 0), len(SPEEDS) - 1)]


def handle_watch_events(events: list[Any], controls: Controls) -> None:
    """Apply ``rl watch``'s keys (see :func:`watch_keys`) and the close button to ``controls``."""
    pygame = import_pygame()
    for event in events:
        if event.type in (pygame.QUIT, getattr(pygame, "WINDOWCLOSE", -1)):
            controls.quit = True
        elif event.type == pygame.KEYDOWN:
            key = event.key
            if key in (pygame.K_q, pygame.K_ESCAPE):
                controls.quit = True
            elif key == pygame.K_SPACE:
                controls.paused = not controls.paused
            elif key == pygame.K_RIGHT:
                controls.single_step = True
            elif key in (pygame.K_PLUS, pygame.K_EQUALS, pygame.K_KP_PLUS):
                controls.faster(+1)
            elif key in (pygame.K_MINUS, pygame.K_KP_MINUS, pygame.K_UNDERSCORE):
                controls.faster(-1)
            elif key == pygame.K_r:
                controls.reset = True
            elif key == pygame.K_n:
                controls.next_checkpoint = True


class ViewerWindow:
    """The learner's window: shows composed frames, returns its events, paces the loop.

    The loop it paces never sleeps longer than a 30th of a second, whatever the stepping speed,
    so keys and the close button answer at once and the OS never sees a frozen window.
    """

    UI_HZ = 30  # Frames per second while paused or stepping slowly.

    def __init__(self, title: str, size: tuple[int, int]) -> None:
        # The command checked the display (check_display) before it loaded anything.
        pygame = import_pygame()
        self.size = size
        # A screen smaller than the frame (a laptop at 1024 x 768) gets the frame scaled down.
        self._shown = fit_size(size, _desktop_size())
        self._window = Window(title, self._shown, fps=0)  # fps=0: this class paces, not show().
        self._clock = pygame.time.Clock()
        self._budget = 0.0

    @property
    def is_open(self) -> bool:
        return self._window.is_open

    def show(self, frame: np.ndarray) -> None:
        if self._shown != (frame.shape[1], frame.shape[0]):
            pygame = import_pygame()
            scaled = pygame.transform.smoothscale(scene_surface(frame), self._shown)
            frame = surface_pixels(scaled)
        self._window.show(frame)

    def events(self) -> list[Any]:
        """Every pending event (keys, close button), pumped each frame."""
        return import_pygame().event.get()

    def steps_due(self, controls: Controls) -> int:
        """Wait for the next frame and say how many env steps to take in it.

        Paused: 0, or 1 after → . At ``fps <= 0``: 1 per frame with no waiting (the headless
        path). Otherwise frames come at ``UI_HZ`` (or ``fps`` if faster, up to 60) and steps
        accrue at ``fps``.
        """
        if controls.paused:
            self._clock.tick(self.UI_HZ)
            self._budget = 0.0
            return 1 if controls.single_step else 0
        if controls.fps <= 0:
            return 1
        ms = self._clock.tick(min(max(controls.fps, self.UI_HZ), 60))
        self._budget = min(self._budget + ms / 1000.0 * controls.fps, 8.0)
        steps = int(self._budget)
        self._budget -= steps
        return steps

    def close(self) -> None:
        self._window.close()
