"""Typed config overrides and JSON round trips."""

from __future__ import annotations

import dataclasses

import pytest

from rl.config import config_from_dict, config_to_dict, parse_overrides, replace_config


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


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"lerning_rate": "1"}, "no field 'lerning_rate'.*learning_rate"),
        ({"num_envs": "2.5"}, "num_envs must be an integer"),
        ({"num_envs": "many"}, "num_envs must be an integer"),
        ({"anneal_lr": "maybe"}, "anneal_lr must be true or false"),
        ({"learning_rate": "fast"}, "learning_rate must be a number"),
        ({"env_kwargs": "[1]"}, "JSON object"),
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
