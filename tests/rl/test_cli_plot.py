"""``rl plot`` over mixed folders: defaults, supervised runs, custom run folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rl.cli import main

DOG = "sandbox/DogTraining-v0"


def _write_run(run: Path, config: dict, tags: dict[str, list[float]]) -> Path:
    from torch.utils.tensorboard import SummaryWriter

    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(config))
    writer = SummaryWriter(str(run))
    for tag, values in tags.items():
        for i, value in enumerate(values):
            writer.add_scalar(tag, value, i * 100)
    writer.close()
    return run


def _episodes(final: float) -> dict[str, list[float]]:
    return {"charts/episodic_return": [0.0, final / 2, final]}


def test_a_run_left_at_the_env_defaults_is_labelled_by_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `rl train` with no --set writes no env_kwargs; the lesson's run named its scheme; the
    # run folder names no algorithm (--run-dir runs/lesson/coached).
    _write_run(tmp_path / "default", {"env_id": DOG, "env_kwargs": {}}, _episodes(1.0))
    _write_run(
        tmp_path / "lesson" / "treats",
        {"env_id": DOG, "env_kwargs": {"reward_scheme": "treats"}},
        _episodes(0.5),
    )
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "reward_scheme=coached: last logged return +1.000" in out
    assert "reward_scheme=treats: last logged return +0.500" in out
    assert "None" not in out


def test_a_folder_leaves_out_its_supervised_runs_a_named_one_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_run(tmp_path / "runs" / "dog", {"env_id": DOG}, _episodes(-0.0001))
    bc = _write_run(
        tmp_path / "runs" / "bc", {"env_id": DOG}, {"losses/train": [1.0, 0.5], "losses/val": [1.0]}
    )
    assert main(["plot", str(tmp_path / "runs"), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "last logged return +0.000" in out  # never "-0.000"
    assert "left out: 1 supervised run(s)" in out and str(bc) in out
    assert main(["plot", str(bc), "--out", str(tmp_path / "c.png")]) == 2
    assert "is a supervised run" in capsys.readouterr().err
    assert main(["plot", str(bc), "--out", str(tmp_path / "plots" / "new" / "c.png")]) == 2
    assert not (tmp_path / "plots").exists(), "a failed plot left the folders made for it"


def test_a_seed_that_stopped_early_counts_with_its_last_value() -> None:
    import numpy as np

    from rl.cli.plot_cmd import mean_and_spread

    early = (np.array([0.0, 100.0]), np.array([10.0, 500.0]))  # reached its target at 100
    late = (np.array([0.0, 100.0, 300.0]), np.array([10.0, 200.0, 480.0]))
    grid, mean, _ = mean_and_spread([early, late])
    assert grid[-1] == 300.0  # not cut at the early seed's last step
    assert mean[-1] == (500.0 + 480.0) / 2


def test_runs_of_different_envs_get_a_row_each_labelled_within_their_env(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CartPole's returns would flatten the dog's to a line, and every field the two configs
    do not share would end up in both labels."""
    many = {f"knob_{i}": i for i in range(40)}  # fields only CartPole's config has
    _write_run(tmp_path / "dog", {"env_id": DOG, "algo": "ppo"}, _episodes(1.0))
    _write_run(
        tmp_path / "cp", {"env_id": "sandbox/CartPole-v1", "algo": "ppo", **many}, _episodes(500)
    )
    out_png = tmp_path / "mixed.png"
    assert main(["plot", str(tmp_path), "--out", str(out_png)]) == 0
    out = capsys.readouterr().out
    assert "(2 runs in 2 groups, 2 envs)" in out
    assert f"{DOG}: ppo: last logged return +1.000" in out
    assert "sandbox/CartPole-v1: ppo: last logged return +500.000" in out
    assert "knob_" not in out
    import matplotlib.image

    height, width = matplotlib.image.imread(out_png).shape[:2]
    assert height > width / 2  # two rows of panels, not one


def test_a_run_without_env_id_gets_a_row_named_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write_run(tmp_path / "dog", {"env_id": DOG, "algo": "ppo"}, _episodes(1.0))
    (tmp_path / "mystery").mkdir()
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(str(tmp_path / "mystery")) as writer:  # events, no config.json
        writer.add_scalar("charts/episodic_return", 3.0, 0)
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "(no env_id in its config): mystery: last logged return +3.000" in out


def test_runs_of_one_seed_are_counted_as_runs_and_a_restart_is_not_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    config = {"env_id": DOG, "env_kwargs": {}, "algo": "ppo", "seed": 1}
    for name in ("a", "b"):
        _write_run(tmp_path / name, config, _episodes(1.0))
    # A resumed run: its events restart below the last step logged, as purge_step writes them.
    writer = SummaryWriter(str(tmp_path / "a"), purge_step=100)
    writer.add_scalar("charts/episodic_return", 0.75, 100)
    writer.close()
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    captured = capsys.readouterr()
    assert "ppo (2 runs, 1 seed)" in captured.out
    # TensorBoard's warning goes through logging (stderr outside pytest).
    assert "TensorFlow restart" not in captured.err + caplog.text


def test_a_run_saved_before_a_field_existed_groups_with_runs_of_its_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An old config.json has no target_confidence: it trained on the check's mean (0.5), so
    it is one group with a new run that sets 0.5, not a group labelled None."""
    old = {"env_id": DOG, "env_kwargs": {}, "algo": "ppo", "seed": 1}
    _write_run(tmp_path / "old", old, _episodes(1.0))
    _write_run(tmp_path / "new", {**old, "seed": 2, "target_confidence": 0.5}, _episodes(1.0))
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    out = capsys.readouterr().out
    assert "(2 runs in 1 group)" in out and "None" not in out


def test_a_scheme_of_your_own_is_labelled_as_a_mapping_and_many_labels_go_below(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``{"on_sofa": -0.5, "relief_outdoors": 1}`` read 'on_sofa, -0.5, relief_outdoors, 1'; six
    long labels covered the curves (they go below the axes now, inside the saved image)."""
    from PIL import Image

    mine = {"on_sofa": -0.5, "relief_outdoors": 1}
    _write_run(
        tmp_path / "mine", {"env_id": DOG, "env_kwargs": {"reward_scheme": mine}}, _episodes(1.0)
    )
    for scheme in ("treats", "scolding_only", "treats_and_scolding", "coached"):
        config = {"env_id": DOG, "env_kwargs": {"reward_scheme": scheme}, "total_timesteps": 1}
        _write_run(tmp_path / scheme, config, _episodes(0.5))
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    assert "reward_scheme={on_sofa: -0.5, relief_outdoors: 1}" in capsys.readouterr().out
    height = Image.open(tmp_path / "c.png").size[1]
    assert height > 4.4 * 110  # the figure's height, grown by the legend below it


def test_a_folder_of_links_to_runs_plots_them_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A comparison folder of symlinks to runs (one linked twice, and a link back up the tree)
    plots each run once; a plain walk saw no events there."""
    run = _write_run(tmp_path / "runs" / "a", {"env_id": DOG, "algo": "ppo"}, _episodes(1.0))
    compare = tmp_path / "compare"
    compare.mkdir()
    for name in ("first", "second"):
        (compare / name).symlink_to(run, target_is_directory=True)
    (compare / "loop").symlink_to(compare, target_is_directory=True)
    assert main(["plot", str(compare), "--out", str(tmp_path / "c.png")]) == 0
    assert "(1 run in 1 group)" in capsys.readouterr().out
    assert (
        main(["plot", str(tmp_path / "runs"), str(compare), "--out", str(tmp_path / "d.png")]) == 0
    )
    assert "(1 run in 1 group)" in capsys.readouterr().out  # the run and its links: once


def test_groups_are_ordered_by_value_numbers_as_numbers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, envs in enumerate((1, 11, 2)):  # folders cp0, cp1, cp2
        _write_run(
            tmp_path / f"cp{i}", {"env_id": DOG, "algo": "ppo", "num_envs": envs}, _episodes(1.0)
        )
    assert main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 0
    lines = [line.split(":")[0].strip() for line in capsys.readouterr().out.splitlines()[1:]]
    assert lines == ["num_envs=1", "num_envs=2", "num_envs=11"]
