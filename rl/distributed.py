"""Data-parallel training over ``torchrun``'s ranks: a thin layer over ``torch.distributed``.

Every rank runs the same training loop on its own environments with its own seed stream; after
each ``backward`` the gradients are averaged across ranks (:func:`all_reduce_grads`), so every
rank takes the same optimizer step and holds the same weights. Rank 0 alone writes TensorBoard,
``config.json`` and checkpoints; metrics are reduced across ranks before logging.

Launch with ``torchrun`` (it sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``)::

    torchrun --standalone --nproc-per-node 2 -m rl train --distributed --env sandbox/CartPole-v1

Backends: NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``), Gloo on the CPU.

Checkpoints of a run over ``W`` ranks are one file, written by rank 0: the shared state (weights,
optimizer, normalisation statistics, counters) once, plus each rank's own state (its envs, its
RNG streams, its next observations) gathered into ``payload["ranks"]``. One file keeps the
checkpoint consistent under ``kill -9``: per-rank shards could be caught half from one
iteration, half from the next. On resume rank 0 reads the file and broadcasts it, so only rank
0's node needs the run folder. See docs/DISTRIBUTED.md.

Every function here is a no-op (or the identity) when no process group is running or the world
has one rank, so a one-rank run is bit for bit a plain run.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from rl.device import resolve_device

# A prime stride keeps the ranks' seed streams apart (seed + rank * stride never collides for
# the seeds people use) while rank 0 keeps the plain seed: a one-rank run is a plain run.
SEED_STRIDE = 1_000_003
TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    """0 .. world_size - 1; rank 0 writes the run folder."""
    world_size: int
    """Number of training processes in the job."""
    local_rank: int
    """Rank within this machine; picks ``cuda:LOCAL_RANK``."""
    device: torch.device
    """The device this rank trains on."""
    backend: str
    """``nccl`` (CUDA) or ``gloo`` (CPU)."""
    owns_group: bool = False
    """Whether :func:`init` created the process group (and :func:`teardown` should end it)."""

    @property
    def is_rank0(self) -> bool:
        return self.rank == 0


def is_active() -> bool:
    """True inside a running process group."""
    return dist.is_available() and dist.is_initialized()


def get_rank() -> int:
    return dist.get_rank() if is_active() else 0


def get_world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_rank0() -> bool:
    return get_rank() == 0


def rank_seed(seed: int, rank: int | None = None) -> int:
    """This rank's seed: ``seed + rank * SEED_STRIDE`` (rank 0 keeps ``seed``)."""
    return int(seed) + (get_rank() if rank is None else int(rank)) * SEED_STRIDE


def missing_torchrun() -> str | None:
    """Why ``--distributed`` cannot run in this process (torchrun's variables unset), or None."""
    missing = [name for name in TORCHRUN_VARS if name not in os.environ]
    if not missing:
        return None
    return (
        f"--distributed needs torchrun's environment ({', '.join(missing)} unset); launch with "
        "`torchrun --standalone --nproc-per-node N -m rl train --distributed ...`, or drop "
        "--distributed for one process"
    )


def init(device: str = "auto") -> DistInfo:
    """Join the job ``torchrun`` started, from its environment variables.

    Reuses a process group that is already running (tests, notebooks); otherwise creates one
    with NCCL when training on CUDA and Gloo on the CPU.

    Args:
        device: the run's device setting (``auto``, ``cpu``, ``cuda``); ``cuda`` becomes
            ``cuda:LOCAL_RANK``.

    Raises:
        RuntimeError: the torchrun variables are missing (``--distributed`` without torchrun)
            or torch was built without distributed support.
    """
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed; --distributed needs it")
    owns = False
    if not dist.is_initialized():
        problem = missing_torchrun()
        if problem:
            raise RuntimeError(problem)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise RuntimeError(
                f"LOCAL_RANK {local_rank} has no GPU: this machine has {count}; start at most "
                f"{count} processes per node (--nproc-per-node {count})"
            )
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)  # NCCL and the *_object collectives use the current one
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    if not dist.is_initialized():
        # torch._dynamo, imported by the first optimizer made, keeps a reference to a process
        # group that exists when it is imported: destroy_process_group() then left the Gloo
        # group's threads running until interpreter exit, where ending them aborted a rank
        # now and then (SIGABRT). Imported first, it holds none.
        importlib.import_module("torch._dynamo")
        store = _restart_round_store()
        if store is None:
            dist.init_process_group(backend=backend, init_method="env://")
        else:
            dist.init_process_group(
                backend=backend,
                store=store,
                rank=int(os.environ["RANK"]),
                world_size=int(os.environ["WORLD_SIZE"]),
            )
        owns = True
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=resolved,
        backend=dist.get_backend(),
        owns_group=owns,
    )


def _restart_round_store() -> dist.Store | None:
    """The store for this torchrun round's process group, or None to let ``env://`` build it.

    Why: torchrun's agent (c10d rendezvous, ``--standalone``, and the static one) hosts one
    TCPStore for the workers at ``MASTER_PORT`` and keeps it across ``--max-restarts`` rounds,
    and ``env://`` joins it without a per-round prefix. The process group's keys (Gloo's
    listening addresses, NCCL's unique id) outlive the workers that wrote them: a restarted rank
    that reaches ``init_process_group`` before its peer reads the dead peer's address and fails
    ("connectFullMesh ... Connection refused"), or both ranks wait for a connection that never
    comes (30 min, Gloo's default timeout). https://github.com/pytorch/pytorch/issues/135712

    On one node every worker gets the agent's restart count, so it names the round: each round
    gets keys of its own. Across nodes the count is per node (a node restarted for another
    node's failure keeps its count), so no prefix is safe; for the c10d rendezvous torch's
    opt-out, ``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`` in torchrun's environment, gives every
    round a fresh store instead, and a warning says so.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None  # plain env:// (rank 0 hosts a store per round) or not under torchrun
    if os.environ.get("GROUP_WORLD_SIZE", "1") != "1":
        if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0:
            warnings.warn(
                "torchrun shares its rendezvous store across --max-restarts rounds, so a "
                "restarted multi-node job can read the previous round's addresses and fail or "
                "hang (pytorch/pytorch#135712); with --rdzv-backend c10d, launch torchrun with "
                "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment (docs/DISTRIBUTED.md)",
                RuntimeWarning,
                stacklevel=3,
            )
        return None
    from torch.distributed.constants import default_pg_timeout  # needs a distributed build

    client = dist.TCPStore(
        host_name=os.environ["MASTER_ADDR"],
        port=int(os.environ["MASTER_PORT"]),
        world_size=int(os.environ["WORLD_SIZE"]),
        is_master=False,  # the agent hosts it
        timeout=default_pg_timeout,
    )
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"rl/restart_{restart}", client)


def teardown(info: DistInfo | None) -> None:
    """End the process group if :func:`init` created it."""
    if info is not None and info.owns_group and is_active():
        dist.destroy_process_group()


def _multi() -> bool:
    return is_active() and dist.get_world_size() > 1


def barrier() -> None:
    if _multi():
        dist.barrier()


def broadcast_module(module: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank (ranks build them from their own seeds)."""
    if not _multi():
        return
    with torch.no_grad():
        for tensor in (*module.parameters(), *module.buffers()):
            dist.broadcast(tensor.data, src=0)


def all_reduce_grads(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients across ranks, in place, with one flat all-reduce.

    One flat buffer, not one call per tensor: a collective costs a round trip, and these
    networks have a handful of small tensors. A parameter without a gradient on this rank
    counts as zero, so every rank sends the same buffer layout.
    """
    if not _multi():
        return
    params = [p for p in params if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        chunk = flat[offset : offset + n].view_as(g)
        if p.grad is None:
            p.grad = chunk.clone()
        else:
            p.grad.copy_(chunk)
        offset += n


def reduce_metrics(sums: torch.Tensor, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum ``sums`` and average ``means`` across ranks, in one all-reduce.

    Episode counts and return sums add up (every rank's episodes count); losses average.
    """
    if not _multi():
        return sums, means
    world = dist.get_world_size()
    both = torch.cat([sums.double().reshape(-1), means.double().reshape(-1) / world])
    dist.all_reduce(both, op=dist.ReduceOp.SUM)
    return both[: sums.numel()].view(sums.shape), both[sums.numel() :].view(means.shape)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of ``value`` across ranks (a new tensor)."""
    if not _multi():
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def sync_running_stats(rms: Any, before: dict[str, torch.Tensor]) -> None:
    """Merge the ranks' updates of a running mean/variance since ``before``, exactly.

    Every rank starts an iteration with the same statistics ``before`` and folds in its own
    observations. Each rank's new samples are recovered as raw sums (count, sum, sum of squares,
    in float64) from the difference to ``before``, summed across ranks, and turned back into
    one mean and variance: every rank ends with the statistics of all ranks' samples.

    Args:
        rms: an :class:`rl.tensors.RunningMeanStd` (``mean``, ``var``, ``count`` tensors).
        before: ``rms.state_dict()`` at the start of the iteration (the same on every rank).
    """
    if not _multi():
        return
    c0, m0, v0 = before["count"], before["mean"], before["var"]
    c, m, v = rms.count, rms.mean, rms.var
    shape = m.shape
    parts = torch.cat(
        [
            (c - c0).reshape(1),
            (m * c - m0 * c0).reshape(-1),
            ((v + m * m) * c - (v0 + m0 * m0) * c0).reshape(-1),
        ]
    ).to(torch.float64)
    dist.all_reduce(parts, op=dist.ReduceOp.SUM)
    k = m.numel()
    count = c0 + parts[0].to(c.dtype)
    total = (m0 * c0 + parts[1 : 1 + k].view(shape).to(m.dtype)) / count
    square = ((v0 + m0 * m0) * c0 + parts[1 + k :].view(shape).to(v.dtype)) / count
    rms.count = count
    rms.mean = total
    rms.var = (square - total * total).clamp_min(0.0)


def _to_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.detach().cpu()
    if isinstance(tree, dict):
        return {k: _to_cpu(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_to_cpu(v) for v in tree)
    return tree


def gather_rank_state(payload: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """Collect every rank's own entries (``keys``) into rank 0's checkpoint payload.

    Rank 0's payload gains ``"ranks"``: a list, one dict per rank, of those entries, and
    ``"world_size"``. Its top-level entries stay rank 0's own, so the file also reads as a
    one-process checkpoint (``rl eval``, ``rl watch``). Every rank must call it at the same
    point (it is a collective); non-zero ranks get their payload back unchanged.
    """
    if not _multi():
        return payload
    local = _to_cpu({k: payload[k] for k in keys if k in payload})
    gathered: list[Any] | None = [None] * dist.get_world_size() if is_rank0() else None
    dist.gather_object(local, gathered, dst=0)
    if not is_rank0():
        return payload
    return {**payload, "ranks": gathered, "world_size": dist.get_world_size()}


def select_rank_state(ckpt: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """This rank's view of a checkpoint: its own ``keys`` from ``ckpt["ranks"]``.

    Raises:
        ValueError: the checkpoint was written by a different number of ranks, so the ranks'
            env states and RNG streams do not map onto this job.
    """
    saved_world = int(ckpt.get("world_size", 1))
    world = get_world_size()
    if saved_world != world:
        raise ValueError(
            f"this checkpoint was written by {saved_world} rank(s) and this job has {world}: "
            f"resume with the same number of processes (torchrun --nproc-per-node/--nnodes "
            f"giving {saved_world} in all)"
        )
    if world == 1:
        return ckpt
    own = ckpt["ranks"][get_rank()]
    view = {k: v for k, v in ckpt.items() if k not in keys}
    view.update(own)
    return view


def broadcast_from_rank0(make: Callable[[], T]) -> T:
    """``make()`` on rank 0, sent to every rank (e.g. the checkpoint to resume from).

    An exception on rank 0 is sent too and raised on every rank, so no rank waits forever.
    """
    if not _multi():
        return make()
    box: list[Any] = [None]
    if is_rank0():
        try:
            box[0] = ("ok", make())
        except Exception as exc:  # re-raised on every rank below
            box[0] = ("error", exc)
    dist.broadcast_object_list(box, src=0)
    status, value = box[0]
    if status == "error":
        raise value
    return value
