"""Numeric encoding: one-hot, scaling, running statistics and images, against hand-worked values."""

from __future__ import annotations

import copy
import os

import numpy as np
import pytest
import torch

from rl.device import THREADS_PER_CORE, resolve_device, resolve_threads
from rl.seeding import derive_seed, restore_generator, rng_state, seed_everything, set_rng_state
from rl.tensors import (
    GroupedRunningMeanStd,
    RunningMeanStd,
    flatten_parameters,
    image_to_tensor,
    min_max_scale,
    one_hot,
    standardize,
    tensor_to_image,
)


def test_one_hot_values_and_shape() -> None:
    out = one_hot(torch.tensor([[0, 2], [1, 0]]), 3)
    assert out.shape == (2, 2, 3)
    assert out.dtype == torch.float32
    assert out[0, 1].tolist() == [0.0, 0.0, 1.0]
    assert out.sum(-1).eq(1).all()


@pytest.mark.parametrize(
    ("indices", "num_classes", "message"),
    [
        (torch.tensor([0.0, 1.0]), 2, "integer"),
        (torch.tensor([0, 3]), 3, r"\[0, 2\]"),
        (torch.tensor([-1]), 3, r"\[0, 2\]"),
        (torch.tensor([0]), 0, "num_classes"),
    ],
)
def test_one_hot_rejects_bad_input(indices: torch.Tensor, num_classes: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        one_hot(indices, num_classes)


def test_standardize_and_min_max_hand_worked() -> None:
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    z = standardize(x)
    # Column 0: mean 3, sample std 2 → -1, 0, 1. Column 1 is constant: 0, not NaN.
    torch.testing.assert_close(z[:, 0], torch.tensor([-1.0, 0.0, 1.0]))
    assert z[:, 1].eq(0).all()
    torch.testing.assert_close(min_max_scale(x)[:, 0], torch.tensor([0.0, 0.5, 1.0]))


def test_running_mean_std_matches_the_whole_batch() -> None:
    generator = torch.Generator().manual_seed(0)
    data = torch.randn(1000, 3, generator=generator, dtype=torch.float64) * 4 + 2
    stats = RunningMeanStd(shape=(3,), epsilon=0.0)
    for batch in data.split([1, 9, 90, 400, 500]):
        stats.update(batch)
    torch.testing.assert_close(stats.mean, data.mean(0))
    torch.testing.assert_close(stats.var, data.var(0, unbiased=False))
    assert float(stats.count) == 1000
    normalized = stats.normalize(data, clip=None)
    torch.testing.assert_close(normalized.mean(0), torch.zeros(3, dtype=torch.float64))


def test_running_mean_std_clips_and_round_trips() -> None:
    stats = RunningMeanStd(shape=(2,))
    stats.update(torch.tensor([[0.0, 0.0], [2.0, 2.0]]))
    assert stats.normalize(torch.tensor([[1e6, -1e6]]), clip=5.0).tolist() == [[5.0, -5.0]]
    other = RunningMeanStd(shape=(2,))
    other.load_state_dict(stats.state_dict())
    torch.testing.assert_close(other.mean, stats.mean)
    torch.testing.assert_close(other.var, stats.var)
    with pytest.raises(ValueError, match="shape"):
        RunningMeanStd(shape=(3,)).load_state_dict(stats.state_dict())
    with pytest.raises(ValueError, match="missing 'var'"):
        other.load_state_dict({"mean": stats.mean, "count": stats.count})


@pytest.mark.parametrize("grouped", [False, True], ids=["single", "grouped"])
def test_loaded_statistics_land_in_the_same_tensors(grouped: bool) -> None:
    """load_state_dict copies into the tensors a CUDA graph may already read, and never keeps
    the caller's: a later update leaves them as they were."""
    stats = GroupedRunningMeanStd(2, (3,)) if grouped else RunningMeanStd((3,))
    source = GroupedRunningMeanStd(2, (3,)) if grouped else RunningMeanStd((3,))
    source.update(torch.arange(24.0).reshape(-1, 3) if grouped else torch.randn(8, 3))
    saved = source.state_dict()
    kept = [stats.mean, stats.var, stats.count]
    stats.load_state_dict(saved)
    assert all(a is b for a, b in zip(kept, [stats.mean, stats.var, stats.count], strict=True))
    for key in ("mean", "var", "count"):
        assert torch.equal(getattr(stats, key), saved[key])
    before = {key: value.clone() for key, value in saved.items()}
    stats.update(torch.ones(4, 3))
    assert all(torch.equal(saved[key], before[key]) for key in saved)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: standardize(torch.arange(4)), TypeError, "floating-point"),
        (lambda: standardize(torch.tensor([[1.0]])), ValueError, "at least 2"),
        (lambda: standardize(torch.zeros(3, 2), dim=2), ValueError, "out of range"),
        (lambda: min_max_scale(torch.zeros(0, 2)), ValueError, "at least 1"),
        (lambda: min_max_scale([1.0, 2.0]), TypeError, "torch.Tensor"),
    ],
)
def test_scalers_reject_what_they_cannot_scale(call, error, message) -> None:
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("grouped", [False, True])
def test_running_statistics_reject_a_batch_of_other_samples(grouped: bool) -> None:
    rms = GroupedRunningMeanStd(2, (2,)) if grouped else RunningMeanStd((2,))
    before = rms.state_dict()
    for batch in (torch.ones(2, 3), torch.ones(0, 2), torch.ones(3)):
        with pytest.raises(ValueError, match="running statistics"):
            rms.update(batch)
    for key, value in rms.state_dict().items():  # nothing folded in
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    with pytest.raises(ValueError, match="missing 'var'"):
        rms.load_state_dict({"mean": before["mean"]})


def test_running_statistics_take_rows_with_leading_dimensions() -> None:
    rms, flat = RunningMeanStd((2,)), RunningMeanStd((2,))
    batch = torch.randn(3, 4, 2, dtype=torch.float64)
    rms.update(batch)
    flat.update(batch.reshape(-1, 2))
    torch.testing.assert_close(rms.mean, flat.mean)
    torch.testing.assert_close(rms.var, flat.var)


def test_image_round_trip_is_exact() -> None:
    image = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
    tensor = image_to_tensor(image)
    assert tensor.shape == (3, 4, 5)
    assert float(tensor.max()) <= 1.0
    assert tensor[2, 1, 0] == pytest.approx(image[1, 0, 2] / 255.0)
    np.testing.assert_array_equal(tensor_to_image(tensor), image)


def test_image_rejects_wrong_layouts() -> None:
    with pytest.raises(ValueError, match="uint8"):
        image_to_tensor(np.zeros((4, 5, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        tensor_to_image(torch.zeros(4, 5))


def test_seeding_repeats_and_restores() -> None:
    seed_everything(7)
    first = torch.rand(3)
    seed_everything(7)
    torch.testing.assert_close(torch.rand(3), first)
    state = rng_state()
    expected = (torch.rand(2), np.random.rand())
    set_rng_state(state)
    torch.testing.assert_close(torch.rand(2), expected[0])
    assert np.random.rand() == expected[1]
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)
    with pytest.raises(ValueError, match=r"seed must be below 2\*\*63"):
        seed_everything(2**63)  # torch would say "Overflow when unpacking long long"


def test_derived_seeds_are_fixed_and_apart_from_the_seed_they_come_from() -> None:
    # Fixed values: a run's streams must not change with the platform or the Python version.
    assert derive_seed(0, "env") == 7077984297642152234
    assert derive_seed(0, "dqn") == 2631563157074405022
    seeds = {derive_seed(s, stream) for s in range(1000) for stream in ("env", "dqn")}
    assert len(seeds) == 2000 and all(0 <= s < 2**63 for s in seeds)
    seed_everything(derive_seed(2**63 - 1, "env"))  # in seed_everything's range


def test_an_env_seeded_with_s_does_not_draw_torch_manual_seed_s_words() -> None:
    """Taking ``s`` itself, the env's generator would replay the global stream's words after
    ``torch.manual_seed(s)``: start states tied to the initial weights or the first actions."""
    import envs  # noqa: F401  (registers sandbox/)
    from envs.rng import random_bits
    from rl.vector import make_vector_env

    env = make_vector_env("sandbox/CartPole-v1", 4, "cpu")
    env.reset(seed=5)
    for seed, same in ((5, False), (derive_seed(5, "env"), True)):
        replay = torch.Generator().manual_seed(seed)
        random_bits(replay, env.start_lanes, 4)  # reset's start states
        torch.randint(2**32, (), generator=replay)  # then the autoreset hash key
        assert torch.equal(env.generator.get_state(), replay.get_state()) is same
    env.close()


def test_an_env_resumed_on_another_device_type_continues_from_its_state() -> None:
    """A CUDA run's env generator state (Philox: 16 bytes) does not fit a CPU generator
    (5,056 bytes): a resume on the CPU seeds it from the saved bytes instead of failing."""
    import envs  # noqa: F401  (registers sandbox/)
    from rl.vector import make_vector_env

    saved = make_vector_env("sandbox/CartPole-v1", 4, "cpu")
    saved.reset(seed=5)
    state = saved.state_dict()
    state["generator"] = torch.arange(16, dtype=torch.uint8)  # what a CUDA generator saves
    starts = []
    for _ in range(2):
        env = make_vector_env("sandbox/CartPole-v1", 4, "cpu")
        env.load_state_dict(state)
        starts.append(env.reset()[0])
        env.close()
    torch.testing.assert_close(starts[0], starts[1])  # the same checkpoint: the same stream
    mine = torch.Generator()
    restore_generator(mine, saved.generator.get_state())  # the same device: the very state
    assert torch.equal(mine.get_state(), saved.generator.get_state())
    saved.close()


def test_cuda_streams_are_restored_for_the_gpus_there_are(monkeypatch: pytest.MonkeyPatch) -> None:
    """Checked without a GPU: the CUDA calls are recorded, not made."""
    state = {key: value for key, value in rng_state().items() if key != "cuda"}
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda s: calls.append(("seed", s)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda s: calls.append(("set", len(s))))
    for saved, expected in (([], ["seed", ("set", 0)]), ([1], ["seed", ("set", 1)])):
        calls.clear()
        set_rng_state({**state, "cuda": saved})
        assert [c[0] if c[0] == "seed" else c for c in calls] == expected
        if calls[0][0] == "seed":  # from the CPU state: the same checkpoint, the same seed
            assert 0 <= calls[0][1] < 2**63
    calls.clear()
    set_rng_state({**state, "cuda": [1, 2, 3]})  # saved on 3 GPUs, restored on 2
    assert calls == [("set", 2)]


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match=r"unknown device|unsupported device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_thread_counts_are_checked_before_torch_sees_them(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    limit = THREADS_PER_CORE * (os.cpu_count() or 1)
    assert resolve_threads(cpu) == 1 and resolve_threads(cpu, limit) == limit
    # Tens of thousands of threads crash torch (a segfault) rather than raise.
    with pytest.raises(
        ValueError, match=rf"num_threads must be between 1 and {limit} .*got 100000"
    ):
        resolve_threads(cpu, 100_000)
    monkeypatch.setenv("RL_NUM_THREADS", "0")
    with pytest.raises(ValueError, match="RL_NUM_THREADS must be between 1 and"):  # its own name
        resolve_threads(cpu)
    monkeypatch.setenv("RL_NUM_THREADS", "2")
    assert resolve_threads(cpu) == 2


def test_flatten_parameters_shares_weights_and_gradients() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    reference = copy.deepcopy(net)
    keys = list(net.state_dict())
    flat = flatten_parameters(net)
    assert list(net.state_dict()) == keys and flat.numel() == 3 * 4 + 4 + 4 * 2 + 2
    for p, q in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)
    x = torch.randn(5, 3)
    net(x).square().sum().backward()
    reference(x).square().sum().backward()
    grads = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    assert torch.allclose(flat.grad, grads)  # backward wrote into the flat gradient
    # One Adam over the flat parameter moves the module's weights as per-tensor Adam does.
    torch.optim.Adam([flat], lr=0.1).step()
    torch.optim.Adam(reference.parameters(), lr=0.1).step()
    for p, q in zip(net.parameters(), reference.parameters(), strict=True):
        assert torch.allclose(p, q)
    # load_state_dict copies into the views: the flat parameter sees it.
    net.load_state_dict(reference.state_dict())
    assert torch.equal(flat.detach(), torch.cat([p.reshape(-1) for p in reference.parameters()]))


def test_flatten_parameters_rejects_what_it_cannot_flatten() -> None:
    with pytest.raises(ValueError, match="no parameters"):
        flatten_parameters(torch.nn.Tanh())
    mixed = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2).double())
    with pytest.raises(ValueError, match="device or dtype"):
        flatten_parameters(mixed)


def test_a_frozen_group_keeps_its_statistics_and_old_states_still_load() -> None:
    grouped = GroupedRunningMeanStd(2, (3,))
    grouped.update(torch.randn(2 * 4, 3))
    before = grouped.group(0).state_dict()
    grouped.freeze(0)
    grouped.update(torch.randn(2 * 4, 3) + 5)
    for key, value in grouped.group(0).state_dict().items():
        torch.testing.assert_close(value, before[key])
    assert float(grouped.group(1).count) == pytest.approx(8, abs=1e-3)  # the other one went on
    restored = GroupedRunningMeanStd(2, (3,))
    restored.load_state_dict(grouped.state_dict())
    assert restored.frozen.tolist() == [True, False]
    # A state saved when one scalar count served every group, and nothing was frozen.
    old = {"mean": torch.zeros(2, 3), "var": torch.ones(2, 3), "count": torch.tensor(7.0)}
    restored.load_state_dict(old)
    assert restored.count.tolist() == [7.0, 7.0] and restored.frozen.tolist() == [False, False]
    # One group from a standalone state: the inverse of group().
    restored.load_group(1, before)
    for key, value in restored.group(1).state_dict().items():
        torch.testing.assert_close(value, before[key])
