"""Supervised learning on the same machinery as the agents: one ``fit`` loop, metrics, toy data.

:func:`fit` trains any ``torch.nn.Module`` on ``(x, y)`` tensors for regression (MSE or L1) or
classification (cross-entropy), with a train/validation split, early stopping on the validation
loss, TensorBoard logging and checkpoints through :class:`rl.runs.TrainingRun` — the same run
folder, logger and checkpoint format as ``rl train``. Behaviour cloning (``agents/bc.py``) and the
``rl supervised`` baselines all go through it.

A run written by :func:`fit` looks like an agent's run::

    runs/<task>__<model>__<seed>__<timestamp>/
        events.out.tfevents.*   losses/train, losses/val, metrics/val_r2 or metrics/val_accuracy
        config.json             the FitConfig (plus what the caller adds)
        checkpoints/best.pt     the weights with the lowest validation loss (also latest.pt)
        eval.json               the validation metrics of those weights

The datasets are generated in torch from a seed (no downloads): :func:`make_linear`,
:func:`make_wave`, :func:`make_moons`, :func:`make_circles` and :func:`make_spirals`.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from rl.config import check_field_types, config_to_dict, is_int, require_int
from rl.device import configure_threads, resolve_device, restores_thread_count
from rl.runs import TrainingRun, write_json

Task = Literal["regression", "classification"]
Loss = Literal["mse", "l1", "cross_entropy"]


@dataclass(frozen=True)
class FitConfig:
    """How :func:`fit` trains a model."""

    task: Task = "regression"
    """``regression`` (float targets) or ``classification`` (integer class labels)."""
    loss: Loss | None = None
    """``mse`` or ``l1`` for regression, ``cross_entropy`` for classification; ``None`` picks
    ``mse`` or ``cross_entropy`` from ``task``."""
    epochs: int = 200
    """The most passes over the training split (early stopping may end sooner)."""
    batch_size: int = 128
    """Rows per gradient step; larger than the training split means full-batch descent."""
    learning_rate: float = 1e-2
    """Adam's step size."""
    weight_decay: float = 0.0
    """Adam's L2 penalty on the weights (0 for an unbiased estimate of a linear model)."""
    val_fraction: float = 0.2
    """Share of the rows held out for validation when no ``x_val``/``y_val`` are given."""
    patience: int = 20
    """Stop after this many epochs without the validation loss improving by ``min_delta``;
    0 turns early stopping off."""
    min_delta: float = 0.0
    """The smallest drop in validation loss that counts as an improvement."""
    seed: int = 0
    """Seeds the split and the minibatch order (seed the model's initial weights yourself)."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:K``; model and data are moved there."""
    num_threads: int | None = None
    """torch CPU threads; ``None`` picks 1 on CPU, fastest for small models (see rl.device)."""
    run_dir: str | None = None
    """Where to log and checkpoint (``runs/<name>``); ``None`` writes no files."""
    progress: bool = False
    """Show a progress bar over epochs."""

    def __post_init__(self) -> None:
        check_field_types(self)
        if self.task not in ("regression", "classification"):
            raise ValueError(f"task must be 'regression' or 'classification', got {self.task!r}")
        allowed = ("mse", "l1") if self.task == "regression" else ("cross_entropy",)
        if self.loss is not None and self.loss not in allowed:
            raise ValueError(
                f"loss {self.loss!r} does not fit a {self.task} task; use one of {list(allowed)}"
            )
        for name in ("epochs", "batch_size"):
            require_int(name, getattr(self, name), 1)
        if not is_int(self.patience, 0):
            raise ValueError(
                f"patience must be an integer >= 0 (0: no early stopping), got {self.patience!r}"
            )
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(
                f"learning_rate must be a finite number > 0, got {self.learning_rate!r}"
            )
        for name in ("weight_decay", "min_delta"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(
                f"val_fraction must lie strictly between 0 and 1, got {self.val_fraction!r}"
            )
        # The same rule as `rl ... --seed`: torch.Generator takes negative seeds, the CLI does not.
        require_int("seed", self.seed, 0)
        if self.num_threads is not None and not is_int(self.num_threads, 1):
            raise ValueError(
                f"num_threads must be an integer >= 1 or None (auto), got {self.num_threads!r}"
            )

    @property
    def loss_name(self) -> str:
        """The loss actually used (``loss`` or the task's default)."""
        if self.loss is not None:
            return self.loss
        return "mse" if self.task == "regression" else "cross_entropy"


def require_number(name: str, value: Any) -> None:
    """A TypeError unless ``value`` is a real number (``True`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")


@dataclass
class FitResult:
    """What :func:`fit` returns; ``model`` holds the best weights (lowest validation loss)."""

    model: nn.Module
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    val_metrics: dict[str, Any] = field(default_factory=dict)
    run_dir: Path | None = None

    @property
    def epochs_run(self) -> int:
        return len(self.history)


# -- metrics -----------------------------------------------------------------------------------
def r2_score(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """The coefficient of determination ``1 - SS_res / SS_tot``: the share of the target's
    variance the predictions explain.

    1 is a perfect fit, 0 is no better than predicting the mean, and it goes negative for
    worse-than-the-mean predictions. For several output columns the sums run over all of them
    (scikit-learn's ``"variance_weighted"``), so a column that barely varies cannot dominate.
    """
    if y_true.shape != y_pred.shape:
        raise ValueError(f"r2_score: shapes differ, {tuple(y_true.shape)} vs {tuple(y_pred.shape)}")
    if y_true.dim() == 0 or y_true.numel() == 0:
        raise ValueError(
            f"r2_score of an empty set is undefined, got shape {tuple(y_true.shape)}; "
            "expected (N,) or (N, out) with N >= 1"
        )
    y_true = y_true.double().reshape(y_true.shape[0], -1)
    y_pred = y_pred.double().reshape(y_pred.shape[0], -1)
    ss_res = float((y_true - y_pred).square().sum())
    ss_tot = float((y_true - y_true.mean(0)).square().sum())
    if ss_tot == 0.0:
        # A constant target: an exact fit explains everything, anything else is undefined (0).
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def _require_integer_labels(what: str, *labels: torch.Tensor) -> None:
    """Class labels are integers: 0.7 is no class (it would count as 0 in one place and as
    wrong in another)."""
    for tensor in labels:
        if tensor.is_floating_point() or tensor.is_complex():
            raise ValueError(
                f"{what}: class labels must be integer tensors (e.g. logits.argmax(-1)), got "
                f"{tensor.dtype}"
            )


def accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """The share of predicted labels that equal the true ones (both ``(N,)`` integers)."""
    if y_true.shape != y_pred.shape:
        raise ValueError(f"accuracy: shapes differ, {tuple(y_true.shape)} vs {tuple(y_pred.shape)}")
    _require_integer_labels("accuracy", y_true, y_pred)
    if y_true.numel() == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float((y_true == y_pred).double().mean())


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, C)`` int64 counts: row = true class, column = predicted class."""
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"confusion_matrix: shapes differ, {tuple(y_true.shape)} vs {tuple(y_pred.shape)}"
        )
    if not is_int(num_classes, 1):
        raise ValueError(
            f"confusion_matrix: num_classes must be an integer >= 1, got {num_classes!r}"
        )
    _require_integer_labels("confusion_matrix", y_true, y_pred)
    for name, labels in (("y_true", y_true), ("y_pred", y_pred)):
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise ValueError(
                f"confusion_matrix: {name} holds labels from {int(labels.min())} to "
                f"{int(labels.max())}, outside [0, {num_classes - 1}] for num_classes={num_classes}"
            )
    index = y_true.long().reshape(-1) * num_classes + y_pred.long().reshape(-1)
    counts = torch.bincount(index.cpu(), minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


# -- networks ----------------------------------------------------------------------------------
def mlp(
    in_features: int,
    hidden_sizes: Sequence[int],
    out_features: int,
    activation: Literal["tanh", "relu"] = "tanh",
) -> nn.Sequential:
    """A multilayer perceptron whose layers are named after their role.

    The input layer is the features themselves (``in_features`` numbers); each ``hiddenK`` is a
    linear map followed by ``actK``, the nonlinearity that lets the network bend; ``output`` maps
    the last hidden layer to ``out_features`` numbers (a prediction, or one logit per class).
    With ``hidden_sizes=()`` it is a linear model.
    """
    for name, value in (("in_features", in_features), ("out_features", out_features)):
        if not is_int(value, numpy=True):
            raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if isinstance(hidden_sizes, (str, bytes)) or not isinstance(hidden_sizes, Sequence):
        raise TypeError(
            f"hidden_sizes must be a sequence of layer widths, e.g. (64, 64) or () for a linear "
            f"model, got {hidden_sizes!r}"
        )
    if not all(is_int(h, numpy=True) for h in hidden_sizes):
        raise TypeError(f"hidden_sizes must hold integer widths, got {list(hidden_sizes)}")
    if in_features < 1 or out_features < 1 or any(h < 1 for h in hidden_sizes):
        raise ValueError(
            f"layer sizes must be >= 1, got in={in_features}, hidden={list(hidden_sizes)}, "
            f"out={out_features}"
        )
    act = {"tanh": nn.Tanh, "relu": nn.ReLU}.get(activation)
    if act is None:
        raise ValueError(f"activation must be 'tanh' or 'relu', got {activation!r}")
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    width = in_features
    for k, hidden in enumerate(hidden_sizes, start=1):
        layers[f"hidden{k}"] = nn.Linear(width, hidden)
        layers[f"act{k}"] = act()
        width = hidden
    layers["output"] = nn.Linear(width, out_features)
    return nn.Sequential(layers)


def describe_network(model: nn.Module, in_features: int) -> list[dict[str, Any]]:
    """One row per layer of ``model`` (input, hidden, output): name, output width, parameters.

    Runs one zero input through the model to read each layer's output width.
    """
    rows: list[dict[str, Any]] = [
        {"layer": "input", "kind": "features", "width": in_features, "parameters": 0}
    ]
    width = _input_width(model)
    if width is not None and width != in_features:
        raise ValueError(
            f"describe_network: the model's first layer reads {width} feature(s), not {in_features}"
        )
    out = torch.zeros(1, in_features, device=next(model.parameters()).device)
    for name, module in model.named_children():
        out = module(out)
        rows.append(
            {
                "layer": name,
                "kind": type(module).__name__,
                "width": int(out.shape[-1]),
                "parameters": sum(p.numel() for p in module.parameters()),
            }
        )
    return rows


# -- data --------------------------------------------------------------------------------------
def train_val_split(
    x: torch.Tensor,
    y: torch.Tensor,
    val_fraction: float,
    seed: int = 0,
    groups: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A shuffled split into ``(x_train, y_train, x_val, y_val)``; both parts keep >= 1 row.

    Args:
        groups: ``(N,)`` integer ids of rows that belong together (the steps of one episode):
            whole groups are held out, in a shuffled order, until ``val_fraction`` of the rows
            are, a group skipped where it would take the held-out rows past 1.5 times that
            share (a random row split would test each row beside its neighbours in the same
            episode, learned from). Where whole groups cannot make half the share (a single
            episode, or a few long ones), the last rows are held out. ``None``: single rows
            are shuffled.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction!r}")
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 rows to split into train and validation, got {n}")
    if y.shape[0] != n:
        raise ValueError(f"x has {n} rows but y has {y.shape[0]}")
    generator = torch.Generator().manual_seed(seed)
    n_val = min(n - 1, max(1, round(n * val_fraction)))
    if groups is None:
        order = torch.randperm(n, generator=generator)
        val, train = order[:n_val], order[n_val:]
    else:
        if groups.shape != (n,) or groups.is_floating_point():
            raise ValueError(
                f"groups must be ({n},) integer ids, one per row, got {tuple(groups.shape)} "
                f"{groups.dtype}"
            )
        ids, inverse = torch.unique(groups.cpu(), return_inverse=True)
        sizes = torch.bincount(inverse, minlength=len(ids)).tolist()
        # Whole groups in a shuffled order, each taken while the held-out rows stay within
        # 1.5 x n_val (one long episode is not held out whole), until n_val rows are.
        cap, count = min(n - 1, n_val + n_val // 2), 0
        held = torch.zeros(len(ids), dtype=torch.bool)
        for g in torch.randperm(len(ids), generator=generator).tolist():
            if count >= n_val:
                break
            if count + sizes[g] <= cap:
                held[g], count = True, count + sizes[g]
        if count * 2 >= n_val:
            val, train = held[inverse].nonzero().squeeze(1), (~held[inverse]).nonzero().squeeze(1)
        else:  # episodes too long to hold out whole (or one): the data's last n_val rows
            val, train = torch.arange(n - n_val, n), torch.arange(n - n_val)
    val, train = val.to(x.device), train.to(x.device)
    return x[train], y[train], x[val], y[val]


def _check_sample(n: Any, noise: Any) -> None:
    """The arguments every toy-data generator shares: a row count and a noise level."""
    if not is_int(n, 1):
        raise ValueError(f"n (the number of rows) must be an integer >= 1, got {n!r}")
    require_number("noise", noise)
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(
            f"noise (a standard deviation) must be a finite number >= 0, got {noise!r}"
        )


def make_linear(
    n: int, weight: Sequence[float], bias: float, noise: float = 0.1, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``y = w·x + b + noise``: ``x`` ``(n, len(w))`` standard normal, ``y`` ``(n,)``."""
    _check_sample(n, noise)
    try:
        w = torch.tensor(weight, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"weight must be a sequence of numbers, got {weight!r}") from None
    if w.dim() != 1 or w.numel() == 0 or not bool(w.isfinite().all()):
        raise ValueError(
            f"weight must hold one finite number per feature (at least one), got {weight!r}"
        )
    require_number("bias", bias)
    if not math.isfinite(bias):
        raise ValueError(f"bias must be finite, got {bias!r}")
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, w.numel(), generator=generator)
    y = x @ w + bias + noise * torch.randn(n, generator=generator)
    return x, y


def make_wave(n: int, noise: float = 0.05, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A nonlinear 1-D target, ``y = sin(2x) + 0.3 x² + noise`` on ``x ∈ [-3, 3]``."""
    _check_sample(n, noise)
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=generator) * 6.0 - 3.0
    y = torch.sin(2.0 * x[:, 0]) + 0.3 * x[:, 0].square()
    return x, y + noise * torch.randn(n, generator=generator)


def make_moons(n: int, noise: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaving half circles (scikit-learn's ``make_moons``), labels 0 and 1."""
    _check_sample(n, noise)
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    angle = torch.rand(n, generator=generator) * math.pi
    upper = torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    lower = torch.stack([1.0 - torch.cos(angle), 0.5 - torch.sin(angle)], dim=1)
    x = torch.where(y[:, None] == 0, upper, lower)
    return x + noise * torch.randn(n, 2, generator=generator), y


def make_circles(
    n: int, noise: float = 0.05, factor: float = 0.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A small circle (label 1, radius ``factor``) inside a unit circle (label 0)."""
    _check_sample(n, noise)
    require_number("factor", factor)
    if not 0.0 <= factor < 1.0:
        raise ValueError(f"factor (the inner circle's radius) must lie in [0, 1), got {factor!r}")
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    angle = torch.rand(n, generator=generator) * 2.0 * math.pi
    radius = torch.where(y == 0, 1.0, factor)
    x = radius[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return x + noise * torch.randn(n, 2, generator=generator), y


def make_spirals(
    n: int, noise: float = 0.05, turns: float = 1.5, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spiral arms of ``turns`` revolutions, labels 0 and 1."""
    _check_sample(n, noise)
    require_number("turns", turns)
    if not (math.isfinite(turns) and turns > 0):
        raise ValueError(f"turns must be a finite number > 0, got {turns!r}")
    generator = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    # sqrt spreads points evenly along the arm rather than bunching them at the centre.
    t = torch.sqrt(torch.rand(n, generator=generator)) * turns * 2.0 * math.pi
    radius = t / (turns * 2.0 * math.pi)
    angle = t + math.pi * y
    x = radius[:, None] * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return x + noise * torch.randn(n, 2, generator=generator), y


TOY_DATASETS = {"moons": make_moons, "circles": make_circles, "spirals": make_spirals}


# -- the loop ----------------------------------------------------------------------------------
def _loss_fn(name: str) -> nn.Module:
    return {"mse": nn.MSELoss(), "l1": nn.L1Loss(), "cross_entropy": nn.CrossEntropyLoss()}[name]


def _check_data(task: str, x: Any, y: Any, what: str) -> None:
    """Types, shapes, dtypes and values of ``(x, y)``, before any training (no model needed)."""
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, torch.Tensor):
            hint = " (convert with torch.from_numpy)" if type(value).__module__ == "numpy" else ""
            raise TypeError(
                f"{what}: {name} must be a torch.Tensor, got {type(value).__name__}{hint}"
            )
    if x.dim() == 0 or y.dim() == 0:
        raise ValueError(
            f"{what}: x and y need one row per example, got shapes {tuple(x.shape)} and "
            f"{tuple(y.shape)}; expected x (N, features) and y (N,) or (N, out)"
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"{what}: x has {x.shape[0]} rows but y has {y.shape[0]}")
    if x.shape[0] == 0:
        raise ValueError(f"{what}: no rows")
    if x.dim() < 2:
        raise ValueError(
            f"{what}: x must be (N, features), got shape {tuple(x.shape)}; "
            "for a single feature use x[:, None]"
        )
    if not x.is_floating_point():
        raise ValueError(f"{what}: x must be a float tensor, got {x.dtype} (convert with .float())")
    if task == "classification":
        if y.is_floating_point() or y.dim() != 1:
            raise ValueError(
                f"{what}: classification needs (N,) integer class labels, got "
                f"{tuple(y.shape)} {y.dtype}"
            )
        if y.dtype not in (torch.int64, torch.uint8):
            # cross_entropy reads int64 (or uint8) targets only.
            raise TypeError(
                f"{what}: classification labels must be int64 class indices, got {y.dtype} "
                "(convert with y.long())"
            )
    if task == "regression" and not y.is_floating_point():
        raise ValueError(f"{what}: regression needs float targets, got {y.dtype} (use .float())")
    for name, value in (("x", x), ("y", y)):
        if value.is_floating_point():
            bad = int((~value.isfinite()).reshape(value.shape[0], -1).any(1).sum())
            if bad:
                raise ValueError(
                    f"{what}: {name} holds NaN or infinite values in {bad} of {value.shape[0]} "
                    "rows; drop or fill those rows before fitting"
                )


def _input_width(model: nn.Module) -> int | None:
    """The features a plain MLP's first layer reads (``None`` when that is not plain to see)."""
    if isinstance(model, nn.Sequential) and len(model) and isinstance(model[0], nn.Linear):
        return model[0].in_features
    return None


@torch.no_grad()
def _check_model_fits(
    model: nn.Module, task: str, x: torch.Tensor, y: torch.Tensor, what: str
) -> None:
    """Does ``model`` read ``x``'s rows and give one output per target (or one logit per class)?

    ``x`` is one row, on the model's device: one forward pass in eval mode (no dropout, batch
    norm statistics untouched), so the training that follows is exactly as without the check.
    """
    param = next(model.parameters(), None)
    if param is not None and x.dtype != param.dtype:
        raise TypeError(
            f"{what}: x is {x.dtype} but the model's weights are {param.dtype}; convert the data "
            f"with x.to({param.dtype}) (or the model with model.to({x.dtype}))"
        )
    was_training = model.training
    model.eval()
    try:
        out = model(x[:1])
    except RuntimeError as exc:
        width = _input_width(model)
        if width is not None and width != x.shape[-1]:
            reason = (
                f"the model's first layer reads {width} feature(s) per row, x has {x.shape[-1]}"
            )
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            reason = f"the model cannot read rows of shape {tuple(x.shape[1:])} ({first[:200]})"
        raise ValueError(
            f"{what}: {reason}; give x as many features as the model's input"
        ) from None
    finally:
        model.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != 1:
        raise ValueError(
            f"{what}: the model must map (B, ...) inputs to (B, out) outputs, got "
            f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__} for B=1"
        )
    if task == "classification":
        if out.dim() != 2 or out.shape[1] < 2:
            raise ValueError(
                f"{what}: classification needs one output (logit) per class, at least 2, but the "
                f"model gives shape {tuple(out.shape[1:])}; for two classes use out_features=2"
            )
        classes = out.shape[1]
        low, high = int(y.min()), int(y.max())
        if low < 0 or high >= classes:
            raise ValueError(
                f"{what}: class labels must lie in [0, {classes - 1}] (the model gives {classes} "
                f"logits), got labels from {low} to {high}"
            )
    else:
        outputs, targets = out[0].numel(), math.prod(y.shape[1:])
        if outputs != targets:
            raise ValueError(
                f"{what}: the model gives {outputs} output(s) per row but y has {targets} "
                f"target(s) per row (shape {tuple(y.shape)}); give the model out_features="
                f"{targets} or y of shape (N, {outputs})"
            )


def _predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])


def _as_target(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # A regression model emits (B, 1) for a (B,) target: compare like with like, not broadcast
    # (B, 1) - (B,) into a (B, B) matrix, a classic silent bug.
    return output.reshape(y.shape) if output.numel() == y.numel() else output


@torch.no_grad()
def evaluate_model(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: FitConfig
) -> dict[str, Any]:
    """Loss and metrics of ``model`` on ``(x, y)``: R² and MAE, or accuracy and confusion matrix."""
    was_training = model.training
    model.eval()
    output = _predict(model, x, max(cfg.batch_size, 4096))
    model.train(was_training)
    metrics: dict[str, Any] = {"loss": float(_loss_fn(cfg.loss_name)(_as_target(output, y), y))}
    if cfg.task == "regression":
        pred = _as_target(output, y)
        metrics["r2"] = r2_score(y, pred)
        metrics["mae"] = float((y - pred).abs().mean())
    else:
        pred = output.argmax(-1)
        metrics["accuracy"] = accuracy(y, pred)
        metrics["confusion_matrix"] = confusion_matrix(y, pred, output.shape[-1]).tolist()
    return metrics


@restores_thread_count
def fit(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: FitConfig,
    *,
    x_val: torch.Tensor | None = None,
    y_val: torch.Tensor | None = None,
    run_config: dict[str, Any] | None = None,
    checkpoint_extra: dict[str, Any] | None = None,
    learning_rate_name: str = "learning_rate",
    groups: torch.Tensor | None = None,
) -> FitResult:
    """Train ``model`` on ``(x, y)`` and return it with its best validation weights.

    Args:
        model: maps ``(B, *x.shape[1:])`` to ``(B, out)`` (``(B, C)`` logits for classification).
        x: ``(N, ...)`` float inputs.
        y: ``(N,)`` or ``(N, out)`` float targets, or ``(N,)`` int64 class labels.
        cfg: the loop's settings; ``cfg.run_dir`` set means TensorBoard logs and checkpoints.
        x_val, y_val: a fixed validation set; otherwise ``cfg.val_fraction`` of ``x`` is held out.
        run_config: extra JSON-ready values written to ``config.json`` beside the FitConfig.
        checkpoint_extra: tensors and plain values added to the checkpoint (what an agent needs
            to rebuild its model, e.g. ``algo``, ``spaces``); its ``config`` replaces the
            FitConfig's.
        learning_rate_name: the setting a user lowers when the fit diverges (the error names
            it: ``pretrain_learning_rate`` for the forward model).
        groups: ``(N,)`` ids of rows held out together (episodes; see :func:`train_val_split`)
            when ``x_val`` is not given.

    Raises:
        FloatingPointError: the losses (or the optimizer's state) stopped being finite.

    Raises:
        TypeError: ``x`` or ``y`` not tensors, ``x`` of another float dtype than the model's
            weights, or class labels that are not int64.
        ValueError: mismatched rows, the wrong dtypes for the task, NaN or infinite values,
            a model whose input or output size does not fit the data (or the number of
            classes), or half a validation set.
    """
    if (x_val is None) != (y_val is None):
        raise ValueError("give both x_val and y_val, or neither")
    device = resolve_device(cfg.device)
    configure_threads(device, cfg.num_threads)
    # Every check runs before any training, so a mistake costs no epochs.
    _check_data(cfg.task, x, y, "training data")
    if x_val is not None and y_val is not None:
        _check_data(cfg.task, x_val, y_val, "validation data (x_val, y_val)")
    model.to(device)
    _check_model_fits(model, cfg.task, x[:1].to(device), y, "training data")
    if x_val is None or y_val is None:
        x, y, x_val, y_val = train_val_split(x, y, cfg.val_fraction, cfg.seed, groups)
    else:
        _check_model_fits(
            model, cfg.task, x_val[:1].to(device), y_val, "validation data (x_val, y_val)"
        )
    x, y, x_val, y_val = (t.to(device) for t in (x, y, x_val, y_val))
    loss_fn = _loss_fn(cfg.loss_name)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    generator = torch.Generator().manual_seed(cfg.seed)
    metric_key = "r2" if cfg.task == "regression" else "accuracy"

    run = None
    if cfg.run_dir is not None:
        run = TrainingRun(
            cfg.run_dir,
            {"fit": config_to_dict(cfg), **(run_config or {})},
            total_timesteps=cfg.epochs,
            progress=cfg.progress,
            resumable=False,
        )
    history: list[dict[str, float]] = []
    best_val, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    stale, stopped_early = 0, False
    try:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            order = torch.randperm(x.shape[0], generator=generator).to(device)
            total, rows = torch.zeros((), device=device), 0
            for start in range(0, x.shape[0], cfg.batch_size):
                mb_idx = order[start : start + cfg.batch_size]
                mb_y = y[mb_idx]
                loss = loss_fn(_as_target(model(x[mb_idx]), mb_y), mb_y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                try:
                    optimizer.step()
                except RuntimeError as exc:  # e.g. "value cannot be converted ... overflow"
                    if "overflow" not in str(exc):
                        raise
                    raise FloatingPointError(
                        f"fit diverged at epoch {epoch} (the optimizer overflowed); lower "
                        f"{learning_rate_name} (now {cfg.learning_rate})"
                    ) from None
                total += loss.detach() * mb_idx.numel()
                rows += mb_idx.numel()
            train_loss = float(total) / rows  # sync: once per epoch
            val = evaluate_model(model, x_val, y_val, cfg)
            if not (math.isfinite(train_loss) and math.isfinite(val["loss"])):
                raise FloatingPointError(
                    f"fit diverged at epoch {epoch} (train loss {train_loss}, val loss "
                    f"{val['loss']}); lower {learning_rate_name} (now {cfg.learning_rate})"
                )
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": train_loss,
                    "val_loss": val["loss"],
                    f"val_{metric_key}": val[metric_key],
                }
            )
            if run is not None:
                run.log(
                    {
                        "losses/train": train_loss,
                        "losses/val": val["loss"],
                        f"metrics/val_{metric_key}": val[metric_key],
                    },
                    epoch,
                )
                run.update_progress(epoch, f"val loss {val['loss']:.4g}")
            if val["loss"] < best_val - cfg.min_delta:
                best_val, best_epoch, stale = val["loss"], epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                stale += 1
                if cfg.patience and stale >= cfg.patience:
                    stopped_early = True
                    break
        model.load_state_dict(best_state)
        val_metrics = evaluate_model(model, x_val, y_val, cfg)
        if run is not None:
            # best.pt ranks checkpoints by a "return" where higher is better: the negated loss.
            # The best epoch's weights, without the optimizer's state: that would be the last
            # epoch's, and a fit does not resume.
            run.save(
                {
                    "model": model.state_dict(),
                    "config": config_to_dict(cfg),
                    "epoch": best_epoch,
                    "val_metrics": val_metrics,
                    **(checkpoint_extra or {}),
                },
                best_epoch,
                mean_return=-val_metrics["loss"],
            )
            write_json(run.run_dir / "eval.json", {"best_epoch": best_epoch, **val_metrics})
    finally:
        if run is not None:
            run.close()
    return FitResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        best_val_loss=best_val,
        stopped_early=stopped_early,
        val_metrics=val_metrics,
        run_dir=None if run is None else run.run_dir,
    )
