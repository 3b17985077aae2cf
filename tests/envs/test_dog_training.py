"""DogTraining: rewards as documented, the sofa never pays, no farming, solvable houses."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import envs  # noqa: F401  (registers sandbox/DogTraining-v0)
from envs import dog_drawing
from envs import dog_training as dog
from envs.checker import check_vector_env

ENV_ID = "sandbox/DogTraining-v0"
PARAMS = dog.DogParams()
# The documented table, per preset: relief_outdoors, relief_indoors, accident, on_sofa, step.
DOCUMENTED = {
    "treats": (1.0, 0.0, 0.0, 0.0, 0.0),
    "scolding_only": (0.0, -1.0, -1.0, -0.1, 0.0),
    "treats_and_scolding": (1.0, -1.0, -1.0, -0.1, 0.0),
    "coached": (1.0, -1.0, -1.0, -0.1, -0.01),
}


@pytest.fixture(autouse=True)
def _headless(monkeypatch: pytest.MonkeyPatch) -> None:
    # check_env opens each render mode, "human" included: keep SDL off any real display.
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")


def place(env: dog.DogTrainingVectorEnv, row: int, col: int, bladder: int, house: int = 0) -> None:
    """Put every row's dog on (row, col) of ``house`` with ``bladder`` steps of fill."""
    n = env.num_envs
    env.state = env.state._replace(
        house=torch.full((n,), house),
        pos=torch.tensor([[row, col]] * n),
        bladder=torch.full((n,), bladder),
    )


def tiles_of(code: int, house: int = 0, houses: dog.Houses | None = None) -> list[list[int]]:
    houses = dog.make_houses() if houses is None else houses
    return (houses.tiles[house] == code).nonzero().tolist()


# -- API ------------------------------------------------------------------------------------
def test_single_env_passes_gymnasium_check_env() -> None:
    check_env(gymnasium.make(ENV_ID).unwrapped)
    check_env(gymnasium.make(ENV_ID, layout="random", num_layouts=10).unwrapped)


def test_vector_env_passes_the_contract_checker_and_agrees_with_the_single_env() -> None:
    # Random houses and a non-default scheme: the single env must rebuild the same catalogue.
    kwargs = {"layout": "random", "num_layouts": 20, "reward_scheme": "treats_and_scolding"}
    env = gymnasium.make_vec(ENV_ID, num_envs=4, vectorization_mode="vector_entry_point", **kwargs)
    assert "single_env" in check_vector_env(env, num_steps=48)
    direct = dog.DogTrainingVectorEnv(4, dtype=torch.float64, max_episode_steps=30, **kwargs)
    assert "single_env" in check_vector_env(direct, num_steps=48)  # exact in float64


def test_reward_scheme_reaches_the_env_through_make_and_make_vec() -> None:
    single = gymnasium.make(ENV_ID, reward_scheme="treats")
    assert single.unwrapped.core.reward_weights == dog.resolve_reward_scheme("treats")
    vec = gymnasium.make_vec(
        ENV_ID,
        num_envs=3,
        vectorization_mode="vector_entry_point",
        reward_scheme={"relief_outdoors": 2.0},
        layout="random",
        num_layouts=7,
        layout_offset=3,
    )
    assert vec.unwrapped.reward_weights["relief_outdoors"] == 2.0
    assert vec.unwrapped.houses.tiles.shape[0] == 7
    assert vec.unwrapped.max_episode_steps == 200


def test_info_carries_events_and_episode_counts() -> None:
    env = dog.DogTrainingVectorEnv(16, max_episode_steps=200)
    obs, _ = env.reset(seed=0)
    finished = 0
    for _ in range(60):
        obs, _, terminated, _, info = env.step(dog.expert_policy(obs))
        for key in ("relief_outdoors", "relief_indoors", "accident", "on_sofa"):
            assert info[key].shape == (16,) and info[key].dtype == torch.bool
        ended = info["_episode"]
        assert torch.equal(ended, terminated)  # the expert never hits the time limit
        assert torch.equal(info["episode"]["successes"][ended], torch.ones(int(ended.sum())))
        assert torch.equal(info["episode"]["attempts"][ended], torch.ones(int(ended.sum())))
        finished += int(ended.sum())
    assert finished >= 16
    single = gymnasium.make(ENV_ID)
    single.reset(seed=0)
    _, _, _, _, info = single.step(0)
    assert {k: type(v) for k, v in info.items()} == dict.fromkeys(
        ("relief_outdoors", "relief_indoors", "accident", "on_sofa"), bool
    )


# -- rewards --------------------------------------------------------------------------------
@pytest.mark.parametrize("scheme", list(DOCUMENTED))
def test_presets_pay_as_documented(scheme: str) -> None:
    outdoors, indoors, accident, sofa, step = DOCUMENTED[scheme]
    env = dog.DogTrainingVectorEnv(1, reward_scheme=scheme)
    env.reset(seed=0)
    full = PARAMS.fill_steps - 1  # one more step fills it
    garden = (4, 9)
    place(env, *garden, bladder=full)
    _, reward, terminated, _, info = env.step(torch.tensor([dog.RELIEVE]))
    assert bool(info["relief_outdoors"][0]) and bool(terminated[0])
    assert float(reward[0]) == pytest.approx(outdoors + step)
    place(env, 7, 3, bladder=full)
    _, reward, _, _, info = env.step(torch.tensor([dog.RELIEVE]))
    assert bool(info["relief_indoors"][0])
    assert float(reward[0]) == pytest.approx(indoors + step)
    place(env, 7, 3, bladder=full)
    _, reward, terminated, _, info = env.step(torch.tensor([dog.STAY]))
    assert bool(info["accident"][0]) and bool(terminated[0])
    assert float(reward[0]) == pytest.approx(accident + step)
    place(env, 8, 5, bladder=0)  # the middle seat of the default house's long sofa
    _, reward, _, _, info = env.step(torch.tensor([dog.STAY]))
    assert bool(info["on_sofa"][0])
    assert float(reward[0]) == pytest.approx(min(sofa + step, 0.0))


def test_coached_progress_pays_towards_the_garden_and_charges_away() -> None:
    env = dog.DogTrainingVectorEnv(1, reward_scheme="coached")
    env.reset(seed=0)
    place(env, 4, 6, bladder=0)  # the door is at (4, 8): right is towards the garden
    _, closer, _, _, _ = env.step(torch.tensor([dog.RIGHT]))
    _, away, _, _, _ = env.step(torch.tensor([dog.LEFT]))
    assert float(closer[0]) == pytest.approx(0.05 - 0.01)
    assert float(away[0]) == pytest.approx(-0.05 - 0.01)


def test_presets_rank_the_expert_and_the_random_dog_differently() -> None:
    """The lesson of each scheme shows up in the numbers a learner sees."""
    treats = dog.measure_policies(episodes=50, reward_scheme="treats")
    scolding = dog.measure_policies(episodes=50, reward_scheme="scolding_only")
    assert treats["expert"]["mean_return"] == pytest.approx(1.0)
    assert scolding["expert"]["mean_return"] == pytest.approx(0.0)
    assert 0.0 <= treats["random"]["mean_return"] < 0.2  # treats: mistakes cost nothing
    assert scolding["random"]["mean_return"] < -0.9  # scolding: mistakes cost


@pytest.mark.parametrize(
    ("scheme", "message"),
    [
        ("cookies", "treats_and_scolding"),
        ({"relief_outside": 1.0}, "relief_outdoors"),
        ({"on_sofa": 0.5}, "sofa must never be rewarded"),
        ({"relief_indoors": 1.0}, "relieving indoors must never be rewarded"),
        ({"accident": 0.1}, "accident must never be rewarded"),
        ({"step": 0.01}, "sofa"),
        ({"relief_outdoors": float("nan")}, "finite"),
        ({"relief_outdoors": 1e39}, r"finite in float32 \(within ±3.4e\+38, the env's dtype\)"),
        ({"relief_outdoors": "1"}, "number"),
        (3, "preset name"),
    ],
)
def test_bad_reward_schemes_are_refused_with_a_reason(scheme: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dog.DogTrainingVectorEnv(1, reward_scheme=scheme)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        gymnasium.make(ENV_ID, reward_scheme=scheme)


@settings(max_examples=40, deadline=None)
@given(
    scheme=st.sampled_from(
        [
            *dog.REWARD_PRESETS,
            # The most tempting legal scheme: huge shaping, sofa and steps free.
            {"relief_outdoors": 5.0, "progress": 10.0},
        ]
    ),
    house=st.integers(0, 29),
    bladder=st.integers(0, PARAMS.fill_steps - 1),
    actions=st.lists(st.integers(0, 5), min_size=1, max_size=30),
)
def test_the_sofa_is_never_rewarded(
    scheme: str | dict, house: int, bladder: int, actions: list[int]
) -> None:
    houses = dog.make_houses("random", 30, 0)
    weights = dog.resolve_reward_scheme(scheme)
    sofa = tiles_of(dog.SOFA, house, houses)
    state = dog.dog_reset(PARAMS, houses, len(sofa), torch.Generator().manual_seed(0))
    # One row per sofa seat, so every seat is tried as a start; actions walk on and off it.
    state = state._replace(
        house=torch.full((len(sofa),), house),
        pos=torch.tensor(sofa),
        bladder=torch.full((len(sofa),), bladder),
    )
    for action in actions:
        state, reward, terminated, info = dog.dog_step(
            PARAMS, houses, weights, state, torch.full((len(sofa),), action)
        )
        assert bool((reward[info["on_sofa"]] <= 0).all())
        state = state._replace(bladder=torch.where(terminated, bladder, state.bladder))


@pytest.mark.parametrize("scheme", [{"relief_outdoors": 1, "progress": 0.05}, "coached"])
def test_an_accident_is_never_rewarded_even_a_step_closer_to_the_door(
    scheme: str | dict,
) -> None:
    """Every floor tile and move with a full bladder: the step is an accident, and some of
    them gain path to the garden (progress), which must not pay for it."""
    houses = dog.make_houses()
    weights = dog.resolve_reward_scheme(scheme)
    floor = tiles_of(dog.FLOOR, 0, houses)
    state = dog.dog_reset(PARAMS, houses, len(floor), torch.Generator().manual_seed(0))
    gained = 0
    for action in range(5):  # stay and the four moves
        start = state._replace(
            house=torch.zeros(len(floor), dtype=torch.long),
            pos=torch.tensor(floor),
            bladder=torch.full((len(floor),), PARAMS.fill_steps - 1),
        )
        after, reward, _, info = dog.dog_step(
            PARAMS, houses, weights, start, torch.full((len(floor),), action)
        )
        assert bool(info["accident"].all()) and bool((reward <= 0).all())
        before = dog._at(houses.distance, start.house, start.pos)
        gained += int((before > dog._at(houses.distance, start.house, after.pos)).sum())
    assert gained > 0  # some accidents did come a tile closer


# -- farming and accidents ------------------------------------------------------------------
@pytest.mark.parametrize("scheme", list(DOCUMENTED))
def test_relieve_spam_with_a_low_bladder_earns_nothing(scheme: str) -> None:
    env = dog.DogTrainingVectorEnv(1, reward_scheme=scheme)
    env.reset(seed=0)
    place(env, 4, 9, bladder=0)  # in the garden, empty
    relieve = torch.tensor([dog.RELIEVE])
    step_cost = dog.REWARD_PRESETS[scheme].get("step", 0.0)
    for _ in range(PARAMS.min_relief_count - 1):
        _, reward, terminated, _, info = env.step(relieve)
        assert float(reward[0]) == pytest.approx(step_cost)  # no treat, nothing but time
        assert not bool(terminated[0]) and not bool(info["relief_outdoors"][0])
    _, reward, terminated, _, info = env.step(relieve)  # now at the minimum level: one treat
    assert bool(info["relief_outdoors"][0]) and bool(terminated[0])


@pytest.mark.parametrize("params", [PARAMS, dog.DogParams(fill_steps=50, min_relief_level=0.1)])
def test_the_can_relieve_flag_says_whether_relieve_works_now(params: dog.DogParams) -> None:
    """Index 3 is on exactly when ``relieve`` this step succeeds (the step fills the bladder
    before relieve acts), and index 2 is then at or above the drawn mark, ``relief_mark``."""
    for bladder in range(params.fill_steps - 1):
        env = dog.DogTrainingVectorEnv(1, params=params)
        env.reset(seed=0)
        place(env, 4, 9, bladder=bladder)  # in the garden
        obs = env._observe(env.state)
        _, _, _, _, info = env.step(torch.tensor([dog.RELIEVE]))
        flag = bool(obs[0, 3] > 0.5)
        assert flag == bool(info["relief_outdoors"][0]), bladder
        assert flag == (float(obs[0, 2]) >= params.relief_mark - 1e-6), bladder


def test_treats_per_episode_are_bounded_whatever_the_policy() -> None:
    """Spamming relieve in the garden, or anywhere, earns at most one treat per trip."""
    env = dog.DogTrainingVectorEnv(16, reward_scheme="treats", max_episode_steps=200)
    obs, _ = env.reset(seed=1)
    treats = episodes = 0
    for t in range(80):
        actions = dog.expert_policy(obs)
        actions = torch.where(obs[:, 5] > 0.5, dog.RELIEVE, actions)  # spam once outside
        if t % 2:
            actions = torch.full_like(actions, dog.RELIEVE)
        obs, reward, _, _, info = env.step(actions)
        treats += int((reward > 0).sum())
        episodes += int(info["_episode"].sum())
    assert 0 < treats <= episodes


def test_a_full_bladder_makes_an_accident_wherever_the_dog_is() -> None:
    env = dog.DogTrainingVectorEnv(2, reward_scheme="treats_and_scolding")
    env.reset(seed=0)
    place(env, 7, 3, bladder=0)
    env.state = env.state._replace(pos=torch.tensor([[7, 3], [4, 10]]))  # indoors, garden
    for t in range(1, PARAMS.fill_steps + 1):
        _, reward, terminated, _, info = env.step(torch.zeros(2, dtype=torch.long))
        if t < PARAMS.fill_steps:
            assert not bool(terminated.any())
    assert bool(info["accident"].all()) and bool(terminated.all())
    assert torch.equal(reward, torch.tensor([-1.0, -1.0]))
    assert torch.equal(info["episode"]["attempts"], torch.ones(2, dtype=torch.long))
    assert torch.equal(info["episode"]["successes"], torch.zeros(2, dtype=torch.long))
    # The accident ended the trip: the final observation shows an empty bladder.
    assert torch.equal(info["final_obs"][:, 2], torch.zeros(2))


# -- policies and thresholds ----------------------------------------------------------------
def test_expert_solves_and_beats_random_by_a_wide_margin() -> None:
    result = dog.measure_policies(episodes=100)  # random houses: see the catalogue test
    expert, random = result["expert"], result["random"]
    assert expert["success_rate"] == 1.0
    assert expert["mean_return"] >= dog.SOLVED_MEAN_RETURN
    assert random["success_rate"] < 0.2 < dog.SOLVED_SUCCESS_RATE
    assert random["mean_return"] < dog.SOLVED_MEAN_RETURN - 1.5


def test_policies_take_single_observations_too() -> None:
    env = gymnasium.make(ENV_ID)
    obs, _ = env.reset(seed=0)
    action = dog.expert_policy(obs)
    assert action.shape == () and env.action_space.contains(int(action))
    assert dog.random_policy(obs).shape == ()
    with pytest.raises(ValueError, match="shape"):
        dog.expert_policy(np.zeros((2, 3)))


# -- observations ---------------------------------------------------------------------------
def test_observation_view_and_heading_match_the_house() -> None:
    houses = dog.make_houses("random", 20, 0)
    state = dog.dog_reset(PARAMS, houses, 64, torch.Generator().manual_seed(3))
    obs = dog.dog_observe(PARAMS, houses, state)
    r = PARAMS.view_radius
    codes = (dog.WALL, dog.SOFA, dog.DOOR, dog.GARDEN)
    for i in range(64):
        tiles = houses.tiles[int(state.house[i])]
        row, col = state.pos[i].tolist()
        view = obs[i, 11:].reshape(4, 2 * r + 1, 2 * r + 1)
        for dr in range(-r, r + 1):
            for dc in range(-r, r + 1):
                inside = 0 <= row + dr < dog.SIZE and 0 <= col + dc < dog.SIZE
                tile = int(tiles[row + dr, col + dc]) if inside else dog.WALL
                expected = [float(tile == code) for code in codes]
                assert view[:, dr + r, dc + r].tolist() == expected
        heading = int(obs[i, 7:11].argmax()) + dog.UP
        step = {dog.UP: (-1, 0), dog.DOWN: (1, 0), dog.LEFT: (0, -1), dog.RIGHT: (0, 1)}[heading]
        distance = houses.distance[int(state.house[i])]
        assert distance[row + step[0], col + step[1]] == distance[row, col] - 1
    assert dog.OBS_SIZE == obs.shape[1] == 111


# -- houses ---------------------------------------------------------------------------------
def test_random_houses_repeat_under_a_seed_and_differ_between_rows() -> None:
    def houses_after(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        env = dog.DogTrainingVectorEnv(32, layout="random", num_layouts=50)
        obs, _ = env.reset(seed=seed)
        return env.state.house.clone(), obs

    first, second, other = houses_after(7), houses_after(7), houses_after(8)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not torch.equal(first[0], other[0])
    assert len(set(first[0].tolist())) > 10  # rows live in different houses


def test_house_numbers_name_the_same_house_in_every_range() -> None:
    """Disjoint offsets give disjoint houses; house k is the same wherever it is drawn."""
    train = dog.make_houses("random", 10, 0)
    test = dog.make_houses("random", 10, 10)
    assert torch.equal(dog.make_houses("random", 1, 13).tiles[0], test.tiles[3])
    train_set = {tuple(t.flatten().tolist()) for t in train.tiles}
    assert not train_set & {tuple(t.flatten().tolist()) for t in test.tiles}


def test_every_catalogue_house_is_solved_by_the_expert_from_every_start() -> None:
    houses = dog.make_houses("random", dog.DEFAULT_NUM_LAYOUTS, 0)
    k = houses.tiles.shape[0]
    tiles = houses.tiles.flatten(1)
    floor_distance = torch.where(tiles == dog.FLOOR, houses.distance.flatten(1), -1)
    assert int(floor_distance.max()) <= PARAMS.max_path  # connected, and reachable in time
    assert bool(((tiles == dog.DOOR).sum(1) == 1).all())
    sofa_size = (tiles == dog.SOFA).sum(1)
    assert bool(((sofa_size >= 2) & (sofa_size <= 3)).all())
    # End to end from the farthest start of each house, at the fullest start bladder.
    farthest = floor_distance.argmax(1)
    state = dog.dog_reset(PARAMS, houses, k, torch.Generator().manual_seed(0))
    state = state._replace(
        house=torch.arange(k),
        pos=torch.stack((farthest // dog.SIZE, farthest % dog.SIZE), dim=-1),
        bladder=torch.full((k,), PARAMS.start_max_count),
    )
    weights = dog.resolve_reward_scheme("coached")
    done = torch.zeros(k, dtype=torch.bool)
    outdoors = torch.zeros(k, dtype=torch.bool)
    for _ in range(PARAMS.fill_steps):
        actions = dog.expert_policy(dog.dog_observe(PARAMS, houses, state))
        state, _, terminated, info = dog.dog_step(PARAMS, houses, weights, state, actions)
        outdoors |= info["relief_outdoors"] & ~done
        done |= terminated
    assert bool(done.all()) and bool(outdoors.all())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layout": "castle"}, "default"),
        ({"num_layouts": 5}, "random"),
        ({"layout": "random", "num_layouts": 0}, "num_layouts"),
        ({"layout": "random", "layout_offset": -1}, "layout_offset"),
        # With the default layout too, a bad value is named as bad, not only as unused.
        ({"num_layouts": "abc"}, "num_layouts must be an integer >= 1, got 'abc'"),
        ({"layout_offset": -1}, "layout_offset must be an integer >= 0, got -1"),
        ({"layout_offset": 1e12}, r"layout_offset must be an integer >= 0, got 1000000000000\.0"),
        ({"num_layouts": 10**12}, "num_layouts must be at most 100,000, got 1,000,000,000,000"),
        ({"layout": "random", "layout_offset": 2**64 - 1000, "num_layouts": 1001}, r"2\*\*64 - 1"),
        ({"params": {"fill_steps": 10}}, "DogParams"),
        ({"device": "tpu"}, ENV_ID),
    ],
)
def test_bad_constructor_arguments_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dog.DogTrainingVectorEnv(1, **kwargs)


def test_too_many_houses_are_refused_before_any_is_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    def draw(index: int, max_path: int) -> None:
        raise AssertionError(f"drew house {index}: a billion would take days")

    monkeypatch.setattr(dog, "_generate_house", draw)
    message = r"num_layouts must be at most 100,000, got 1,000,000,000: .* drawn when the env"
    with pytest.raises(ValueError, match=message):
        dog.DogTrainingVectorEnv(1, layout="random", num_layouts=10**9)
    with pytest.raises(ValueError, match="at most 100,000"):
        dog.make_houses("random", np.int64(dog.MAX_NUM_LAYOUTS + 1))


def test_params_that_leave_no_time_to_go_out_are_refused() -> None:
    with pytest.raises(ValueError, match="fill_steps"):
        dog.DogParams(fill_steps=20)


def test_exact_resume_through_the_core_state_dict() -> None:
    env = dog.DogTrainingVectorEnv(8, layout="random", num_layouts=10, max_episode_steps=200)
    env.reset(seed=2)
    saved = env.state_dict()
    actions = [
        torch.randint(6, (8,), generator=torch.Generator().manual_seed(i)) for i in range(40)
    ]
    first = [env.step(a)[1] for a in actions]
    env.load_state_dict(saved)
    assert all(torch.equal(r, env.step(a)[1]) for r, a in zip(first, actions, strict=True))


# -- rendering ------------------------------------------------------------------------------
def test_frames_show_the_house_the_dog_and_the_reaction() -> None:
    env = gymnasium.make(ENV_ID, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (612, 528, 3)
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) > 20  # not blank
    fur = np.array(dog_drawing._COLOURS["fur"], dtype=np.uint8)
    assert (frame == fur).all(axis=-1).sum() > 100  # the dog is drawn
    terminated = False
    while not terminated:
        obs, _, terminated, _, _ = env.step(int(dog.expert_policy(obs)))
    good = np.array(dog_drawing._COLOURS["good"], dtype=np.uint8)
    assert (env.render() == good).all(axis=-1).sum() > 200  # the "Good dog!" bubble
    vec = dog.DogTrainingVectorEnv(3, render_mode="rgb_array", layout="random", num_layouts=5)
    vec.reset(seed=0)
    frames = vec.render()
    assert len(frames) == 3 and frames[0].shape == frame.shape
    assert np.array_equal(vec.render_row(1), frames[1])


def test_human_windows_close_independently() -> None:
    first = gymnasium.make(ENV_ID, render_mode="human")
    second = gymnasium.make(ENV_ID, render_mode="human")
    first.reset(seed=0)
    second.reset(seed=1)
    first.close()
    second.step(0)  # still draws after the other window closed
    second.close()


def test_drawing_uses_the_env_codes() -> None:
    assert (dog_drawing.WALL, dog_drawing.SOFA, dog_drawing.GARDEN) == (
        dog.WALL,
        dog.SOFA,
        dog.GARDEN,
    )
    assert (dog_drawing.EVENT_RELIEF_OUTDOORS, dog_drawing.EVENT_ACCIDENT) == (
        dog.EVENT_RELIEF_OUTDOORS,
        dog.EVENT_ACCIDENT,
    )


def test_class_docstrings_have_gymnasium_headings() -> None:
    headings = (
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
    for cls in (dog.DogTrainingVectorEnv, dog.DogTrainingEnv):
        for heading in headings:
            assert f"## {heading}" in (cls.__doc__ or ""), (cls.__name__, heading)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rows_match_cpu_rows_and_step_without_host_sync() -> None:
    kwargs = {"layout": "random", "num_layouts": 20, "max_episode_steps": 200}
    cuda = dog.DogTrainingVectorEnv(64, device="cuda", validate_actions=False, **kwargs)
    cpu = dog.DogTrainingVectorEnv(64, **kwargs)
    cuda.reset(seed=0)
    cpu.reset(seed=0)
    cpu.state = type(cuda.state)(*(field.cpu() for field in cuda.state))
    torch.cuda.set_sync_debug_mode("error")  # any host sync inside step raises
    try:
        for _ in range(30):
            actions = torch.randint(6, (64,), device="cuda")
            _, reward, terminated, _, _ = cuda.step(actions)
            torch.cuda.set_sync_debug_mode("default")
            _, cpu_reward, cpu_terminated, _, _ = cpu.step(actions.cpu())
            assert torch.allclose(reward.cpu(), cpu_reward)
            assert torch.equal(terminated.cpu(), cpu_terminated)
            # Fresh rows come from different generators: carry the CUDA env's state over.
            cpu.state = type(cuda.state)(*(field.cpu() for field in cuda.state))
            torch.cuda.set_sync_debug_mode("error")
    finally:
        torch.cuda.set_sync_debug_mode("default")
