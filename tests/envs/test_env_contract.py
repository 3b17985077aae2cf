"""The environment contract (DESIGN.md), checked for every id in ``envs.SANDBOX_ENV_IDS``.

A new environment gets these tests by being registered in ``envs/__init__.py``. Env-specific
behaviour (dynamics, rewards) is tested in each env's own test file.
"""

from __future__ import annotations

import json
import math
import re
import sys
import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import envs
from rl.vector import make_vector_env

ENV_IDS = list(envs.SANDBOX_ENV_IDS)
HEADINGS = (
    "Description",
    "Action Space",
    "Observation Space",
    "Rewards",
    "Starting State",
    "Episode End",
    "Arguments",
    "Batched Semantics",
    "Version History",
)
# Warnings check_env gives for choices Gymnasium's own envs make (CartPole's unbounded
# velocities, Pendulum's [-2, 2] torque) and for checking a wrapped env on purpose.
INHERITED_WARNINGS = re.compile(
    r"Box observation space (minimum|maximum) value is -?infinity"
    r"|recommend using a symmetric and normalized space"
    r"|is different from the unwrapped version"
)
HYPOTHESIS = settings(max_examples=40, deadline=None, derandomize=True)


def short_name(env_id: str) -> str:
    """``"sandbox/CartPole-v1"`` -> ``"CartPole"``: what error messages must mention."""
    return env_id.split("/")[-1].split("-v")[0]


def make_vec(env_id: str, num_envs: int = 8, **kwargs: Any) -> Any:
    return gymnasium.make_vec(
        env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs
    )


def random_actions(space: spaces.Space, num_envs: int, rng: np.random.Generator) -> Any:
    if isinstance(space, spaces.Discrete):
        return torch.as_tensor(rng.integers(space.start, space.start + space.n, size=num_envs))
    return torch.as_tensor(rng.uniform(space.low, space.high, size=(num_envs, *space.shape)))


def is_blank(frame: np.ndarray) -> bool:
    return bool((frame == frame[0, 0]).all())


# -- Gymnasium's checker and ours ------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("wrapped", [False, True], ids=["unwrapped", "registered-wrappers"])
def test_gymnasium_check_env_passes(env_id: str, wrapped: bool) -> None:
    env = gymnasium.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env if wrapped else env.unwrapped)  # renders human and rgb_array too
    unexpected = [str(w.message) for w in caught if not INHERITED_WARNINGS.search(str(w.message))]
    assert unexpected == []
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_vector_env_passes_on_make_vec(env_id: str) -> None:
    env = make_vec(env_id)
    passed = envs.check_vector_env(env, num_steps=210)  # past the 200-step limits
    assert "single_env" in passed and "bad_actions" in passed
    env.close()


@pytest.mark.gpu
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_vector_env_passes_on_cuda(env_id: str) -> None:
    env = make_vec(env_id, device="cuda")
    passed = envs.check_vector_env(env, num_steps=210)
    assert "single_env" in passed
    obs, _ = env.reset(seed=0)
    assert obs.device.type == "cuda"


# -- reset and step order, seeds, options --------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_step_before_reset_is_refused(env_id: str) -> None:
    """A start state nobody seeded would make the run unrepeatable (Gymnasium refuses too)."""
    single = gymnasium.make(env_id).unwrapped
    with pytest.raises(gymnasium.error.ResetNeeded, match="call reset"):
        single.step(single.action_space.sample())
    vector = make_vec(env_id, num_envs=2)
    with pytest.raises(gymnasium.error.ResetNeeded, match="call reset"):
        vector.step(vector.action_space.sample())
    saved = make_vec(env_id, num_envs=2)
    saved.reset(seed=1)
    vector.unwrapped.load_state_dict(saved.unwrapped.state_dict())
    vector.step(vector.action_space.sample())  # a restored state needs no reset


def test_a_state_set_by_hand_needs_no_reset() -> None:
    env = gymnasium.make("sandbox/CartPole-v1").unwrapped
    env.state = [0.0, 0.0, 0.01, 0.0]
    assert env.step(0)[1] == 1.0


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ([1, 2], "seed must be one integer, got list"),
        (np.array([1, 2]), "seed must be one integer, got ndarray"),
        ((), "seed must be one integer, got tuple"),
        (-1, r"seed must be an integer in \[0, 2\*\*64\)"),
        (2**64, r"seed must be an integer in \[0, 2\*\*64\)"),
        (1.5, r"seed must be an integer in \[0, 2\*\*64\)"),
        (True, r"seed must be an integer in \[0, 2\*\*64\)"),
    ],
)
def test_bad_seeds_are_refused(env_id: str, seed: Any, message: str) -> None:
    """One integer seeds every row; a list of per-row seeds would be silently ignored."""
    for env in (make_vec(env_id, num_envs=2), gymnasium.make(env_id)):
        with pytest.raises(ValueError, match=message) as caught:
            env.reset(seed=seed)
        assert short_name(env_id) in str(caught.value)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_the_largest_seed_works_and_options_are_refused(env_id: str) -> None:
    for env in (make_vec(env_id, num_envs=2), gymnasium.make(env_id)):
        env.reset(seed=2**64 - 1)
        env.reset(seed=np.uint64(7), options={})  # empty options: nothing asked
        with pytest.raises(ValueError, match="reset options are not supported"):
            env.reset(options={"low": -0.01, "high": 0.01})
    # A refused reset changes nothing: not even the seed it was given.
    first, second = gymnasium.make(env_id), gymnasium.make(env_id)
    first.reset(seed=5)
    second.reset(seed=5)
    with pytest.raises(ValueError, match="reset options"):
        second.reset(seed=99, options={"x_init": 1.0})
    assert np.array_equal(first.reset()[0], second.reset()[0])


def test_stepping_past_termination_warns_once_per_episode() -> None:
    """As Gymnasium's CartPole does; the dog's episode ends when it relieves itself."""
    env = gymnasium.make("sandbox/DogTraining-v0").unwrapped
    env.reset(seed=0)
    for _ in range(10_000):
        if env.step(env.action_space.sample())[2]:
            break
    else:
        pytest.fail("no episode terminated")
    with pytest.warns(UserWarning, match="step\\(\\) called after the episode terminated"):
        env.step(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.step(0)  # once
        env.reset(seed=1)
        env.step(0)


def test_compile_auto_from_json_is_accepted() -> None:
    """``--set env_kwargs={"compile": "auto"}`` gives a string that is not the literal's object."""
    auto = json.loads('"auto"')
    env = make_vec("sandbox/CartPole-v1", num_envs=2, compile=auto)
    assert env.unwrapped.compile_mode == "auto"
    with pytest.raises(ValueError, match='compile must be False, True or "auto"'):
        make_vec("sandbox/CartPole-v1", num_envs=2, compile="yes")


@pytest.mark.parametrize("value", ["False", 2, None])
def test_flags_must_be_booleans(value: Any) -> None:
    with pytest.raises(ValueError, match="sutton_barto_reward must be True or False"):
        gymnasium.make("sandbox/CartPole-v1", sutton_barto_reward=value)
    with pytest.raises(ValueError, match="validate_actions must be True or False"):
        make_vec("sandbox/Pendulum-v1", num_envs=2, validate_actions=value)


# -- construction ----------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_vec_kwargs_reach_the_constructor(env_id: str) -> None:
    env = make_vec(env_id, num_envs=3, device="cpu", dtype=torch.float64)
    base = env.unwrapped
    assert base.num_envs == 3 and base.device == torch.device("cpu")
    assert base.dtype == torch.float64
    assert base.max_episode_steps == gymnasium.spec(env_id).max_episode_steps
    obs, _ = env.reset(seed=0)
    assert obs.dtype == torch.float64 and obs.shape == (3, *env.single_observation_space.shape)


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_envs": 0}, "num_envs"),
        ({"num_envs": -2}, "num_envs"),
        ({"num_envs": 2, "device": "tpu"}, "device"),
        ({"num_envs": 2, "device": "not a device"}, "device"),
        ({"num_envs": 2, "dtype": torch.int32}, "dtype"),
        ({"num_envs": 2, "max_episode_steps": 0}, "max_episode_steps"),
    ],
)
def test_bad_constructor_arguments_raise_value_error(
    env_id: str, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        make_vec(env_id, **kwargs)
    assert short_name(env_id) in str(caught.value)


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_docstrings_have_gymnasiums_headings(env_id: str) -> None:
    single_cls = type(gymnasium.make(env_id).unwrapped)
    vector_cls = type(make_vec(env_id, num_envs=1).unwrapped)
    for cls in (single_cls, vector_cls):
        doc = cls.__doc__ or ""
        missing = [h for h in HEADINGS if not re.search(rf"^\s*#+\s*{h}\s*$", doc, re.M)]
        assert missing == [], f"{cls.__name__} docstring lacks headings {missing}"


# -- seeding ---------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_same_seed_same_trajectory(env_id: str) -> None:
    def single_run(seed: int) -> list[Any]:
        env = gymnasium.make(env_id)
        env.action_space.seed(seed)
        trace = [env.reset(seed=seed)[0]]
        for _ in range(30):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace += [obs, reward, terminated, truncated]
            if terminated or truncated:
                trace.append(env.reset()[0])
        return trace

    def vector_run(seed: int) -> list[torch.Tensor]:
        env = make_vec(env_id, num_envs=4)
        rng = np.random.default_rng(seed)
        trace = [env.reset(seed=seed)[0]]
        for _ in range(30):
            trace += list(env.step(random_actions(env.single_action_space, 4, rng))[:4])
        return trace

    first, second, other = single_run(3), single_run(3), single_run(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[0], other[0]), "different seeds should start differently"
    first, second = vector_run(3), vector_run(3)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


# -- rendering -------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rgb_array_frames_are_drawn_and_move(env_id: str) -> None:
    env = gymnasium.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    env.action_space.seed(0)
    first = env.render()
    assert first.dtype == np.uint8 and first.ndim == 3 and first.shape[2] == 3
    assert not is_blank(first)
    changed = False
    for _ in range(20):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frame = env.render()
        assert frame.shape == first.shape and not is_blank(frame)
        changed = changed or not np.array_equal(frame, first)
        if terminated or truncated:
            env.reset()
    assert changed, "20 steps and the picture never changed"
    env.close()

    vector = make_vec(env_id, num_envs=3, render_mode="rgb_array")
    vector.reset(seed=0)
    frames = vector.render()
    assert len(frames) == 3 and all(f.shape == first.shape and not is_blank(f) for f in frames)


def test_human_windows_survive_a_gymnasium_env_quitting_the_display() -> None:
    ours = [gymnasium.make(env_id, render_mode="human") for env_id in ENV_IDS]
    for env in ours:
        env.reset(seed=0)
    theirs = gymnasium.make("CartPole-v1", render_mode="human")  # pygame.display.quit() on close
    theirs.reset(seed=0)
    theirs.step(0)
    theirs.close()
    for _ in range(2):  # each window opens again, not only the first to draw after the quit
        for env in ours:
            env.step(env.action_space.sample())
    # Quit again, and this time another env starts the display before ours draw: a window
    # must not take the display being up as its own window being alive.
    theirs = gymnasium.make("CartPole-v1", render_mode="human")
    theirs.reset(seed=0)
    theirs.close()
    again = gymnasium.make("CartPole-v1", render_mode="human")
    again.reset(seed=0)  # pygame.init() and a window of its own
    for _ in range(2):
        for env in ours:
            env.step(env.action_space.sample())
    again.step(0)
    for env in ours:
        env.close()
    again.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_human_windows_work_headless_and_close_independently(env_id: str) -> None:
    import pygame

    from envs import rendering

    already_open = len(rendering._windows)  # windows another test may have left open
    first = gymnasium.make(env_id, render_mode="human")
    second = gymnasium.make(env_id, render_mode="human")
    first.reset(seed=0)
    second.reset(seed=1)
    for env in (first, second):
        env.step(env.action_space.sample())
    assert pygame.display.get_init()
    assert len(rendering._windows) == already_open + 2
    first.close()
    first.close()  # closing twice is allowed
    assert pygame.display.get_init(), "closing one window shut the display for the other"
    for _ in range(3):
        _, _, terminated, truncated, _ = second.step(second.action_space.sample())
        if terminated or truncated:
            second.reset()
    second.close()
    assert len(rendering._windows) == already_open
    if already_open == 0:
        assert not pygame.display.get_init(), "the last window to close quits the display"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_rendering_without_pygame_says_how_to_install_it(
    env_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = gymnasium.make(env_id, render_mode="rgb_array")  # builds and steps without pygame
    monkeypatch.setitem(sys.modules, "pygame", None)  # makes `import pygame` fail
    env.reset(seed=0)
    env.step(env.action_space.sample())
    with pytest.raises(ImportError, match="pip install pygame-ce"):
        env.render()


# -- bad actions -----------------------------------------------------------------------------
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def bad_single_actions(space: spaces.Space) -> st.SearchStrategy[Any]:
    """Actions a single env must refuse with ValueError (Box: finite out-of-range is clipped)."""
    junk = st.one_of(st.none(), st.text(max_size=3), st.just(object()), st.just(1 + 2j))
    if isinstance(space, spaces.Discrete):
        lo, hi = int(space.start), int(space.start + space.n - 1)
        out_of_range = st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1))
        in_range = st.integers(lo, hi)
        return st.one_of(
            junk,
            out_of_range,
            out_of_range.filter(lambda v: -(2**63) <= v < 2**63).map(np.int64),
            st.floats(),  # 1.0 too: floats are not Discrete actions, as in Gymnasium
            st.booleans(),
            st.booleans().map(np.bool_),
            st.booleans().map(lambda b: torch.tensor(b)),
            st.lists(in_range, min_size=2, max_size=4).map(np.array),  # a batch, not a scalar
            in_range.map(lambda v: np.array([[v]])),
            st.just(np.array([], dtype=np.int64)),
        )
    assert isinstance(space, spaces.Box)
    size = int(np.prod(space.shape))
    finite = st.floats(-10.0, 10.0)
    right_size = st.lists(finite, min_size=size, max_size=size)
    with_nan = st.tuples(right_size, st.integers(0, size - 1)).map(
        lambda v: np.array([math.nan if i == v[1] else x for i, x in enumerate(v[0])])
    )
    wrong_size = st.integers(0, size + 3).filter(lambda n: n != size)
    return st.one_of(
        junk,
        with_nan.map(lambda a: a.reshape(space.shape)),
        with_nan.map(lambda a: torch.from_numpy(a.reshape(space.shape))),
        wrong_size.map(lambda n: np.zeros(n)),
        right_size.map(lambda v: np.array(v).reshape(1, *space.shape)),  # right size, not shape
        st.sampled_from([math.inf, -math.inf]).map(lambda v: np.full(space.shape, v)),
        st.just(np.zeros(space.shape, dtype=bool)),
        st.just(np.zeros(space.shape, dtype=np.complex64)),
        st.just(torch.zeros(space.shape, dtype=torch.bool)),
        st.lists(st.text(max_size=2), min_size=size, max_size=size).map(np.array),
    )


def bad_vector_actions(space: spaces.Space, n: int) -> st.SearchStrategy[Any]:
    """Batches of ``n`` actions a vector env must refuse with ValueError."""
    junk = st.one_of(st.none(), st.just(["a"] * n), st.just(object()))
    if isinstance(space, spaces.Discrete):
        lo, hi = int(space.start), int(space.start + space.n - 1)
        in_range = st.lists(st.integers(lo, hi), min_size=n, max_size=n)
        bad_value = st.one_of(INT64.filter(lambda v: v < lo), INT64.filter(lambda v: v > hi))
        out_of_range = st.tuples(in_range, st.integers(0, n - 1), bad_value).map(
            lambda v: torch.tensor([v[2] if i == v[1] else a for i, a in enumerate(v[0])])
        )
        return st.one_of(
            junk,
            out_of_range,
            out_of_range.map(lambda t: t.numpy()),
            in_range.map(lambda v: torch.tensor(v, dtype=torch.float32)),  # floats, not ints
            in_range.map(lambda v: np.array(v, dtype=bool)),
            in_range.map(lambda v: torch.tensor(v).unsqueeze(-1)),  # (n, 1)
            st.integers(0, 2 * n).filter(lambda m: m != n).map(lambda m: torch.zeros(m).long()),
            st.just(torch.tensor(lo)),  # no batch dimension
        )
    assert isinstance(space, spaces.Box)
    shape = (n, *space.shape)
    size = int(np.prod(shape))
    with_nan = st.tuples(st.integers(0, size - 1), st.floats(-10.0, 10.0)).map(
        lambda v: torch.full((size,), v[1]).index_fill(0, torch.tensor([v[0]]), math.nan)
    )
    return st.one_of(
        junk,
        with_nan.map(lambda t: t.reshape(shape)),
        with_nan.map(lambda t: t.reshape(shape).numpy()),
        st.just(torch.zeros(shape, dtype=torch.bool)),
        st.just(torch.zeros(shape, dtype=torch.complex64)),
        st.just(torch.zeros((n + 1, *space.shape))),
        st.just(torch.zeros((n, *space.shape, 2))),
    )


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_single_env_rejects_bad_actions_naming_itself(env_id: str) -> None:
    env = gymnasium.make(env_id)
    env.reset(seed=0)

    @HYPOTHESIS
    @given(action=bad_single_actions(env.action_space))
    def check(action: Any) -> None:
        with pytest.raises(ValueError) as caught:
            env.step(action)
        assert short_name(env_id) in str(caught.value)

    check()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_vector_env_rejects_bad_actions_naming_itself(env_id: str) -> None:
    env = make_vec(env_id, num_envs=3)
    env.reset(seed=0)

    @HYPOTHESIS
    @given(actions=bad_vector_actions(env.single_action_space, 3))
    def check(actions: Any) -> None:
        with pytest.raises(ValueError) as caught:
            env.step(actions)
        assert short_name(env_id) in str(caught.value)

    check()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_out_of_range_box_actions_are_clipped_like_gymnasium(env_id: str) -> None:
    env = gymnasium.make(env_id)
    if not isinstance(env.action_space, spaces.Box):
        pytest.skip(f"{env_id} has discrete actions: out of range is an error (tested above)")
    space = env.action_space
    for too_far in (space.high + 5.0, space.low - 5.0):
        env.reset(seed=0)
        clipped_result = env.step(np.clip(too_far, space.low, space.high))
        env.reset(seed=0)
        result = env.step(too_far)
        assert np.array_equal(result[0], clipped_result[0]) and result[1] == clipped_result[1]
    # ±inf is not clipped (Gymnasium's Pendulum would): a diverged policy, said so.
    for endless in (np.inf, -np.inf, np.nan):
        env.reset(seed=0)
        with pytest.raises(ValueError, match=r"NaN or ±inf; expected an action from Box"):
            env.step(np.full(space.shape, endless))
    vector = make_vector_env(env_id, 3, validate_actions=True)
    vector.reset(seed=0)
    with pytest.raises(ValueError, match=r"actions contain NaN or ±inf; expected a batch of 3"):
        vector.step(torch.full((3, *space.shape), np.inf))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_batched_spaces_are_built_when_read_and_num_envs_is_bounded(env_id: str) -> None:
    env = make_vector_env(env_id, 5)
    core = env.unwrapped
    assert core._observation_space is None and core._action_space is None  # not yet paid for
    assert env.observation_space == gymnasium.vector.utils.batch_space(
        env.single_observation_space, 5
    )
    assert env.action_space == gymnasium.vector.utils.batch_space(env.single_action_space, 5)
    assert env.observation_space is env.observation_space  # built once
    env.close()
    most = 2**31 - 1
    with pytest.raises(ValueError, match=rf"num_envs must be at most {most:,} .*got {most + 1:,}"):
        type(core)(most + 1)
