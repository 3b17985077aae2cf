"""rl.distributed: 2-rank Gloo collectives on the CPU, and data-parallel PPO/A2C over them.

Ranks are started with ``torch.multiprocessing.spawn`` against a free port on 127.0.0.1, the
way torchrun would set them up (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT).
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from rl import distributed
from rl.tensors import RunningMeanStd

WORLD = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SPAWN_TIMEOUT = 240.0  # seconds; the slowest spawn here (a learning check) takes ~60 s


def spawn(fn: Any, *args: Any, world: int = WORLD) -> None:
    """Run ``fn(rank, *args)`` on ``world`` Gloo ranks; a failure on any rank fails the test."""
    # Heavy first imports happen once here, not once per rank: the fused Adam step imports
    # torch._dynamo and the run folder imports TensorBoard (seconds each on a small CPU).
    import torch._dynamo  # noqa: F401
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    port = free_port()
    # fork, not spawn: the children inherit the imported torch instead of paying seconds each
    # to import it again (the test's cost is almost all start-up).
    context = mp.start_processes(
        _entry, args=(world, port, fn, args), nprocs=world, join=False, start_method="fork"
    )
    # Ranks that wait on each other's collectives (a deadlock) fail the test, not hang it.
    deadline = time.monotonic() + SPAWN_TIMEOUT
    while not context.join(timeout=1.0):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"{world} ranks still running after {SPAWN_TIMEOUT} s: a deadlock?")


def _entry(rank: int, world: int, port: int, fn: Any, args: tuple[Any, ...]) -> None:
    os.environ.update(
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RL_NUM_THREADS="1",
    )
    torch.set_num_threads(1)
    fn(rank, *args)


def _helpers(rank: int, out: str) -> None:
    info = distributed.init("cpu")
    try:
        results: dict[str, Any] = {"info": (info.rank, info.world_size, info.backend)}
        # Different initial weights per rank; broadcast makes them rank 0's.
        torch.manual_seed(100 + rank)
        net = nn.Linear(3, 2)
        distributed.broadcast_module(net)
        # Gradients: rank r's grad is (r + 1) * ones, and the average is 1.5 everywhere.
        for p in net.parameters():
            p.grad = torch.full_like(p, float(rank + 1))
        distributed.all_reduce_grads(net.parameters())
        results["grads"] = [p.grad.clone() for p in net.parameters()]
        results["weights"] = [p.detach().clone() for p in net.parameters()]
        sums, means = distributed.reduce_metrics(
            torch.tensor([1.0, float(rank)]), torch.tensor([float(rank) * 2])
        )
        results["sums"], results["means"] = sums, means
        # Running statistics: same start, different samples per rank → stats of all samples.
        rms = RunningMeanStd((2,))
        rms.update(torch.tensor([[1.0, 2.0], [3.0, 5.0]]))
        before = rms.state_dict()
        gen = torch.Generator().manual_seed(rank)
        for _ in range(3):
            rms.update(torch.randn(5, 2, generator=gen) * (rank + 1) + rank)
        distributed.sync_running_stats(rms, before)
        results["rms"] = rms.state_dict()
        payload = {"model": torch.zeros(1), "rng": torch.tensor([rank]), "shared": 7}
        gathered = distributed.gather_rank_state(payload, ("rng",))
        results["gathered"] = gathered
        view = distributed.select_rank_state(
            {"model": 1, "rng": "rank0", "ranks": [{"rng": "r0"}, {"rng": "r1"}], "world_size": 2},
            ("rng",),
        )
        results["view"] = view["rng"]
        results["broadcast"] = distributed.broadcast_from_rank0(lambda: {"x": rank + 40})
        with pytest.raises(ValueError, match="written by 3 rank"):
            distributed.select_rank_state({"world_size": 3}, ("rng",))
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.teardown(info)


def test_collectives_on_two_gloo_ranks(tmp_path: Path) -> None:
    spawn(_helpers, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    assert r0["info"] == (0, 2, "gloo") and r1["info"] == (1, 2, "gloo")
    torch.manual_seed(100)
    expected = nn.Linear(3, 2)
    for a, b, e in zip(r0["weights"], r1["weights"], expected.parameters(), strict=True):
        assert torch.equal(a, b) and torch.equal(a, e.detach())
    for g0, g1 in zip(r0["grads"], r1["grads"], strict=True):
        assert torch.equal(g0, g1) and torch.all(g0 == 1.5)
    assert r0["sums"].tolist() == [2.0, 1.0] and r0["means"].tolist() == [1.0]
    # The merged statistics are those of every sample of both ranks, on both ranks.
    samples = [torch.tensor([[1.0, 2.0], [3.0, 5.0]])]
    for rank in range(WORLD):
        gen = torch.Generator().manual_seed(rank)
        samples += [torch.randn(5, 2, generator=gen) * (rank + 1) + rank for _ in range(3)]
    data = torch.cat(samples).double()
    for result in (r0, r1):
        rms = result["rms"]
        torch.testing.assert_close(rms["mean"], data.mean(0), rtol=0, atol=1e-4)
        torch.testing.assert_close(rms["var"], data.var(0, unbiased=False), rtol=0, atol=1e-3)
        assert float(rms["count"]) == pytest.approx(len(data), abs=1e-3)
    assert torch.equal(r0["rms"]["mean"], r1["rms"]["mean"])
    assert r0["gathered"]["world_size"] == 2
    assert [int(s["rng"]) for s in r0["gathered"]["ranks"]] == [0, 1]
    assert "ranks" not in r1["gathered"]
    assert (r0["view"], r1["view"]) == ("r0", "r1")
    assert r0["broadcast"] == r1["broadcast"] == {"x": 40}


def test_single_process_helpers_are_identities() -> None:
    assert not distributed.is_active()
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1
    assert distributed.rank_seed(5) == 5 and distributed.rank_seed(5, 2) == 5 + 2 * 1_000_003
    sums, means = torch.tensor([1.0]), torch.tensor([2.0])
    assert distributed.reduce_metrics(sums, means) == (sums, means)
    ckpt = {"model": 1, "rng": 2}
    assert distributed.select_rank_state(ckpt, ("rng",)) is ckpt
    assert distributed.broadcast_from_rank0(lambda: 3) == 3


def test_init_without_torchrun_says_how_to_launch(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in distributed.TORCHRUN_VARS:
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="torchrun --standalone --nproc-per-node"):
        distributed.init("cpu")
    assert not dist.is_initialized()


# -- data-parallel PPO ----------------------------------------------------------------------------
TINY_PPO = {
    "num_envs": 4,
    "num_steps": 16,
    "total_timesteps": 4 * 2 * 64,  # 4 iterations of 2 ranks x 64 transitions
    "num_minibatches": 2,
    "update_epochs": 2,
    "eval_episodes": 0,
    "progress": False,
    "checkpoint_every": 1,
    "norm_obs": True,
    "norm_reward": True,
    "distributed": True,
}


class _Interrupt(Exception):
    """Stands in for a crash right after the iteration-2 checkpoint."""


def _ppo_ranks(rank: int, out: str) -> None:
    from agents import ppo
    from rl.config import replace_config
    from rl.runs import TrainingRun

    info = distributed.init("cpu")  # one group for the three trainings below
    try:
        cfg = ppo.default_config("sandbox/CartPole-v1", **TINY_PPO)
        # Each rank is given its own folder so the test can see who writes: only rank 0 may.
        whole = ppo.train(replace_config(cfg, {"run_dir": f"{out}/whole{rank}"}))
        real_save = TrainingRun.save

        def save_then_die(self: TrainingRun, payload: dict[str, Any], step: int, **kw: Any):
            result = real_save(self, payload, step, **kw)
            if payload["iteration"] == 2:
                raise _Interrupt
            return result

        TrainingRun.save = save_then_die  # type: ignore[method-assign]
        with contextlib.suppress(_Interrupt):
            ppo.train(replace_config(cfg, {"run_dir": f"{out}/cut{rank}"}))
        TrainingRun.save = real_save  # type: ignore[method-assign]
        resumed = ppo.train(cfg, resume=f"{out}/cut0")
        torch.save(
            {
                "whole": whole.policy.agent.state_dict(),
                "resumed": resumed.policy.agent.state_dict(),
                "global_step": whole.global_step,
                "obs_rms": whole.policy.obs_rms.state_dict(),
            },
            Path(out) / f"ppo{rank}.pt",
        )
    finally:
        distributed.teardown(info)


def test_two_rank_ppo_same_weights_rank0_writes_and_resumes_bitwise(tmp_path: Path) -> None:
    from rl.checkpoint import load_checkpoint

    spawn(_ppo_ranks, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"ppo{r}.pt", weights_only=True) for r in range(WORLD))
    # Gradients averaged → identical weights and normalisation on every rank.
    for key in r0["whole"]:
        assert torch.equal(r0["whole"][key], r1["whole"][key]), key
    assert torch.equal(r0["obs_rms"]["mean"], r1["obs_rms"]["mean"])
    assert r0["global_step"] == 4 * 2 * 64  # every rank's steps count
    # Rank 0 alone writes the run folder.
    assert (tmp_path / "whole0" / "config.json").is_file()
    assert list((tmp_path / "whole0").glob("events.out.tfevents.*"))
    assert not (tmp_path / "whole1").exists() and not (tmp_path / "cut1").exists()
    # One checkpoint file holds both ranks' envs and RNG streams, and they differ.
    ckpt = load_checkpoint(tmp_path / "whole0" / "checkpoints" / "latest.pt")
    assert ckpt["world_size"] == 2 and len(ckpt["ranks"]) == 2
    assert not torch.equal(ckpt["ranks"][0]["next_obs"], ckpt["ranks"][1]["next_obs"])
    # Killed after iteration 2 and resumed: bitwise the uninterrupted run, on both ranks.
    for result in (r0, r1):
        for key in result["whole"]:
            assert torch.equal(result["whole"][key], result["resumed"][key]), key


def _sparse_checkpoint_ranks(rank: int, out: str) -> None:
    from agents import ppo

    info = distributed.init("cpu")
    try:
        # Pendulum: no episode ends in 4 x 16 steps, so no "new best return" saves either.
        cfg = ppo.default_config(
            "sandbox/Pendulum-v1",
            **{**TINY_PPO, "checkpoint_every": 1000, "num_snapshots": 2},
            run_dir=f"{out}/run{rank}",
        )
        result = ppo.train(cfg)
        Path(out, f"steps{rank}.txt").write_text(str(result.global_step))
    finally:
        distributed.teardown(info)


def test_two_ranks_agree_when_to_checkpoint(tmp_path: Path) -> None:
    # Saving gathers every rank's state: a rank that saves when the others do not waits for
    # them forever. Snapshots at 0, 50 and 100 % and no periodic checkpoints: rank 1, which
    # writes nothing, must still move through the snapshot schedule as rank 0 does.
    spawn(_sparse_checkpoint_ranks, str(tmp_path))
    assert [(tmp_path / f"steps{r}.txt").read_text() for r in range(WORLD)] == ["512", "512"]
    snapshots = sorted(p.name for p in (tmp_path / "run0" / "checkpoints").glob("step_*.pt"))
    assert snapshots == ["step_000000000.pt", "step_000000256.pt", "step_000000512.pt"]


def test_resuming_a_two_rank_checkpoint_in_one_process_says_why(tmp_path: Path) -> None:
    from agents import ppo
    from rl.checkpoint import save_checkpoint

    cfg = ppo.default_config("sandbox/CartPole-v1", **{**TINY_PPO, "distributed": False})
    run = tmp_path / "run"
    payload = {"model": {}, "config": cfg.__dict__, "world_size": 2, "ranks": [{}, {}]}
    save_checkpoint(payload, run / "checkpoints" / "latest.pt")
    with pytest.raises(ValueError, match="written by 2 rank"):
        ppo.train(cfg, resume=run)


def _a2c_ranks(rank: int, out: str) -> None:
    from agents import a2c

    cfg = a2c.default_config(
        "sandbox/CartPole-v1",
        num_envs=4,
        num_steps=5,
        total_timesteps=6 * 2 * 20,
        log_every=2,
        norm_obs=True,
        eval_episodes=0,
        progress=False,
        write_run=False,
        distributed=True,
    )
    result = a2c.train(cfg)
    torch.save(
        {"weights": result.policy.agent.state_dict(), "step": result.global_step},
        Path(out) / f"a2c{rank}.pt",
    )


def test_two_rank_a2c_keeps_weights_identical(tmp_path: Path) -> None:
    spawn(_a2c_ranks, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"a2c{r}.pt", weights_only=True) for r in range(WORLD))
    assert r0["step"] == r1["step"] == 6 * 2 * 20
    for key in r0["weights"]:
        assert torch.equal(r0["weights"][key], r1["weights"][key]), key


LEARN = {"total_timesteps": 60_000, "eval_episodes": 20, "progress": False, "write_run": False}


def _learn_ranks(rank: int, out: str) -> None:
    from agents import ppo

    cfg = ppo.default_config("sandbox/CartPole-v1", num_envs=16, distributed=True, **LEARN)
    result = ppo.train(cfg)
    if rank == 0:
        assert result.evaluation is not None
        Path(out, "learn.txt").write_text(str(result.evaluation.mean_return))


@pytest.mark.slow
def test_two_ranks_learn_like_one_process_with_the_same_total_envs(tmp_path: Path) -> None:
    from agents import ppo

    spawn(_learn_ranks, str(tmp_path))
    two_ranks = float((tmp_path / "learn.txt").read_text())
    one = ppo.train(ppo.default_config("sandbox/CartPole-v1", num_envs=32, **LEARN))
    assert one.evaluation is not None
    one_process = one.evaluation.mean_return
    # CartPole's deterministic return: ~500 once learnt, ~10-40 for an untrained policy.
    assert two_ranks >= 300 and one_process >= 300, (two_ranks, one_process)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads thread names from /proc")
def test_teardown_ends_the_gloo_groups_threads() -> None:
    """torch._dynamo (imported by the first optimizer) kept a group made before it alive after
    destroy_process_group(); its threads then ended at interpreter exit, which aborted a rank
    now and then. A fresh process: this one imported torch._dynamo long ago."""
    import subprocess
    import sys

    script = (
        "import os, torch\n"
        "from rl import distributed\n"
        "info = distributed.init('cpu')\n"
        "torch.optim.Adam([torch.nn.Parameter(torch.ones(2))])\n"
        "distributed.teardown(info)\n"
        "print(sorted(open(f'/proc/self/task/{t}/comm').read().strip()\n"
        "             for t in os.listdir('/proc/self/task')))\n"
    )
    env = {
        **os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0",
        "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()),
    }  # fmt: skip
    env.pop("TORCHELASTIC_USE_AGENT_STORE", None)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "gloo" not in done.stdout, done.stdout
