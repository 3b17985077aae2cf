"""Tensors and numeric encoding: one-hot, normalisation, running statistics, images."""

from __future__ import annotations

import math

import numpy as np
import torch


def one_hot(
    indices: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """``(...,)`` integer class indices → ``(..., num_classes)`` one-hot floats.

    Raises:
        ValueError: for non-integer indices or indices outside ``[0, num_classes)``.
    """
    if indices.is_floating_point() or indices.dtype == torch.bool:
        raise ValueError(f"one_hot needs integer class indices, got dtype {indices.dtype}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_classes):
        raise ValueError(
            f"class indices must lie in [0, {num_classes - 1}], "
            f"got values in [{int(indices.min())}, {int(indices.max())}]"
        )
    return torch.nn.functional.one_hot(indices.long(), num_classes).to(dtype)


def _check_reducible(name: str, x: torch.Tensor, dim: int, least: int) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} needs a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} needs a floating-point tensor, got dtype {x.dtype}")
    if not -x.dim() <= dim < max(x.dim(), 1):
        raise ValueError(f"{name}: dim {dim} is out of range for shape {tuple(x.shape)}")
    size = x.shape[dim] if x.dim() else 1
    if size < least or x.numel() == 0:
        raise ValueError(
            f"{name} needs at least {least} value(s) along dim {dim}, got shape {tuple(x.shape)}"
        )


def standardize(x: torch.Tensor, dim: int = 0, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit standard deviation along ``dim`` (the sample standard deviation, as
    ``torch.std``: dividing by ``n - 1``, so at least two values are needed)."""
    _check_reducible("standardize", x, dim, least=2)
    return (x - x.mean(dim, keepdim=True)) / (x.std(dim, keepdim=True) + eps)


def min_max_scale(x: torch.Tensor, dim: int = 0, eps: float = 1e-12) -> torch.Tensor:
    """Scale to ``[0, 1]`` along ``dim``."""
    _check_reducible("min_max_scale", x, dim, least=1)
    low = x.amin(dim, keepdim=True)
    high = x.amax(dim, keepdim=True)
    return (x - low) / (high - low + eps)


def _merge_moments(
    mean: torch.Tensor,
    var: torch.Tensor,
    count: torch.Tensor,
    batch_mean: torch.Tensor,
    batch_var: torch.Tensor,
    batch_count: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Chan et al.'s parallel update: the moments of (count, mean, var) and a batch's, merged."""
    delta = batch_mean - mean
    total = count + batch_count
    m2 = var * count + batch_var * batch_count + delta.square() * count * batch_count / total
    return mean + delta * (batch_count / total), m2 / total, total


def _check_batch(batch: torch.Tensor, shape: tuple[int, ...]) -> None:
    """A batch of samples of ``shape``, at least one (shapes only: no host sync)."""
    if not isinstance(batch, torch.Tensor):
        raise TypeError(f"running statistics need a torch.Tensor batch, got {type(batch).__name__}")
    lead = batch.dim() - len(shape)
    if lead < 0 or tuple(batch.shape[lead:]) != shape:
        raise ValueError(
            f"running statistics of samples of shape {shape} got a batch of shape "
            f"{tuple(batch.shape)}; expected (B, *{shape})"
        )
    if batch.numel() == 0 and math.prod(shape) > 0:
        raise ValueError(f"running statistics got an empty batch of shape {tuple(batch.shape)}")


class RunningMeanStd:
    """Running mean and variance over batches (Chan et al.'s parallel update), on the device.

    Used for observation and reward normalisation. Its state is three tensors, saved in
    checkpoints via :meth:`state_dict`.

    Args:
        shape: the shape of one sample.
        device: where the statistics live.
        epsilon: the initial pseudo-count (keeps the first division finite).
    """

    def __init__(
        self,
        shape: tuple[int, ...] = (),
        device: torch.device | str = "cpu",
        epsilon: float = 1e-4,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.mean = torch.zeros(shape, dtype=dtype, device=device)
        self.var = torch.ones(shape, dtype=dtype, device=device)
        self.count = torch.tensor(epsilon, dtype=dtype, device=device)

    def update(self, batch: torch.Tensor) -> None:
        """Fold in a ``(B, *shape)`` batch (or any ``(..., *shape)``: the leading dimensions are
        rows)."""
        _check_batch(batch, tuple(self.mean.shape))
        batch = batch.to(self.mean.dtype).reshape(-1, *self.mean.shape)
        merged = _merge_moments(
            self.mean,
            self.var,
            self.count,
            batch.mean(0),
            batch.var(0, unbiased=False),
            batch.shape[0],
        )
        # In place: a CUDA graph that captured this update keeps updating these same tensors.
        for mine, new in zip((self.mean, self.var, self.count), merged, strict=True):
            mine.copy_(new)

    def normalize(
        self, x: torch.Tensor, clip: float | None = 10.0, eps: float = 1e-8
    ) -> torch.Tensor:
        out = (x - self.mean.to(x.dtype)) / torch.sqrt(self.var.to(x.dtype) + eps)
        return out if clip is None else out.clamp(-clip, clip)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for key in ("mean", "var", "count"):
            if key not in state:
                raise ValueError(f"running statistics are missing {key!r}")
        if state["mean"].shape != self.mean.shape:
            raise ValueError(
                f"running statistics have shape {tuple(state['mean'].shape)}, "
                f"expected {tuple(self.mean.shape)}"
            )
        # Into these same tensors (never the caller's, which update() would then write to): a
        # CUDA graph that reads them, such as a kept stop check's, sees the loaded values.
        for mine, key in ((self.mean, "mean"), (self.var, "var"), (self.count, "count")):
            mine.copy_(state[key])


class GroupedRunningMeanStd:
    """``groups`` independent :class:`RunningMeanStd` over equal, consecutive slices of a batch.

    Row ``i`` of a ``(G * B, *shape)`` batch belongs to group ``i // B``: the layout of
    :mod:`agents.multiseed`'s env, where agent ``g`` owns rows ``[g * B, (g + 1) * B)``. Group
    ``g``'s statistics are those a :class:`RunningMeanStd` fed only its rows would hold
    (:meth:`group`), computed for all groups in one pass, until :meth:`freeze` stops a group:
    its statistics then stay as they were.
    """

    def __init__(
        self,
        groups: int,
        shape: tuple[int, ...] = (),
        device: torch.device | str = "cpu",
        epsilon: float = 1e-4,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        self.groups, self.shape = groups, tuple(shape)
        self.mean = torch.zeros((groups, *self.shape), dtype=dtype, device=device)
        self.var = torch.ones((groups, *self.shape), dtype=dtype, device=device)
        self.count = torch.full((groups,), epsilon, dtype=dtype, device=device)
        # A frozen group keeps its statistics (multi-seed: an agent that stopped at its target
        # keeps normalising as it did when it stopped, while the other agents' rows go on).
        self.frozen = torch.zeros(groups, dtype=torch.bool, device=device)

    def _per_group(self, x: torch.Tensor) -> torch.Tensor:
        """A ``(G,)`` tensor shaped to broadcast against ``(G, *shape)``."""
        return x.view(self.groups, *([1] * len(self.shape)))

    def freeze(self, g: int) -> None:
        """Stop folding rows into group ``g`` (in place: a captured CUDA graph sees it)."""
        self.frozen[g] = True

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """``(G * B, *shape)`` → ``(G, B, *shape)``."""
        if x.shape[0] % self.groups:
            raise ValueError(
                f"a batch of {x.shape[0]} rows does not split into {self.groups} equal groups"
            )
        return x.reshape(self.groups, -1, *self.shape)

    def update(self, batch: torch.Tensor) -> None:
        """Fold in a ``(G * B, *shape)`` batch: group ``g`` takes rows ``g * B ... g * B + B - 1``."""
        _check_batch(batch, self.shape)
        if batch.dim() != 1 + len(self.shape) or batch.shape[0] == 0:
            raise ValueError(
                f"grouped statistics need a (G * B, *{self.shape}) batch with B >= 1, got shape "
                f"{tuple(batch.shape)}"
            )
        grouped = self._split(batch.to(self.mean.dtype))
        mean, var, count = _merge_moments(
            self.mean, self.var, self._per_group(self.count), grouped.mean(1),
            grouped.var(1, unbiased=False), grouped.shape[1],
        )  # fmt: skip
        keep = self._per_group(self.frozen)
        # In place, as RunningMeanStd.update (CUDA graphs); frozen groups keep theirs.
        self.mean.copy_(torch.where(keep, self.mean, mean))
        self.var.copy_(torch.where(keep, self.var, var))
        self.count.copy_(torch.where(self.frozen, self.count, count.reshape(self.groups)))

    def normalize(
        self, x: torch.Tensor, clip: float | None = 10.0, eps: float = 1e-8
    ) -> torch.Tensor:
        """``x`` ``(G * B, *shape)``, each group by its own statistics."""
        grouped = self._split(x)
        mean = self.mean.to(x.dtype).unsqueeze(1)
        std = torch.sqrt(self.var.to(x.dtype).unsqueeze(1) + eps)
        out = ((grouped - mean) / std).reshape(x.shape)
        return out if clip is None else out.clamp(-clip, clip)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "mean": self.mean.clone(),
            "var": self.var.clone(),
            "count": self.count.clone(),
            "frozen": self.frozen.clone(),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load :meth:`state_dict`'s output. A state saved before groups had their own counts
        (one scalar ``count``) and frozen flags loads too: one count for every group, none
        frozen."""
        for key in ("mean", "var", "count"):
            if key not in state:
                raise ValueError(f"grouped running statistics are missing {key!r}")
        if tuple(state["mean"].shape) != tuple(self.mean.shape):
            raise ValueError(
                f"grouped statistics of shape {tuple(state['mean'].shape)} do not fit "
                f"{tuple(self.mean.shape)} (groups, *shape)"
            )
        # In place, as RunningMeanStd.load_state_dict (a scalar count broadcasts).
        for mine, key in ((self.mean, "mean"), (self.var, "var"), (self.count, "count")):
            mine.copy_(state[key])
        self.frozen.copy_(state.get("frozen", torch.zeros_like(self.frozen)))

    def subset(self, groups: list[int]) -> GroupedRunningMeanStd:
        """Groups ``groups`` (indices) as their own statistics (copies)."""
        index = torch.tensor(groups, device=self.mean.device)
        sub = GroupedRunningMeanStd(
            len(groups), self.shape, self.mean.device, dtype=self.mean.dtype
        )
        sub.load_state_dict(
            {
                "mean": self.mean.index_select(0, index),
                "var": self.var.index_select(0, index),
                "count": self.count.index_select(0, index),
                "frozen": self.frozen.index_select(0, index),
            }
        )
        return sub

    def load_group(self, g: int, state: dict[str, torch.Tensor]) -> None:
        """Set group ``g``'s statistics from a :class:`RunningMeanStd` state (in place; the
        inverse of :meth:`group`)."""
        for mine, key in ((self.mean, "mean"), (self.var, "var"), (self.count, "count")):
            mine[g].copy_(state[key])

    def group(self, g: int) -> RunningMeanStd:
        """Group ``g``'s statistics as a standalone :class:`RunningMeanStd` (a copy)."""
        rms = RunningMeanStd(self.shape, self.mean.device, dtype=self.mean.dtype)
        rms.load_state_dict(
            {
                "mean": self.mean[g].clone(),
                "var": self.var[g].clone(),
                "count": self.count[g].clone(),
            }
        )
        return rms


def flatten_parameters(module: torch.nn.Module) -> torch.nn.Parameter:
    """Make ``module``'s parameters views of one flat parameter, and their gradients views of
    its gradient; return the flat parameter (for the optimizer and the gradient clip).

    Small networks on the CPU spend their optimizer step on per-tensor overhead: Adam, the
    global-norm clip and zeroing over one flat tensor are one kernel each instead of one per
    parameter (3x faster for a 64-64 actor-critic). The module keeps its parameters, names and
    ``state_dict``; backward accumulates into the shared gradient buffer, so clear it with
    ``optimizer.zero_grad(set_to_none=False)``: ``None`` gradients would detach the views.
    Call after moving ``module`` to its device.
    """
    params = list(module.parameters())
    if not params:
        raise ValueError("flatten_parameters: the module has no parameters")
    if len({(p.device, p.dtype) for p in params}) > 1:
        raise ValueError("flatten_parameters: parameters differ in device or dtype")
    flat = torch.nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
    flat.grad = torch.zeros_like(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.data = flat.data[offset : offset + n].view_as(p)
        p.grad = flat.grad[offset : offset + n].view_as(p)
        offset += n
    return flat


def image_to_tensor(image: np.ndarray) -> torch.Tensor:
    """``(H, W, C)`` uint8 image → ``(C, H, W)`` float tensor in ``[0, 1]``."""
    if image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, C) uint8 image, got {image.shape} {image.dtype}")
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float() / 255.0


def tensor_to_image(tensor: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` float tensor in ``[0, 1]`` → ``(H, W, C)`` uint8 image."""
    if tensor.dim() != 3:
        raise ValueError(f"expected a (C, H, W) tensor, got shape {tuple(tensor.shape)}")
    array = (tensor.detach().clamp(0, 1) * 255.0).round().to(torch.uint8)
    return array.permute(1, 2, 0).cpu().numpy()
