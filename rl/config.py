"""Typed configs: frozen dataclasses, ``--set key=value`` overrides, JSON round trips."""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
import json
import math
import numbers
import os
import textwrap
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np

C = TypeVar("C")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["lr=3e-4", "gamma=0.9"]`` → ``{"lr": "3e-4", "gamma": "0.9"}``."""
    overrides: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ValueError(
                f"--set expects KEY=VALUE (e.g. --set learning_rate=3e-4), got {item!r}"
            )
        if key in overrides:  # the last would win silently: one of the two is a slip
            raise ValueError(
                f"--set {key} is given twice ({overrides[key]!r}, then {value.strip()!r}); "
                "give it once"
            )
        overrides[key] = value.strip()
    return overrides


def is_int(value: Any, minimum: int | None = None, *, numpy: bool = False) -> bool:
    """Whether ``value`` is an integer at least ``minimum``: the test behind every "must be an
    integer >= N" error. ``True`` is not an integer here, nor ``3.0``; numpy's integers are
    with ``numpy=True`` (an env argument may be one; a config saved as JSON may not)."""
    kinds = numbers.Integral if numpy else int
    if isinstance(value, bool) or not isinstance(value, kinds):
        return False
    return minimum is None or value >= minimum


def require_int(name: str, value: Any, minimum: int) -> None:
    """A ValueError ``"NAME must be an integer >= MINIMUM, got VALUE"`` unless :func:`is_int`."""
    if not is_int(value, minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


MAX_INT = 2**63 - 1  # the largest integer torch and numpy take (int64)


def require_finite(
    name: str, value: Any, bound: str = "", *, none_means: str | None = None
) -> None:
    """A ValueError unless ``value`` is a finite number meeting ``bound`` (``"> 0"``,
    ``">= 0"`` or ``""``): ``"NAME must be a finite number > 0, got VALUE"``. With
    ``none_means``, ``None`` is allowed too and the message says what it means."""
    if value is None and none_means is not None:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and bound:
        ok = value > 0 if bound == "> 0" else value >= 0
    if not ok:
        alternative = f", or None {none_means};" if none_means is not None else ","
        rule = f" {bound}" if bound else ""
        got = (
            f"{value}"
            if isinstance(value, (int, float))
            else f"{value!r} (a {type(value).__name__})"
        )
        raise ValueError(f"{name} must be a finite number{rule}{alternative} got {got}")


def parse_int(text: Any, name: str) -> int:
    """An integer written as ``300000``, ``300_000`` or ``3e5`` (a ValueError naming ``name``
    otherwise): how ``--set`` and the CLI's whole-number flags read one. Digits are read exactly;
    only an exponent goes through a float. Beyond int64 (``1e30``) is an error here rather than
    an overflow deep inside torch."""
    cleaned = str(text).strip().replace("_", "")
    try:
        number = int(cleaned)
    except ValueError:
        try:
            value = float(cleaned)
        except ValueError:
            raise ValueError(f"{name} must be an integer, got {text!r}") from None
        if not value.is_integer():
            raise ValueError(f"{name} must be an integer, got {text!r}") from None
        number = int(value)
    if abs(number) > MAX_INT:
        raise ValueError(f"{name} must be an integer below 2**63, got {text!r}")
    return number


def _convert(value: Any, annotation: Any, name: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and (
            value is None or (isinstance(value, str) and value.lower() in {"none", "null"})
        ):
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, name)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0] if errors else f"{name}: cannot convert {value!r}")
    if origin is typing.Literal:
        for arg in args:
            if str(arg) == str(value):
                return arg
        raise ValueError(f"{name} must be one of {list(args)}, got {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if isinstance(value, int):
            return value
        return parse_int(value, name)
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    if annotation is str:
        return str(value)
    if origin in (tuple, list):
        if isinstance(value, (list, tuple)):
            items = list(value)
        else:
            # "64,64", also written "[64, 64]" or "(64, 64)"; "" or "[]" is empty.
            text = str(value).strip()
            if text[:1] + text[-1:] in ("[]", "()"):
                text = text[1:-1]
            items = [v.strip() for v in text.split(",") if v.strip()]
        inner = args[0] if args else str
        try:
            converted = [_convert(v, inner, name) for v in items]
        except ValueError as exc:
            example = f" (e.g. {name}=32,32)" if inner is int else ""
            raise ValueError(f"{exc}; a list is written comma-separated{example}") from None
        return tuple(converted) if origin is tuple else converted
    if origin is dict or annotation is dict:
        if isinstance(value, dict):
            return value
        try:
            parsed = json.loads(value)
        except (TypeError, json.JSONDecodeError):
            raise ValueError(f"{name} must be a JSON object, got {value!r}") from None
        if not isinstance(parsed, dict):
            raise ValueError(f"{name} must be a JSON object, got {value!r}")
        return parsed
    return value


def field_types(cls: type) -> dict[str, Any]:
    return dict(_field_types(cls))


@functools.cache
def _field_types(cls: type) -> tuple[tuple[str, Any], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def check_field_types(cfg: Any) -> None:
    """For a frozen config's ``__post_init__``: refuse values that its fields would misread or
    could not save, and store the others in the form a resume reads back from config.json.

    * ``str``: a string; a path (``pathlib.Path``) or a ``torch.device`` is stored as its string;
    * ``int``: an integer (not ``True``, not ``3.0``); ``float``: a number (not a bool or a
      string); numpy scalars are stored as Python numbers (JSON cannot write them);
    * ``bool``: ``True`` or ``False`` (``"false"`` is truthy, and a resume would read False);
    * ``tuple[...]``: a tuple or a list (stored as a tuple), each item as above;
    * ``dict``: a mapping of JSON values, stored as JSON would give it back (tuples as lists),
      so that a resume compares it equal;

    and the same for ``X | None`` fields that do not hold ``None``. Ranges are left to each
    config's own checks. Strings from ``--set`` or JSON go through :func:`replace_config` /
    :func:`config_from_dict`, which convert them first.
    """
    for name, annotation in _field_types(type(cfg)):
        value = getattr(cfg, name)
        origin = typing.get_origin(annotation)
        if origin in (typing.Union, types.UnionType):  # X | None: None, or as for X
            if value is None:
                continue
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(inner) != 1:
                continue
            annotation = inner[0]
            origin = typing.get_origin(annotation)
        if origin is tuple:
            if not isinstance(value, (tuple, list)):
                raise ValueError(f"{name} must be a tuple or a list, got {value!r}")
            item = (typing.get_args(annotation) or (Any,))[0]
            try:
                value = tuple(_checked_value(v, item, name) for v in value)
            except ValueError:
                kind = {int: "integers", float: "numbers", str: "strings"}.get(item, "values")
                raise ValueError(f"{name} must be a tuple of {kind}, got {value!r}") from None
        elif origin is dict or annotation is dict:
            if not isinstance(value, Mapping):
                raise ValueError(f"{name} must be a dict, got {value!r}")
            value = _json_value(value, name)
        else:
            value = _checked_value(value, annotation, name)
        object.__setattr__(cfg, name, value)


def _checked_value(value: Any, annotation: Any, name: str) -> Any:
    """One value of a :func:`check_field_types` field: as stored, or a ValueError."""
    if annotation is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"{name} must be True or False, got {value!r}")
        return bool(value)
    if annotation is int:
        if isinstance(value, (float, bool, np.bool_)):
            return value  # 2.5, 1e6 or True: the config's own check says which integers it takes
        if not is_int(value, numpy=True):
            raise ValueError(f"{name} must be an integer, got {value!r} (a {type(value).__name__})")
        return int(value)
    if annotation is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be a number, got {value!r} (a {type(value).__name__})")
        return value.item() if isinstance(value, np.generic) else value
    if annotation is str:
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        if type(value).__name__ == "device" and type(value).__module__ == "torch":
            return str(value)  # a torch.device for a device field (no torch import here)
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r} (a {type(value).__name__})")
        return value
    return value


def _json_value(value: Any, where: str) -> Any:
    """``value`` as a JSON round trip gives it back, or a ValueError naming the part JSON
    cannot hold (config.json could not be written, and a resume would compare it unequal)."""
    if isinstance(value, Mapping):
        plain = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}'s keys must be strings, got {key!r}")
            plain[key] = _json_value(item, f"{where}[{key!r}]")
        if type(value) is not dict and isinstance(value, dict):
            try:
                return type(value)(plain)  # a marker type (agents.bc.DogDefault) stays
            except TypeError:  # a dict type built otherwise (defaultdict)
                pass
        return plain
    if isinstance(value, (list, tuple)):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, np.generic) and isinstance(value.item(), (bool, int, float, str)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(
        f"{where} must hold JSON values (numbers, strings, true/false, null, lists and dicts), "
        f"got {type(value).__name__} {value!r:.80}"
    )


def replace_config(cfg: C, overrides: dict[str, Any]) -> C:
    """A copy of the frozen dataclass ``cfg`` with ``overrides`` (strings are converted).

    Raises:
        ValueError: an unknown field (listing the known ones) or a value of the wrong type.
    """
    types_by_name = field_types(type(cfg))
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in types_by_name:
            known = ", ".join(sorted(types_by_name))
            raise ValueError(f"{type(cfg).__name__} has no field {key!r}; known fields: {known}")
        changes[key] = _convert(value, types_by_name[key], key)
    return dataclasses.replace(cfg, **changes)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a dataclass config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(cls: type[C], data: dict[str, Any]) -> C:
    """Rebuild ``cls`` from :func:`config_to_dict`'s output; unknown keys are an error.

    A config saved before a field existed lacks it: the class's ``FIELDS_ADDED`` (field →
    value) gives the value that run trained with, where today's default would change it."""
    data = {**getattr(cls, "FIELDS_ADDED", {}), **data}
    types_by_name = field_types(cls)
    unknown = set(data) - set(types_by_name)
    if unknown:
        raise ValueError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return cls(**{k: _convert(v, types_by_name[k], k) for k, v in data.items()})


def resume_config(cfg: C, saved: dict[str, Any], resumable: tuple[str, ...]) -> C:
    """The checkpoint's config ``saved`` with ``cfg``'s ``resumable`` fields; other changes raise.

    Raises:
        ValueError: ``cfg`` differs from ``saved`` in a field outside ``resumable``.
    """
    saved_cfg = config_from_dict(type(cfg), saved)
    changed = [
        name
        for name in config_to_dict(cfg)
        if name not in resumable and getattr(cfg, name) != getattr(saved_cfg, name)
    ]
    if changed:
        # run_dir is resumable only as the folder being resumed (the run continues in it).
        free = [name for name in resumable if name != "run_dir"]
        raise ValueError(
            f"cannot resume with a different {', '.join(changed)} than the checkpoint; only "
            f"{', '.join(free)} may change"
        )
    return replace_config(saved_cfg, {k: getattr(cfg, k) for k in resumable})


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a dataclass, for ``--help`` texts.

    Reads the class source (attribute docstrings are not kept at runtime); fields without one,
    or a class whose source is unavailable, map to ``""``.
    """
    docs = {f.name: "" for f in dataclasses.fields(cls)}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError, SyntaxError):
        return docs
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    for node, following in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[node.target.id] = " ".join(following.value.value.split())
    return docs
