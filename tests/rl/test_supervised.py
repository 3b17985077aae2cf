"""The supervised core: metrics by hand, toy data, the fit loop, its runs and checkpoints, the CLI."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from rl.checkpoint import load_checkpoint
from rl.runs import read_json
from rl.supervised import (
    TOY_DATASETS,
    FitConfig,
    accuracy,
    confusion_matrix,
    describe_network,
    fit,
    make_linear,
    make_moons,
    make_wave,
    mlp,
    r2_score,
    train_val_split,
)


# -- metrics -------------------------------------------------------------------------------------
def test_r2_hand_worked() -> None:
    y = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert r2_score(y, y) == 1.0
    assert r2_score(y, torch.full((4,), 2.5)) == 0.0  # the mean: explains nothing
    # SS_res = 0.25 * 4 = 1, SS_tot = 5 → 0.8
    assert r2_score(y, y + torch.tensor([0.5, -0.5, 0.5, -0.5])) == pytest.approx(0.8)
    # Two columns: sums pool over both (variance weighted), SS_res 1, SS_tot 5 + 20.
    y2 = torch.stack([y, 2 * y], 1)
    pred = y2 + torch.tensor([[0.5, 0.0], [-0.5, 0.0], [0.5, 0.0], [-0.5, 0.0]])
    assert r2_score(y2, pred) == pytest.approx(1 - 1 / 25)
    with pytest.raises(ValueError, match="shapes differ"):
        r2_score(y, y[:3])


def test_accuracy_and_confusion_matrix_hand_worked() -> None:
    true = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0])
    assert accuracy(true, pred) == pytest.approx(4 / 6)
    assert confusion_matrix(true, pred, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    with pytest.raises(ValueError, match="empty"):
        accuracy(true[:0], pred[:0])


# -- anatomy and data ----------------------------------------------------------------------------
def test_mlp_layers_are_named_by_role() -> None:
    model = mlp(2, (8, 4), 3)
    assert [name for name, _ in model.named_children()] == [
        "hidden1", "act1", "hidden2", "act2", "output",
    ]  # fmt: skip
    rows = describe_network(model, 2)
    assert [r["width"] for r in rows] == [2, 8, 8, 4, 4, 3]
    assert sum(r["parameters"] for r in rows) == sum(p.numel() for p in model.parameters())
    assert [n for n, _ in mlp(3, (), 1).named_children()] == ["output"]  # a linear model
    with pytest.raises(ValueError, match="activation"):
        mlp(2, (4,), 1, activation="sigmoid")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(TOY_DATASETS))
def test_toy_datasets_are_seeded_and_balanced(name: str) -> None:
    x, y = TOY_DATASETS[name](200, seed=3)
    assert x.shape == (200, 2) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.bincount().tolist() == [100, 100]
    x2, _ = TOY_DATASETS[name](200, seed=3)
    torch.testing.assert_close(x, x2)
    assert not torch.equal(x, TOY_DATASETS[name](200, seed=4)[0])


def test_split_keeps_every_row_once() -> None:
    x = torch.arange(10.0)[:, None]
    x_tr, y_tr, x_va, y_va = train_val_split(x, x[:, 0], 0.3, seed=0)
    assert len(x_va) == 3 and len(x_tr) == 7
    assert sorted(torch.cat([x_tr, x_va])[:, 0].tolist()) == list(range(10))
    torch.testing.assert_close(x_tr[:, 0], y_tr)
    torch.testing.assert_close(x_va[:, 0], y_va)


def test_a_grouped_split_holds_out_whole_episodes() -> None:
    x = torch.arange(100.0)[:, None]
    groups = torch.arange(100) // 7  # 15 episodes: 14 of 7 steps, one of 2
    for seed in range(20):
        x_tr, _, x_va, _ = train_val_split(x, x[:, 0], 0.2, seed=seed, groups=groups)
        train, val = set(x_tr[:, 0].long().tolist()), set(x_va[:, 0].long().tolist())
        assert train | val == set(range(100)) and not train & val
        held = {step // 7 for step in val}
        assert all(set(range(7 * g, min(7 * g + 7, 100))) <= val for g in held)  # whole ones
        assert len(val) >= 20 and len(val) - 20 < 7  # the fewest that reach the share
    # One episode: its last steps are held out (the first ones teach).
    x_tr, _, x_va, _ = train_val_split(x, x[:, 0], 0.2, groups=torch.zeros(100, dtype=torch.long))
    assert x_va[:, 0].tolist() == list(range(80, 100))
    # One long episode and a short one: never the long one held out whole.
    for seed in range(10):
        for groups, fraction in (
            ((torch.arange(100) >= 99).long(), 0.2),
            (torch.arange(100) >= 5, 0.5),
        ):
            x_tr, _, x_va, _ = train_val_split(
                x, x[:, 0], fraction, seed=seed, groups=groups.long()
            )
            assert round(100 * fraction) <= len(x_va) <= round(150 * fraction), (seed, len(x_va))
    with pytest.raises(ValueError, match=r"groups must be \(100,\) integer ids"):
        train_val_split(x, x[:, 0], 0.2, groups=torch.zeros(99, dtype=torch.long))


# -- the fit loop --------------------------------------------------------------------------------
def test_linear_model_recovers_known_parameters() -> None:
    weight, bias = (2.0, -3.0, 0.5), 1.0
    x, y = make_linear(600, weight, bias, noise=0.05, seed=0)
    torch.manual_seed(0)
    cfg = FitConfig(epochs=150, batch_size=600, learning_rate=0.1, patience=0, device="cpu")
    result = fit(mlp(3, (), 1), x, y, cfg)
    learned = torch.cat([result.model.output.weight[0], result.model.output.bias]).detach()
    true = torch.tensor([*weight, bias])
    assert float(((learned - true).abs() / true.abs()).max()) < 0.02
    assert result.val_metrics["r2"] > 0.99


def test_mlp_fits_a_curve_a_line_cannot() -> None:
    x, y = make_wave(600, seed=0)
    cfg = FitConfig(epochs=150, batch_size=100, learning_rate=0.01, device="cpu")
    torch.manual_seed(0)
    curve = fit(mlp(1, (32, 32), 1), x, y, cfg).val_metrics["r2"]
    line = fit(mlp(1, (), 1), x, y, cfg).val_metrics["r2"]
    assert curve > 0.9 > 0.3 > line


def test_classification_beats_threshold_on_fixed_seed() -> None:
    x, y = make_moons(600, seed=0)
    x_test, y_test = make_moons(400, seed=1)
    torch.manual_seed(0)
    cfg = FitConfig(task="classification", epochs=80, batch_size=64, learning_rate=0.01)
    model = fit(mlp(2, (32, 32), 2), x, y, cfg).model.cpu()
    with torch.no_grad():
        assert accuracy(y_test, model(x_test).argmax(-1)) >= 0.95


def test_fit_logs_and_checkpoints(tmp_path: Path) -> None:
    x, y = make_moons(200, seed=0)
    torch.manual_seed(0)
    cfg = FitConfig(task="classification", epochs=5, patience=0, run_dir=str(tmp_path / "run"))
    result = fit(mlp(2, (8,), 2), x, y, cfg, checkpoint_extra={"algo": "test"})
    run = tmp_path / "run"
    assert result.run_dir == run
    assert list(run.glob("events.out.tfevents.*"))
    assert read_json(run / "config.json")["fit"]["task"] == "classification"
    evaluation = read_json(run / "eval.json")
    assert evaluation["best_epoch"] == result.best_epoch
    assert len(evaluation["confusion_matrix"]) == 2
    ckpt = load_checkpoint(run / "checkpoints" / "best.pt")
    assert ckpt["algo"] == "test" and ckpt["epoch"] == result.best_epoch
    for name, tensor in result.model.state_dict().items():
        torch.testing.assert_close(ckpt["model"][name], tensor)
    assert (run / "checkpoints" / "latest.pt").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run))
    events.Reload()
    assert {"losses/train", "losses/val", "metrics/val_accuracy"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("losses/val")] == [1, 2, 3, 4, 5]


def test_early_stopping_keeps_the_best_weights() -> None:
    # Pure noise: nothing to learn, so the validation loss soon stops improving.
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(300, 4, generator=generator), torch.randn(300, generator=generator)
    torch.manual_seed(0)
    cfg = FitConfig(epochs=500, learning_rate=0.05, patience=3)
    result = fit(mlp(4, (64,), 1), x, y, cfg)
    assert result.stopped_early
    assert result.epochs_run == result.best_epoch + 3 < 500
    best = min(h["val_loss"] for h in result.history)
    assert result.val_metrics["loss"] == pytest.approx(best)


def test_fit_is_deterministic() -> None:
    x, y = make_moons(200, seed=0)
    cfg = FitConfig(task="classification", epochs=3, patience=0)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        losses.append([h["train_loss"] for h in fit(mlp(2, (8,), 2), x, y, cfg).history])
    assert losses[0] == losses[1]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"task": "ranking"}, "task"),
        ({"task": "classification", "loss": "mse"}, "does not fit"),
        ({"epochs": 0}, "epochs"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"patience": -1}, "patience"),
        ({"learning_rate": math.inf}, "learning_rate must be a finite number"),
        ({"weight_decay": math.nan}, "weight_decay must be a finite number"),
        ({"min_delta": math.inf}, "min_delta must be a finite number"),
        ({"seed": -1}, "seed must be an integer >= 0"),  # as `rl ... --seed -1`
        ({"num_threads": 0}, "num_threads"),
    ],
)
def test_fit_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FitConfig(**kwargs)


def test_fit_config_rejects_wrong_types_and_takes_a_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"learning_rate must be a number, got '0\.01'"):
        FitConfig(learning_rate="0.01")  # type: ignore[arg-type]
    assert FitConfig(run_dir=tmp_path / "run").run_dir == str(tmp_path / "run")  # type: ignore[arg-type]


def test_fit_rejects_mismatched_data() -> None:
    x = torch.randn(10, 2)
    with pytest.raises(ValueError, match="rows"):
        fit(mlp(2, (), 1), x, torch.randn(9), FitConfig())
    with pytest.raises(ValueError, match="integer class labels"):
        fit(mlp(2, (), 2), x, torch.randn(10), FitConfig(task="classification"))
    with pytest.raises(ValueError, match="float targets"):
        fit(mlp(2, (), 1), x, torch.ones(10, dtype=torch.long), FitConfig())
    with pytest.raises(ValueError, match="both x_val and y_val"):
        fit(mlp(2, (), 1), x, torch.randn(10), FitConfig(), x_val=x)


def test_fit_rejects_non_finite_data_before_training() -> None:
    x, y = make_linear(50, (1.0,), 0.0, seed=0)
    bad_x, bad_y = x.clone(), y.clone()
    bad_x[3, 0], bad_y[7] = math.nan, math.inf
    with pytest.raises(ValueError, match=r"training data: x holds NaN or infinite values in 1 of"):
        fit(mlp(1, (), 1), bad_x, y, FitConfig(epochs=2))
    with pytest.raises(ValueError, match=r"training data: y holds NaN or infinite"):
        fit(mlp(1, (), 1), x, bad_y, FitConfig(epochs=2))
    with pytest.raises(ValueError, match=r"validation data \(x_val, y_val\): x holds NaN"):
        fit(mlp(1, (), 1), x, y, FitConfig(epochs=2), x_val=bad_x, y_val=y)


_X, _Y = make_linear(40, (1.0, -1.0), 0.0, seed=0)
_XC, _YC = make_moons(40, seed=0)


@pytest.mark.parametrize(
    ("model", "x", "y", "task", "error", "message"),
    [
        (mlp(2, (), 1), _X.double(), _Y, "regression", TypeError, "float64 but the model's"),
        (mlp(2, (), 1), _X.numpy(), _Y, "regression", TypeError, "x must be a torch.Tensor"),
        (mlp(2, (), 1), _X, _Y.numpy(), "regression", TypeError, "y must be a torch.Tensor"),
        (mlp(2, (), 2), _X, _Y, "regression", ValueError, "gives 2 output.* y has 1 target"),
        (mlp(2, (), 1), _X, torch.stack([_Y, _Y], 1), "regression", ValueError, "y has 2 target"),
        (mlp(3, (4,), 1), _X, _Y, "regression", ValueError, "reads 3 feature.*x has 2"),
        (mlp(2, (), 1), _X[:, 0], _Y, "regression", ValueError, r"x\[:, None\]"),
        (mlp(2, (), 2), _XC, _YC + 1, "classification", ValueError, r"lie in \[0, 1\].* 1 to 2"),
        (mlp(2, (), 2), _XC, _YC - 1, "classification", ValueError, r"from -1 to 0"),
        (mlp(2, (), 2), _XC, _YC.bool(), "classification", TypeError, "int64 class indices"),
        (mlp(2, (), 2), _XC, _YC.int(), "classification", TypeError, r"y\.long\(\)"),
        (mlp(2, (), 1), _XC, _YC, "classification", ValueError, "one output .logit. per class"),
    ],
)
def test_fit_rejects_data_the_model_cannot_take(
    model: torch.nn.Module, x: object, y: object, task: str, error: type, message: str
) -> None:
    before = copy.deepcopy(model.state_dict())
    with pytest.raises(error, match=message):
        fit(model, x, y, FitConfig(task=task, epochs=2))  # type: ignore[arg-type]
    for name, tensor in model.state_dict().items():  # refused before any training step
        torch.testing.assert_close(tensor, before[name])


def test_fit_checks_the_validation_set_against_the_model() -> None:
    with pytest.raises(ValueError, match=r"validation data \(x_val, y_val\): the model's first"):
        fit(
            mlp(2, (), 1),
            _X,
            _Y,
            FitConfig(epochs=1),
            x_val=torch.zeros(5, 3),
            y_val=torch.zeros(5),
        )
    with pytest.raises(ValueError, match=r"validation data .*lie in \[0, 1\]"):
        fit(
            mlp(2, (), 2), _XC, _YC, FitConfig(task="classification", epochs=1),
            x_val=_XC[:5], y_val=torch.full((5,), 2),
        )  # fmt: skip


def test_fit_reports_divergence() -> None:
    x, y = make_linear(100, (1.0,), 0.0, seed=0)
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        fit(mlp(1, (), 1), x, y * 1e30, FitConfig(learning_rate=1e30, epochs=20))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: make_linear(-5, (1.0,), 0.0), ValueError, "n .the number of rows. must be"),
        (lambda: make_linear(0, (1.0,), 0.0), ValueError, "n .the number of rows. must be"),
        (lambda: make_linear(10, (), 0.0), ValueError, "one finite number per feature"),
        (lambda: make_linear(10, "ab", 0.0), TypeError, "sequence of numbers"),
        (lambda: make_wave(-1), ValueError, "n .the number of rows."),
        (lambda: make_moons(-3), ValueError, "n .the number of rows."),
        (lambda: make_moons(2.5), ValueError, "integer >= 1, got 2.5"),
        (lambda: make_moons(10, noise=-1.0), ValueError, "noise"),
        (lambda: TOY_DATASETS["circles"](10, factor=1.5), ValueError, "factor"),
        (lambda: TOY_DATASETS["spirals"](10, turns=0.0), ValueError, "turns"),
        (lambda: r2_score(torch.zeros(0), torch.zeros(0)), ValueError, "empty set"),
        (
            lambda: confusion_matrix(torch.tensor([0, 3]), torch.tensor([0, 1]), 2),
            ValueError,
            r"y_true holds labels from 0 to 3, outside \[0, 1\]",
        ),
        (
            lambda: confusion_matrix(torch.tensor([0, 1]), torch.tensor([-1, 1]), 2),
            ValueError,
            "y_pred holds labels from -1",
        ),
        (lambda: confusion_matrix(torch.tensor([0]), torch.tensor([0]), 0), ValueError, ">= 1"),
        (
            lambda: confusion_matrix(torch.tensor([0.0, 1.0]), torch.tensor([0.7, 1.0]), 2),
            ValueError,
            "class labels must be integer tensors",
        ),
        (
            lambda: accuracy(torch.tensor([0, 1]), torch.tensor([0.7, 1.0])),
            ValueError,
            "class labels must be integer tensors",
        ),
        (lambda: mlp(2.5, (4,), 1), TypeError, "in_features must be an integer"),  # type: ignore[arg-type]
        (lambda: mlp(2, 16, 1), TypeError, "hidden_sizes must be a sequence"),  # type: ignore[arg-type]
        (lambda: describe_network(mlp(2, (4,), 1), 3), ValueError, "reads 2 feature"),
        (lambda: train_val_split(_X, _Y, 0.0), ValueError, "val_fraction"),
    ],
    ids=[
        "linear-negative-n", "linear-zero-n", "linear-no-weight", "linear-str-weight",
        "wave-negative-n", "moons-negative-n", "moons-float-n", "moons-negative-noise",
        "circles-factor", "spirals-turns", "r2-empty", "confusion-label-too-big",
        "confusion-negative-label", "confusion-no-classes", "confusion-float-labels",
        "accuracy-float-labels", "mlp-float-in", "mlp-int-hidden",
        "describe-wrong-in", "split-zero-fraction",
    ],
)  # fmt: skip
def test_data_metrics_and_networks_reject_bad_arguments(
    call: object, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        call()  # type: ignore[operator]


def test_classification_baseline_reads_one_name_as_one_dataset(tmp_path: Path) -> None:
    from rl.baselines import classification_baseline

    # Checked before any training: a str is one name, not a sequence of letters.
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['moon'\]"):
        classification_baseline(datasets="moon", runs_root=tmp_path)
    with pytest.raises(ValueError, match="twice"):
        classification_baseline(datasets=("moons", "moons"), runs_root=tmp_path)


# -- the CLI -------------------------------------------------------------------------------------
def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    from rl.cli import main

    assert main(["supervised", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_tensors_and_anatomy(capsys: pytest.CaptureFixture[str]) -> None:
    tensors = _cli_json(capsys, "tensors")
    assert tensors["one_hot"][1] == [0, 0, 1, 0, 0, 0] and tensors["round_trip_exact"]
    anatomy = _cli_json(capsys, "anatomy")
    assert anatomy["layers"][0]["layer"] == "input"
    assert anatomy["layers"][-1]["layer"] == "output"


def test_cli_rejects_bad_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rl.cli import main

    argv = ["supervised", "regression", "--device", "tpu", "--runs-dir", str(tmp_path)]
    assert main(argv) == 2
    assert "device" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # rejected before any work


def test_cli_rejects_a_bad_thread_count_before_making_a_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rl.cli import main

    monkeypatch.setenv("RL_NUM_THREADS", "100000")
    assert main(["supervised", "regression", "--runs-dir", str(tmp_path)]) == 2
    assert "RL_NUM_THREADS must be between 1 and" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_cli_tensors_says_which_std_is_which(capsys: pytest.CaptureFixture[str]) -> None:
    from rl.cli import main

    result = _cli_json(capsys, "tensors")
    heights = torch.tensor(result["heights_cm"])
    assert result["sample_std"] == pytest.approx(float(heights.std()))  # 19.36, n - 1
    assert result["population_std"] == pytest.approx(float(heights.std(correction=0)))  # 16.77
    # The running mean carries RunningMeanStd's pseudo-count (1e-4 samples at mean 0).
    pseudo = result["running_pseudo_count"]
    assert result["running_mean"] == pytest.approx(42.5 * 4 / (4 + pseudo), abs=1e-9)
    assert main(["supervised", "tensors"]) == 0
    text = capsys.readouterr().out
    assert "sample std 19.36" in text and "population std" in text and "pseudo-count" in text
    assert "42.4989" in text


@pytest.mark.parametrize(
    ("argv", "takes"),
    [
        (["anatomy", "--set", "epochs=5", "--dataset", "spirals", "--demos", "x.pt"], "--json"),
        (["tensors", "--seed", "3"], "--json"),
        (["regression", "--set", "epochs=5"], "--seed, --device, --runs-dir, --json"),
        (["classification", "--demos", "x.pt"], "--dataset"),
        (["transfer", "--demos", "x.pt"], "--set"),
    ],
)
def test_cli_rejects_options_a_task_does_not_take(
    argv: list[str], takes: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from rl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["supervised", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"not apply to `rl supervised {argv[0]}`, which takes" in err and takes in err


def test_cli_help_is_per_task(capsys: pytest.CaptureFixture[str]) -> None:
    from rl.cli import main

    def help_of(task: str) -> str:
        with pytest.raises(SystemExit):
            main(["supervised", task, "--help"])
        return capsys.readouterr().out

    anatomy, bc, pretrain, transfer = (
        help_of(t) for t in ("anatomy", "bc", "pretrain", "transfer")
    )
    assert "--seed" not in anatomy and "--set" not in anatomy
    assert "(default: 1)" in bc and "--demos" in bc and "num_expert_steps (default 2000)" in bc
    assert "comma-separated (--set hidden_sizes=32,32)" in bc
    assert "pretrain_learning_rate" in pretrain and "source_timesteps" not in pretrain
    assert "source_timesteps" in transfer and "pretrain_learning_rate" not in transfer
    assert "--demos" not in transfer


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["pretrain", "--set", "pretrain_learning_rate=-1"], "pretrain_learning_rate must be"),
        (["transfer", "--set", "pretrain_epochs=3"], "transfer does not use it"),
        (["bc", "--set", "hidden_sizes=[]"], "one or more layer widths >= 1"),
        (["bc", "--expert-steps", "-1"], "--expert-steps must be >= 0"),
        (
            ["pretrain", "--set", 'ppo_overrides={"norm_obs": true}'],
            "leave norm_obs off in ppo_overrides",
        ),
        # Values the env refuses, found before the folder is made (not after training).
        (["bc", "--set", 'eval_env_kwargs={"layout": "nope"}'], "eval_env_kwargs: sandbox/Dog"),
        (["transfer", "--set", 'source_env_kwargs={"layout": "x"}'], "source_env_kwargs: sandbox"),
        (["pretrain", "--set", 'target_env_kwargs={"layout": "x"}'], "target_env_kwargs: sandbox"),
        (["pretrain", "--set", "unlabelled_steps=1"], "unlabelled_steps must be an integer >= 2"),
        (["bc", "--set", "run_dir="], "run_dir is empty"),
        (["bc", "--expert-steps", "9", "--set", "num_expert_steps=5"], "set the same thing"),
        (["bc", "--demos", "a.pt", "--set", "demos=b.pt"], "--demos and --set demos set the"),
    ],
)
def test_cli_rejects_bad_settings_before_any_work(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rl.cli import main

    assert main(["supervised", *argv, "--runs-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_cli_regression_and_classification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reg = _cli_json(capsys, "regression", "--runs-dir", str(tmp_path))
    assert reg["param_error"] < 0.02 and reg["r2"] > 0.99 and reg["mlp_r2"] > 0.95
    assert Path(reg["plot"]).is_file()
    cls = _cli_json(capsys, "classification", "--runs-dir", str(tmp_path))
    assert cls["accuracy"] >= 0.95
    assert set(cls["datasets"]) == {"moons", "circles", "spirals"}
    assert Path(cls["plot"]).is_file() and math.isfinite(cls["accuracy"])


def test_cli_a_fit_that_diverges_is_one_line_naming_the_setting_to_lower(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from rl.cli import main

    monkeypatch.chdir(tmp_path)
    argv = ["supervised", "bc", "--expert-steps", "200", "--set", "eval_episodes=0"]
    argv += ["--set", "learning_rate=1e38", "--set", "write_run=false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "fit diverged" in err and "lower learning_rate" in err and "Traceback" not in err
    assert not any(tmp_path.iterdir()), "the runs/ folder checked before the fit was left behind"


def test_cli_bc_refuses_a_folder_that_holds_a_run_and_keeps_json_clean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A second run into one folder would mix its curves and overwrite the first's results;
    progress bars go to stderr, so --json's stdout stays one JSON document."""
    from rl.cli import main

    folder = tmp_path / "bc"
    argv = ["supervised", "bc", "--expert-steps", "200", "--set", "eval_episodes=0"]
    argv += ["--set", "epochs=2", "--set", f"run_dir={folder}", "--set", "progress=true", "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["run_dir"] == str(folder)
    assert main(argv) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*argv[:-5], "--set", "write_run=false", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_dir"] is None  # null, not "None"


def test_a_second_fit_into_a_run_folder_is_refused_without_offering_a_resume(
    tmp_path: Path,
) -> None:
    x, y = torch.randn(40, 2), torch.randn(40)
    cfg = FitConfig(epochs=2, run_dir=str(tmp_path / "run"))
    fit(mlp(2, (), 1), x, y, cfg)
    with pytest.raises(ValueError, match=r"already holds a run.*do not resume") as info:
        fit(mlp(2, (), 1), x, y, cfg)
    assert "resume=" not in str(info.value)
