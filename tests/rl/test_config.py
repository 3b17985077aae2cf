"""Typed config overrides and JSON round trips."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from agents import a2c, dqn, ppo
from rl.config import (
    config_from_dict,
    config_to_dict,
    is_int,
    parse_int,
    parse_overrides,
    replace_config,
    require_finite,
    resume_config,
)


@dataclasses.dataclass(frozen=True)
class Example:
    learning_rate: float = 3e-4
    num_envs: int = 8
    anneal_lr: bool = True
    env_id: str = "sandbox/CartPole-v1"
    target_kl: float | None = None
    hidden_sizes: tuple[int, ...] = (64, 64)
    env_kwargs: dict = dataclasses.field(default_factory=dict)


def test_overrides_are_converted_by_type() -> None:
    cfg = replace_config(
        Example(),
        parse_overrides(
            [
                "learning_rate=1e-3",
                "num_envs=1_024",
                "anneal_lr=false",
                "target_kl=0.02",
                "hidden_sizes=32,32,16",
                'env_kwargs={"reward_scheme": "treats"}',
            ]
        ),
    )
    assert cfg.learning_rate == 1e-3
    assert cfg.num_envs == 1024
    assert cfg.anneal_lr is False
    assert cfg.target_kl == 0.02
    assert cfg.hidden_sizes == (32, 32, 16)
    assert cfg.env_kwargs == {"reward_scheme": "treats"}
    assert replace_config(cfg, {"target_kl": "none"}).target_kl is None


@pytest.mark.parametrize(
    ("text", "sizes"),
    [("64,64", (64, 64)), ("[64, 64]", (64, 64)), ("(32,32)", (32, 32)), ("[]", ()), ("", ())],
)
def test_a_list_may_be_written_with_brackets(text: str, sizes: tuple[int, ...]) -> None:
    assert replace_config(Example(), {"hidden_sizes": text}).hidden_sizes == sizes


@pytest.mark.parametrize(
    ("item", "match"),
    [
        ("learning_rate", "KEY=VALUE"),
        ("=3", "KEY=VALUE"),
    ],
)
def test_malformed_set(item: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_overrides([item])


def test_a_key_set_twice_is_refused() -> None:
    with pytest.raises(ValueError, match=r"--set reward_scheme is given twice \('treats', then "):
        parse_overrides(["reward_scheme=treats", "reward-scheme=coached"])


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"lerning_rate": "1"}, "no field 'lerning_rate'.*learning_rate"),
        ({"num_envs": "2.5"}, "num_envs must be an integer"),
        ({"num_envs": "many"}, "num_envs must be an integer"),
        ({"anneal_lr": "maybe"}, "anneal_lr must be true or false"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"env_kwargs": "[1]"}, "JSON object"),
        (
            {"hidden_sizes": "32;32"},
            r"got '32;32'; a list is written comma-separated \(e.g\. hidden",
        ),
    ],
)
def test_bad_overrides_say_what_is_expected(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        replace_config(Example(), overrides)


def test_json_round_trip() -> None:
    cfg = Example(hidden_sizes=(8,), target_kl=0.1, env_kwargs={"layout": "random"})
    assert config_from_dict(Example, config_to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="no field"):
        config_from_dict(Example, {"bogus": 1})


@pytest.mark.parametrize(
    ("text", "number"),
    [("300000", 300_000), ("300_000", 300_000), ("3e5", 300_000), (" 7 ", 7), ("2.0", 2),
     ("9007199254740993", 2**53 + 1), ("-4", -4)],
)  # fmt: skip
def test_integers_are_read_as_people_write_them_and_digits_exactly(text: str, number: int) -> None:
    assert parse_int(text, "n") == number  # 2**53 + 1 through a float would read 2**53


def test_an_integer_beyond_int64_is_refused_when_read() -> None:
    assert parse_int(str(2**63 - 1), "n") == 2**63 - 1
    for text in (str(2**63), "1e30", "-1e30"):
        with pytest.raises(ValueError, match=r"n must be an integer below 2\*\*63"):
            parse_int(text, "n")


@pytest.mark.parametrize("text", ["2.5", "many", "", "inf", "nan", "1e400", "0x10"])
def test_a_non_integer_is_refused_by_name(text: str) -> None:
    with pytest.raises(ValueError, match="steps must be an integer"):
        parse_int(text, "steps")


def test_is_int_refuses_bools_and_floats_and_takes_numpy_integers_only_when_asked() -> None:
    import numpy as np

    assert is_int(3) and is_int(3, 3) and not is_int(3, 4) and is_int(-1)
    assert not is_int(True) and not is_int(3.0) and not is_int("3")
    assert not is_int(np.int64(3)) and is_int(np.int64(3), 1, numpy=True)
    assert not is_int(np.bool_(True), numpy=True)


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_layer_widths_must_be_integers_from_python_too(algo: str) -> None:
    import importlib

    config = importlib.import_module(f"agents.{algo}").default_config("sandbox/CartPole-v1")
    with pytest.raises(ValueError, match=r"hidden_sizes must be integer widths >= 1, got \(64.0,"):
        dataclasses.replace(config, hidden_sizes=(64.0, 64))


def test_require_finite_says_the_rule_and_what_none_means() -> None:
    require_finite("lr", 3e-4, "> 0")
    require_finite("coef", 0, ">= 0")
    require_finite("kl", None, "> 0", none_means="for no early stop")
    for value, bound in ((0.0, "> 0"), (-1e-9, ">= 0"), (float("nan"), ""), (float("inf"), "")):
        with pytest.raises(
            ValueError, match=rf"x must be a finite number{' ' + bound if bound else ''}, got"
        ):
            require_finite("x", value, bound)
    for value in (True, "0.1", None):
        with pytest.raises(ValueError, match="x must be a finite number"):
            require_finite("x", value)
    with pytest.raises(
        ValueError, match=r"kl must be a finite number > 0, or None for no early stop; got -1"
    ):
        require_finite("kl", -1, "> 0", none_means="for no early stop")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"anneal_lr": "false"}, r"anneal_lr must be True or False, got 'false'"),
        ({"progress": 1}, r"progress must be True or False, got 1"),
        ({"hidden_sizes": 64}, r"hidden_sizes must be a tuple or a list, got 64"),
        ({"env_kwargs": "x"}, r"env_kwargs must be a dict, got 'x'"),
        ({"env_id": 5}, r"env_id must be a string, got 5 \(a int\)"),
        ({"num_threads": "2"}, r"num_threads must be an integer, got '2' \(a str\)"),
        ({"seed": 1.5}, r"seed must be an integer >= 0, got 1.5"),
        ({"env_kwargs": {"f": print}}, r"env_kwargs\['f'\] must hold JSON values .*function"),
        ({"env_kwargs": {1: 2}}, r"env_kwargs's keys must be strings, got 1"),
        (
            {"learning_rate": "3e-4"},
            r"learning_rate must be a number, got '3e-4' \(a str\)",
        ),
    ],
)
def test_configs_refuse_values_their_fields_would_misread(
    changes: dict[str, Any], message: str
) -> None:
    for module in (ppo, a2c, dqn):
        with pytest.raises(ValueError, match=message):
            dataclasses.replace(module.Config(), **changes)


def test_optional_fields_are_checked_when_they_hold_a_value() -> None:
    from agents import multiseed

    cfg = multiseed.MultiSeedConfig(ppo=ppo.Config(), seeds=(0, 1), learning_rates=[1e-3, 2e-3])
    assert cfg.learning_rates == (1e-3, 2e-3)
    with pytest.raises(ValueError, match=r"learning_rates must be a tuple or a list, got 0\.001"):
        multiseed.MultiSeedConfig(ppo=ppo.Config(), seeds=(0, 1), learning_rates=1e-3)


def test_values_from_python_are_stored_as_config_json_gives_them_back(tmp_path) -> None:
    # A path for a string, numpy scalars (a sweep's values) and a tuple inside env_kwargs:
    # config.json could not write the first two, and a resume read the tuple back as a list.
    cfg = ppo.Config(
        run_dir=tmp_path / "run",  # type: ignore[arg-type]
        seed=np.int64(3),  # type: ignore[arg-type]
        learning_rate=np.float32(0.5),  # type: ignore[arg-type]
        env_kwargs={"length": np.int64(8), "bonus": (1.0, np.float64(2.0)), "on": np.bool_(1)},
    )
    assert cfg.run_dir == str(tmp_path / "run") and type(cfg.seed) is int
    assert ppo.Config(device=torch.device("cpu")).device == "cpu"  # what resolve_device takes
    assert type(cfg.learning_rate) is float and cfg.learning_rate == 0.5
    assert cfg.env_kwargs == {"length": 8, "bonus": [1.0, 2.0], "on": True}
    assert config_from_dict(ppo.Config, config_to_dict(cfg)) == cfg
    with pytest.raises(
        ValueError, match=r"learning_rates must be a tuple of numbers, got \('1e-3'"
    ):
        from agents import multiseed

        multiseed.MultiSeedConfig(ppo=ppo.Config(), seeds=(0,), learning_rates=("1e-3",))


def test_a_list_for_a_tuple_field_is_stored_as_the_tuple_a_resume_reads_back() -> None:
    cfg = ppo.Config(hidden_sizes=[16, 16], anneal_lr=np.bool_(False))  # type: ignore[arg-type]
    assert cfg.hidden_sizes == (16, 16) and cfg.anneal_lr is False
    saved = config_to_dict(cfg)
    assert resume_config(cfg, saved, ppo.RESUMABLE_FIELDS) == cfg
