"""The compiled step (``compile=True``) against the eager one: identical trajectories.

On the CPU the compiled whole step (transition, truncation, episode statistics, autoreset,
observation) must give the eager step's results bit for bit, autoreset rows and
``info["episode"]`` included: the start-state hash is exact integer arithmetic, inductor's CPU
code contracts no FMA, and ``sin``/``cos`` run the eager kernels (envs/core.py). Compiling
takes 10-80 s on a 2-core CPU (cold cache), so the default suite compiles one small CartPole;
Pendulum, DogTraining and float64 are ``slow``. CUDA checks are ``gpu``.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

import envs
from envs import core, rng
from envs.compiled import CompiledFlat, compiling

ENV_IDS = list(envs.SANDBOX_ENV_IDS)
# Importing inductor warns about torch's own use of torch.jit.script_method.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")


def make(env_id: str, compile: bool | str, num_envs: int = 16, **kwargs: Any) -> Any:
    return gymnasium.make_vec(
        env_id,
        num_envs=num_envs,
        vectorization_mode="vector_entry_point",
        compile=compile,
        **kwargs,
    ).unwrapped


def random_actions(space: spaces.Space, num_envs: int, generator: torch.Generator) -> Any:
    if isinstance(space, spaces.Discrete):
        return torch.randint(int(space.n), (num_envs,), generator=generator)
    low, high = float(space.low.min()), float(space.high.max())
    # A little beyond the bounds, so the clipping is exercised too.
    return (
        low - 0.5 + (high - low + 1.0) * torch.rand((num_envs, *space.shape), generator=generator)
    )


def flatten(value: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor in a step's results, keyed by its path (``info/episode/r``, ...)."""
    if isinstance(value, torch.Tensor):
        return {prefix: value}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    out: dict[str, torch.Tensor] = {}
    for key, item in items:
        out.update(flatten(item, f"{prefix}/{key}"))
    return out


def assert_identical(ours: Any, theirs: Any, where: str) -> None:
    mine, other = flatten(ours), flatten(theirs)
    assert mine.keys() == other.keys(), where
    for key, tensor in mine.items():
        assert tensor.dtype == other[key].dtype, f"{where}{key}: dtype"
        assert tensor.shape == other[key].shape, f"{where}{key}: shape"
        assert torch.equal(tensor, other[key]), f"{where}{key}: values differ"


def run_side_by_side(
    env_id: str, steps: int, num_envs: int = 16, seed: int = 3, **kwargs: Any
) -> tuple[Any, Any, int]:
    """Step an eager and a compiled env with the same actions; return both and #finished."""
    eager = make(env_id, False, num_envs, **kwargs)
    compiled = make(env_id, True, num_envs, **kwargs)
    assert_identical(eager.reset(seed=seed), compiled.reset(seed=seed), "reset")
    generator = torch.Generator().manual_seed(seed)
    finished = 0
    for t in range(steps):
        actions = random_actions(eager.single_action_space, num_envs, generator)
        result = eager.step(actions)
        assert_identical(result, compiled.step(actions), f"step {t}: ")
        # The state too (what render draws and state_dict saves), not only what it returns.
        # (The last of carried() is the step count's tensor, which the eager CPU step keeps as
        # a Python int.)
        assert_identical(eager.carried()[:-1], compiled.carried()[:-1], f"step {t} state: ")
        finished += int(result[4]["_episode"].sum())
    return eager, compiled, finished


# -- the quick check (default suite: one compile of a small CartPole) -------------------------
def test_compiled_cartpole_equals_eager_exactly_with_resets_resume_and_restriding() -> None:
    eager, compiled, finished = run_side_by_side(
        "sandbox/CartPole-v1", steps=200, max_episode_steps=40
    )
    assert finished > 50, "termination and truncation autoresets are both exercised"
    assert compiled.compiled and not eager.compiled
    assert compiled.compile_seconds is not None and compiled.compile_seconds > 0
    assert compiled._compiled_step.backend in ("inductor", "torch.compile")

    # Exact resume across modes: the compiled env's state_dict continues in an eager env.
    resumed = make("sandbox/CartPole-v1", False, 16, max_episode_steps=40)
    resumed.load_state_dict(compiled.state_dict())
    # A state assigned by hand in another layout (row-major) is restrided, not refused.
    compiled.state = compiled.state.contiguous()
    generator = torch.Generator().manual_seed(11)
    for t in range(60):
        actions = random_actions(eager.single_action_space, 16, generator)
        expected = eager.step(actions)
        assert_identical(compiled.step(actions), expected, f"after resume, step {t}: ")
        assert_identical(resumed.step(actions), expected, f"resumed eager, step {t}: ")


# -- no graph breaks, flags, fallbacks (no compiling: fast) ---------------------------------
def whole_step_inputs(env: Any) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    actions = env.check_actions(random_actions(env.single_action_space, env.num_envs, generator))
    state = env.state
    env._state_type = None if isinstance(state, torch.Tensor) else type(state)
    leaves = [state] if env._state_type is None else list(state)
    return [*leaves, env._elapsed, env._returns, actions, env._rng_key_t, env._rng_step_t]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_the_whole_step_is_one_graph_for_torch_compile(env_id: str) -> None:
    kwargs = {"layout": "random", "num_layouts": 5} if "Dog" in env_id else {}
    env = make(env_id, False, 8, **kwargs)
    env.reset(seed=0)
    explanation = torch._dynamo.explain(env._whole_step)(*whole_step_inputs(env))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("bad", [1, 0, "yes", None, "max-autotune"])
def test_compile_flag_must_be_false_true_or_auto(env_id: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=r"compile must be False, True or \"auto\""):
        make(env_id, bad)


def test_auto_compiles_where_it_measured_faster() -> None:
    small = make("sandbox/CartPole-v1", "auto", core.AUTO_COMPILE_MIN_ENVS_CPU - 1)
    large = make("sandbox/CartPole-v1", "auto", core.AUTO_COMPILE_MIN_ENVS_CPU)
    assert not small.compiled and large.compiled
    assert small.compile_mode == large.compile_mode == "auto"
    assert not make("sandbox/CartPole-v1", False, 4096).compiled
    # Pendulum's compiled CPU step measured slower than its eager one at every N: never auto.
    assert not make("sandbox/Pendulum-v1", "auto", 65536).compiled
    assert make("sandbox/Pendulum-v1", True, 4).compiled


def test_auto_falls_back_to_eager_with_a_warning_when_compiling_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(self: CompiledFlat, inputs: list[torch.Tensor]) -> Any:
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(CompiledFlat, "_compile", fail)
    n = core.AUTO_COMPILE_MIN_ENVS_CPU
    auto, eager = make("sandbox/CartPole-v1", "auto", n), make("sandbox/CartPole-v1", False, n)
    auto.reset(seed=1)
    eager.reset(seed=1)
    actions = torch.ones(n, dtype=torch.long)
    with pytest.warns(RuntimeWarning, match="could not compile the step"):
        result = auto.step(actions)
    assert not auto.compiled
    assert_identical(result, eager.step(actions), "fallback: ")
    forced = make("sandbox/CartPole-v1", True, 4)
    forced.reset(seed=1)
    with pytest.raises(RuntimeError, match="no C\\+\\+ compiler"):
        forced.step(torch.ones(4, dtype=torch.long))


def test_hash_agrees_in_numpy_torch_and_python_ints() -> None:
    numbers = np.random.default_rng(0)
    for key, step in ((0, 0), (2**32 - 1, 7), (123456789, 2**31 + 5), (42, 2**40)):
        salt = rng.step_salt(key, step)
        key_t = torch.tensor(rng.int32_bits(key), dtype=torch.int32)
        step_t = torch.tensor(rng.int32_bits(step), dtype=torch.int32)
        assert int(rng.step_salt_tensor(key_t, step_t)) == salt
        rows = np.sort(numbers.choice(100_000, size=300, replace=False))
        ours = torch.from_numpy(rng.start_bits_numpy(salt, rows, 4))
        dense = rng.start_bits(salt, torch.arange(100_000), 4)
        assert ours.dtype == dense.dtype == torch.int32
        assert torch.equal(ours, dense[:, torch.from_numpy(rows)])
    bits = rng.start_bits(rng.step_salt(5, 9), torch.arange(200_000), 1)[0]
    for dtype in (torch.float32, torch.float64):
        u = rng.uniform_from_bits(bits, dtype)
        assert u.dtype == dtype and float(u.min()) >= 0.0 and float(u.max()) < 1.0
        assert abs(float(u.mean()) - 0.5) < 0.005, "uniform"
    counts = torch.bincount(rng.integers_from_bits(bits, 7), minlength=7)
    assert counts.numel() == 7 and int(counts.min()) > 0.95 * 200_000 / 7


def test_two_steps_salts_never_give_rows_the_same_start_states() -> None:
    # Salts that differ by a multiple of the lanes below N * lanes: with one salt xored into
    # the (row, lane) index, every row's start at one step was another row's at the other.
    rows = torch.arange(4096)
    salt = rng.step_salt(7, 3)
    for lanes in (2, 3, 4):
        first = {tuple(bits) for bits in rng.start_bits(salt, rows, lanes).T.tolist()}
        for other in (salt ^ (lanes * 8), rng.int32_bits(salt + lanes * 5)):
            again = rng.start_bits(other, rows, lanes).T.tolist()
            assert sum(tuple(bits) in first for bits in again) == 0, (lanes, other)


def test_the_autoreset_stream_is_fixed_by_the_seed_and_differs_between_seeds() -> None:
    def episode_starts(seed: int) -> torch.Tensor:
        env = make("sandbox/CartPole-v1", False, 64)
        env.reset(seed=seed)
        starts = []
        for _ in range(60):
            obs, _, terminated, truncated, _ = env.step(torch.ones(64, dtype=torch.long))
            starts.append(obs[terminated | truncated])
        return torch.cat(starts)

    first, again, other = episode_starts(0), episode_starts(0), episode_starts(1)
    assert first.shape[0] > 64 and torch.equal(first, again)
    assert not torch.equal(first[:64], other[:64])
    assert float(first.abs().max()) < 0.05, "fresh rows start in (-0.05, 0.05)"


def test_a_graph_traced_from_one_tensor_passed_twice_reads_both_inputs_later() -> None:
    """DogTraining's start states share one zeros tensor among fields: a graph traced from it
    must still tell those fields apart when they differ."""
    step = CompiledFlat(lambda a, b: [a + 1, b * 2], "apart")
    zeros = torch.zeros(3)
    step([zeros, zeros])
    first, second = step([torch.ones(3), torch.full((3,), 5.0)])
    assert torch.equal(first, torch.full((3,), 2.0)) and torch.equal(second, torch.full((3,), 10.0))


def test_compiling_is_false_outside_tracing() -> None:
    assert not compiling()


# -- the other envs and float64 (slow: a compile each) ---------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("sandbox/Pendulum-v1", {"max_episode_steps": 50}),
        ("sandbox/DogTraining-v0", {"layout": "random", "num_layouts": 20}),
        ("sandbox/CartPole-v1", {"dtype": torch.float64, "sutton_barto_reward": True}),
        ("sandbox/Pendulum-v1", {"dtype": torch.float64, "max_episode_steps": 30}),
    ],
    ids=["pendulum", "dog-random-houses", "cartpole-float64", "pendulum-float64"],
)
def test_compiled_equals_eager_exactly(env_id: str, kwargs: dict[str, Any]) -> None:
    _, compiled, finished = run_side_by_side(env_id, steps=300, num_envs=32, **kwargs)
    assert finished > 100
    if "Dog" in env_id:
        assert compiled.unwrapped._info_keys == [
            "relief_outdoors",
            "relief_indoors",
            "accident",
            "on_sofa",
        ]


@pytest.mark.slow
def test_compiled_envs_of_many_sizes_live_in_one_process() -> None:
    # More than torch.compile's per-function cache limit (8): each env compiles its own step.
    for num_envs in range(1, 11):
        env = make("sandbox/CartPole-v1", True, num_envs)
        env.reset(seed=num_envs)
        obs, *_ = env.step(torch.zeros(num_envs, dtype=torch.long))
        assert obs.shape == (num_envs, 4)


# -- CUDA (skipped without it) -----------------------------------------------------------------
@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_cuda_compiled_step_matches_eager_and_never_syncs(env_id: str) -> None:
    """Triton may contract a * b + c into an FMA and has its own sin/cos, so the compiled CUDA
    step is compared with the eager one a step at a time from the same state (no drift):
    flags equal on all but a handful of rows (a value within rounding of a bound), floats
    within 1e-5."""
    num_envs = 4096
    kwargs: dict[str, Any] = {"device": "cuda", "validate_actions": False}
    eager, compiled = (
        make(env_id, False, num_envs, **kwargs),
        make(env_id, True, num_envs, **kwargs),
    )
    eager.reset(seed=0)
    compiled.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    flips = 0
    for t in range(200):
        compiled.load_state_dict(eager.state_dict())
        actions = random_actions(eager.single_action_space, num_envs, generator).to("cuda")
        expected = eager.step(actions)
        if t > 2:
            torch.cuda.set_sync_debug_mode("error")  # any host sync inside step raises
        try:
            result = compiled.step(actions)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        same_flags = (result[2] == expected[2]) & (result[3] == expected[3])
        flips += int((~same_flags).sum())
        rows = same_flags & ~(expected[2] | expected[3])
        torch.testing.assert_close(result[0][rows], expected[0][rows], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(result[1][rows], expected[1][rows], rtol=1e-5, atol=1e-5)
    assert flips <= 5, f"{flips} rows ended differently"


def test_no_warnings_from_building_envs_with_compile() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for env_id in ENV_IDS:
            make(env_id, True, 4).reset(seed=0)  # compiling waits for the first step
