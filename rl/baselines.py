"""The supervised baselines behind ``rl supervised``: tensors, anatomy, regression, classification.

Each ``*_baseline`` function trains through :func:`rl.supervised.fit`, writes its runs under one
parent folder (``runs/supervised-<task>__<model>__<seed>__<timestamp>/``, one sub-run per model
fitted, a PNG and ``result.json``) and returns a JSON-ready dict, which the CLI prints.
Behaviour cloning, transfer and pretraining need the environments, so they live in ``agents/``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rl.device import resolve_device
from rl.runs import RUNS_ROOT, run_name, write_json
from rl.seeding import seed_everything
from rl.supervised import (
    TOY_DATASETS,
    FitConfig,
    accuracy,
    confusion_matrix,
    describe_network,
    fit,
    make_linear,
    make_wave,
    mlp,
    r2_score,
)
from rl.tensors import (
    RunningMeanStd,
    image_to_tensor,
    min_max_scale,
    one_hot,
    standardize,
    tensor_to_image,
)

TRUE_WEIGHT = (2.0, -3.0, 0.5)
TRUE_BIAS = 1.0
# Held-out sets use seeds far from the training seed so they are fresh draws, not a reshuffle.
_TEST_SEED_OFFSET = 10_000


def _parent_dir(task: str, model: str, seed: int, runs_root: str | os.PathLike) -> Path:
    path = Path(runs_root) / run_name(f"supervised-{task}", model, seed)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pyplot() -> Any:
    import matplotlib  # Lazy: matplotlib is slow to import and only the PNGs need it.

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tensors_demo(seed: int = 0) -> dict[str, Any]:
    """Numeric encoding in a few lines: one-hot, standardisation, running statistics, images."""
    seed_everything(seed)
    labels = torch.tensor([0, 2, 1, 5])  # e.g. the dog's actions
    heights = torch.tensor([[20.0], [35.0], [50.0], [65.0]])  # dogs' shoulder heights, cm
    pseudo_count = 1e-4  # RunningMeanStd's default epsilon, named here to report it
    stats = RunningMeanStd(shape=(1,), epsilon=pseudo_count)
    for batch in heights.split(2):
        stats.update(batch)
    image = (np.arange(2 * 3 * 3) * 10).astype(np.uint8).reshape(2, 3, 3)
    as_tensor = image_to_tensor(image)
    # Two standard deviations meet here, and a learner checking by hand needs to know which is
    # which: standardize divides by n - 1 (the sample std, as torch.std), RunningMeanStd keeps
    # the population variance (divides by n) and starts from a tiny pseudo-count at mean 0.
    return {
        "task": "tensors",
        "labels": labels.tolist(),
        "one_hot": one_hot(labels, 6).tolist(),
        "heights_cm": heights[:, 0].tolist(),
        "mean": float(heights.mean()),
        "sample_std": float(heights.std()),
        "population_std": float(heights.std(correction=0)),
        "standardized": [round(v, 4) for v in standardize(heights)[:, 0].tolist()],
        "min_max_scaled": [round(v, 4) for v in min_max_scale(heights)[:, 0].tolist()],
        "running_mean": float(stats.mean[0]),
        "running_std": float(stats.var[0].sqrt()),
        "running_count": float(stats.count),
        "running_pseudo_count": pseudo_count,
        "image_shape_hwc": list(image.shape),
        "tensor_shape_chw": list(as_tensor.shape),
        "round_trip_exact": bool((tensor_to_image(as_tensor) == image).all()),
    }


def anatomy_demo(
    in_features: int = 2, hidden_sizes: tuple[int, ...] = (16, 16), out_features: int = 3
) -> dict[str, Any]:
    """The layers of a small MLP: input, hidden (linear + activation) and output, with sizes."""
    model = mlp(in_features, hidden_sizes, out_features)
    rows = describe_network(model, in_features)
    return {
        "task": "anatomy",
        "layers": rows,
        "total_parameters": sum(r["parameters"] for r in rows),
        "module": str(model),
    }


def regression_baseline(
    *, seed: int = 0, device: str = "auto", runs_root: str | os.PathLike = RUNS_ROOT
) -> dict[str, Any]:
    """A linear model recovers ``w`` and ``b`` of ``y = w·x + b + noise``; an MLP fits a curve.

    Returns ``param_error`` (the largest relative error over ``w`` and ``b``), ``r2`` (linear
    model, held-out data), ``mlp_r2`` and ``linear_r2_on_nonlinear`` (the same curve with a line,
    for contrast), the run folder and the PNG.
    """
    device = str(resolve_device(device))
    parent = _parent_dir("regression", "linear-mlp", seed, runs_root)
    cfg = FitConfig(
        task="regression",
        epochs=300,
        batch_size=128,
        learning_rate=0.05,
        patience=20,
        seed=seed,
        device=device,
    )

    # 1. The linear model: no hidden layer, so its weights *are* the estimate of w and b.
    x, y = make_linear(1000, TRUE_WEIGHT, TRUE_BIAS, noise=0.1, seed=seed)
    x_test, y_test = make_linear(
        500, TRUE_WEIGHT, TRUE_BIAS, noise=0.1, seed=seed + _TEST_SEED_OFFSET
    )
    seed_everything(seed)
    linear = fit(
        mlp(len(TRUE_WEIGHT), (), 1), x, y, _with(cfg, run_dir=parent / "linear")
    ).model.cpu()
    weight = linear.output.weight.detach()[0]
    bias = float(linear.output.bias.detach()[0])
    true = torch.tensor([*TRUE_WEIGHT, TRUE_BIAS])
    learned = torch.cat([weight, torch.tensor([bias])])
    param_error = float(((learned - true).abs() / true.abs()).max())
    with torch.no_grad():
        r2 = r2_score(y_test, linear(x_test)[:, 0])

    # 2. A nonlinear target: a line cannot bend, two tanh hidden layers can.
    xw, yw = make_wave(1500, seed=seed)
    xw_test, yw_test = make_wave(500, seed=seed + _TEST_SEED_OFFSET)
    seed_everything(seed)
    net = fit(
        mlp(1, (64, 64), 1), xw, yw, _with(cfg, learning_rate=0.01, run_dir=parent / "mlp_wave")
    ).model.cpu()
    seed_everything(seed)
    line = fit(mlp(1, (), 1), xw, yw, _with(cfg, run_dir=parent / "linear_wave")).model.cpu()
    with torch.no_grad():
        mlp_r2 = r2_score(yw_test, net(xw_test)[:, 0])
        line_r2 = r2_score(yw_test, line(xw_test)[:, 0])

    plot = parent / "regression.png"
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    with torch.no_grad():
        left.scatter(y_test, linear(x_test)[:, 0], s=6, alpha=0.6)
        lim = [float(y_test.min()), float(y_test.max())]
        left.plot(lim, lim, "k--", lw=1, label="perfect prediction")
        left.set(
            xlabel="true y (held out)",
            ylabel="predicted y",
            title=f"Linear model: R² {r2:.4f}, worst parameter error {param_error:.2%}",
        )
        left.legend(loc="upper left")
        grid = torch.linspace(-3, 3, 300)[:, None]
        right.scatter(xw_test[:, 0], yw_test, s=6, alpha=0.4, color="gray", label="held-out data")
        right.plot(grid[:, 0], net(grid)[:, 0], lw=2, label=f"MLP 64-64 (R² {mlp_r2:.3f})")
        right.plot(grid[:, 0], line(grid)[:, 0], lw=2, label=f"linear (R² {line_r2:.3f})")
    right.set(xlabel="x", ylabel="y", title="y = sin(2x) + 0.3x² + noise")
    right.legend(loc="upper center")
    fig.tight_layout()
    fig.savefig(plot, dpi=100)
    plt.close(fig)

    result = {
        "task": "regression",
        "param_error": param_error,
        "r2": r2,
        "weight_true": list(TRUE_WEIGHT),
        "weight_learned": weight.tolist(),
        "bias_true": TRUE_BIAS,
        "bias_learned": bias,
        "mlp_r2": mlp_r2,
        "linear_r2_on_nonlinear": line_r2,
        "run_dir": str(parent),
        "plot": str(plot),
    }
    write_json(parent / "result.json", result)
    return result


def classification_baseline(
    *,
    seed: int = 0,
    device: str = "auto",
    datasets: str | tuple[str, ...] = tuple(TOY_DATASETS),
    runs_root: str | os.PathLike = RUNS_ROOT,
) -> dict[str, Any]:
    """An MLP classifies 2-D toy datasets; ``accuracy`` is the lowest held-out accuracy of them.

    ``datasets`` names one dataset (``"moons"``) or several (``("moons", "spirals")``).

    Each dataset gets its accuracy, confusion matrix (row = true class) and a panel of the
    decision-boundary PNG.
    """
    if isinstance(datasets, str):
        datasets = (datasets,)  # one name, not a sequence of letters
    datasets = tuple(datasets)
    unknown = [d for d in datasets if d not in TOY_DATASETS]
    if unknown or not datasets:
        raise ValueError(
            f"unknown dataset(s) {unknown}; choose one or more of {sorted(TOY_DATASETS)}"
        )
    if len(set(datasets)) != len(datasets):
        raise ValueError(f"datasets lists a dataset twice: {list(datasets)}")
    device = str(resolve_device(device))
    parent = _parent_dir("classification", "mlp", seed, runs_root)
    cfg = FitConfig(
        task="classification",
        epochs=300,
        batch_size=128,
        learning_rate=0.01,
        patience=30,
        min_delta=1e-4,
        seed=seed,
        device=device,
    )
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.5 * len(datasets), 4.5), squeeze=False)
    per_dataset: dict[str, Any] = {}
    for ax, name in zip(axes[0], datasets, strict=True):
        make = TOY_DATASETS[name]
        x, y = make(1500, seed=seed)
        x_test, y_test = make(1000, seed=seed + _TEST_SEED_OFFSET)
        seed_everything(seed)
        result = fit(mlp(2, (64, 64), 2), x, y, _with(cfg, run_dir=parent / name))
        model = result.model.cpu().eval()
        with torch.no_grad():
            pred = model(x_test).argmax(-1)
        acc = accuracy(y_test, pred)
        per_dataset[name] = {
            "accuracy": acc,
            "confusion_matrix": confusion_matrix(y_test, pred, 2).tolist(),
            "epochs": result.epochs_run,
            "run_dir": str(result.run_dir),
        }
        _decision_boundary(ax, model, x_test, y_test)
        ax.set_title(f"{name}: held-out accuracy {acc:.1%}")
    fig.tight_layout()
    plot = parent / "decision_boundary.png"
    fig.savefig(plot, dpi=100)
    plt.close(fig)
    out = {
        "task": "classification",
        "accuracy": min(d["accuracy"] for d in per_dataset.values()),
        "datasets": per_dataset,
        "run_dir": str(parent),
        "plot": str(plot),
    }
    write_json(parent / "result.json", out)
    return out


@torch.no_grad()
def _decision_boundary(ax: Any, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    low, high = x.min(0).values - 0.3, x.max(0).values + 0.3
    gx, gy = torch.meshgrid(
        torch.linspace(float(low[0]), float(high[0]), 200),
        torch.linspace(float(low[1]), float(high[1]), 200),
        indexing="xy",
    )
    prob = model(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).softmax(-1)[:, 1]
    ax.contourf(gx, gy, prob.reshape(gx.shape), levels=20, cmap="RdBu_r", alpha=0.6, vmin=0, vmax=1)
    ax.contour(gx, gy, prob.reshape(gx.shape), levels=[0.5], colors="k", linewidths=1.5)
    ax.scatter(x[:, 0], x[:, 1], c=y, cmap="RdBu_r", s=6, edgecolors="k", linewidths=0.2)
    ax.set(xticks=[], yticks=[])


def _with(cfg: FitConfig, **changes: Any) -> FitConfig:
    if "run_dir" in changes and changes["run_dir"] is not None:
        changes["run_dir"] = str(changes["run_dir"])
    return dataclasses.replace(cfg, **changes)
