"""``--param PATH=SPEC``: which training option a sweep varies, and over what.

SPEC is one of

* ``a,b,c`` — a list of values (categorical; the grid's points), each converted to the
  option's type exactly as ``--set`` would (``gan.l1_weight=1,8,64`` are floats);
  brackets group values that contain commas: ``optim.betas=[0.9,0.99],[0.5,0.999]``;
* ``int:LO:HI`` — every integer from LO to HI (inclusive);
* ``float:LO:HI`` — a uniform float range;
* ``log:LO:HI`` — a log-uniform float range (LO > 0), the usual choice for learning rates.

Everything is checked against :class:`~chromalab.training.config.TrainConfig` before any
training starts, so a typo or a value of the wrong type costs one line, not an hour.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

import optuna
import yaml

from chromalab.errors import ChromalabError
from chromalab.training.config import TrainConfig

Kind = Literal["choice", "int", "float", "log"]
RANGE_KINDS = ("int", "float", "log")
# Optuna stores categorical choices of these types as they are; anything else (a tuple, a
# list for model.kwargs) travels as its YAML text and is parsed again by TrainConfig.set.
_OPTUNA_SCALARS = (type(None), bool, int, float, str)


@dataclass(frozen=True)
class ParamSpec:
    """One swept option: its dotted path and its values or range."""

    path: str
    kind: Kind
    choices: tuple[Any, ...] = ()
    low: float | int | None = None
    high: float | int | None = None
    text: str = ""  # as the user wrote it, to recognise the same sweep when it resumes

    @property
    def is_range(self) -> bool:
        return self.kind in RANGE_KINDS

    @property
    def is_log(self) -> bool:
        return self.kind == "log"

    def suggest(self, trial: optuna.Trial) -> Any:
        """Ask Optuna's sampler for this trial's value."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.path, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.path, int(self.low), int(self.high))  # type: ignore[arg-type]
        return trial.suggest_float(self.path, float(self.low), float(self.high), log=self.is_log)  # type: ignore[arg-type]

    def grid_values(self) -> list[Any]:
        """The grid's points for this option; continuous ranges have none."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))  # type: ignore[arg-type]
        raise ChromalabError(
            f"--param {self.text}: the grid sampler needs a list of values or an int range, "
            f"not a continuous {self.kind} range (use --sampler random or tpe)"
        )


# --- the option's declared type -----------------------------------------------------------
def declared_type(config: TrainConfig, path: str) -> Any:
    """The type annotation of a dotted option, or ``Any`` inside free-form mappings.

    ``TrainConfig.set`` converts a value from the option's *current* value, which says
    nothing when the default is None (``gan.d_lr``); the annotation always knows.
    """
    node: Any = type(config)
    for part in path.split("."):
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            return Any  # inside model.kwargs / gan.d_kwargs: anything YAML can say
        hints = typing.get_type_hints(node)
        if part not in hints:
            raise ChromalabError(f"unknown option {path!r}")
        node = hints[part]
    return node


def _base_types(hint: Any) -> tuple[set[type], bool]:
    """(the non-None types an annotation allows, whether None is allowed)."""
    if hint is Any:
        return set(), True
    if typing.get_origin(hint) in (Union, types.UnionType):
        members = typing.get_args(hint)
    else:
        members = (hint,)
    allowed = {typing.get_origin(m) or m for m in members if m is not type(None)}
    return allowed, type(None) in members


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _matches(value: Any, allowed: set[type], optional: bool) -> bool:
    if value is None:
        return optional
    if not allowed:  # Any
        return True
    if bool in allowed and isinstance(value, bool):
        return True
    if int in allowed and isinstance(value, int) and not isinstance(value, bool):
        return True
    if float in allowed and _is_number(value):
        return True
    if str in allowed and isinstance(value, str):
        return True
    return tuple in allowed and isinstance(value, tuple)


def _type_name(allowed: set[type], optional: bool) -> str:
    names = " or ".join(sorted(t.__name__ for t in allowed)) or "any value"
    return f"{names} (or null)" if optional else names


# --- parsing --------------------------------------------------------------------------------
def split_values(text: str) -> list[str]:
    """Split ``a,b,[c,d]`` on the commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, "", []
    for char in text:
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "[{(":
            depth += 1
        elif char in "]})":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    parts.append("".join(current).strip())
    return parts


def _number(spec: str, text: str, integer: bool) -> float | int:
    try:
        value = float(text)
        if integer:
            if not value.is_integer():
                raise ValueError
            return int(value)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ChromalabError(f"--param {spec}: {text!r} is not {kind}") from None
    if not math.isfinite(value):
        raise ChromalabError(f"--param {spec}: {text!r} is not a finite number")
    return value


def _parse_range(spec: str, path: str, kind: str, body: str, hint: Any) -> ParamSpec:
    bounds = body.split(":")
    if len(bounds) != 2:
        raise ChromalabError(f"--param {spec}: expected {kind}:LO:HI")
    allowed, _ = _base_types(hint)
    if allowed and not (allowed & {int, float}):
        raise ChromalabError(
            f"--param {spec}: option {path!r} is {_type_name(allowed, False)}, not a number; "
            "give a list of values"
        )
    if kind in ("float", "log") and allowed and float not in allowed:
        raise ChromalabError(
            f"--param {spec}: option {path!r} is an integer; use int:LO:HI or a list of values"
        )
    low, high = (_number(spec, b.strip(), integer=kind == "int") for b in bounds)
    if low >= high:
        raise ChromalabError(f"--param {spec}: LO must be below HI")
    if kind == "log" and low <= 0:
        raise ChromalabError(f"--param {spec}: a log range needs LO > 0")
    return ParamSpec(path, kind, low=low, high=high, text=spec)  # type: ignore[arg-type]


def _parse_choices(spec: str, path: str, body: str, base: TrainConfig, hint: Any) -> ParamSpec:
    allowed, optional = _base_types(hint)
    choices: list[Any] = []
    for raw in split_values(body):
        if not raw:
            raise ChromalabError(f"--param {spec}: empty value in the list")
        probe = copy.deepcopy(base)
        probe.set(path, raw)  # raises ChromalabError when the text cannot be converted
        value = probe.get(path)
        if not _matches(value, allowed, optional):
            raise ChromalabError(
                f"--param {spec}: option {path!r} expects {_type_name(allowed, optional)}, "
                f"got {raw!r}"
            )
        if not isinstance(value, _OPTUNA_SCALARS):
            value = yaml.safe_dump(value, default_flow_style=True).strip()
        if value in choices:
            raise ChromalabError(f"--param {spec}: value {raw!r} is given twice")
        choices.append(value)
    return ParamSpec(path, "choice", choices=tuple(choices), text=spec)


def parse_param(spec: str, base: TrainConfig) -> ParamSpec:
    """Parse and check one ``PATH=SPEC``; raises ChromalabError with a one-line reason."""
    if "=" not in spec:
        raise ChromalabError(
            f"--param {spec!r}: expected PATH=VALUES, e.g. gan.l1_weight=1,8,64 or "
            "optim.lr=log:1e-5:1e-3"
        )
    path, body = (s.strip() for s in spec.split("=", 1))
    try:
        hint = declared_type(base, path)
    except ChromalabError:
        raise ChromalabError(f"--param {spec}: unknown option {path!r}") from None
    if dataclasses.is_dataclass(hint):
        raise ChromalabError(f"--param {spec}: {path!r} is a section, not an option")
    if path in ("out", "data.path"):
        raise ChromalabError(f"--param {spec}: {path!r} is set by the sweep itself")
    if not body:
        raise ChromalabError(f"--param {spec}: no values")
    kind, _, rest = body.partition(":")
    if kind in RANGE_KINDS and rest:
        return _parse_range(spec, path, kind, rest, hint)
    try:
        return _parse_choices(spec, path, body, base, hint)
    except ChromalabError as error:
        message = str(error)
        raise ChromalabError(message if message.startswith("--param") else f"--param {spec}: {message}") from None


def parse_params(specs: list[str], base: TrainConfig) -> list[ParamSpec]:
    """All ``--param`` options, each path at most once."""
    if not specs:
        raise ChromalabError("no --param given: name at least one option to sweep, e.g. --param optim.lr=log:1e-4:1e-2")
    params = [parse_param(spec, base) for spec in specs]
    seen: set[str] = set()
    for param in params:
        if param.path in seen:
            raise ChromalabError(f"--param {param.text}: {param.path!r} is given twice")
        seen.add(param.path)
    return params


def grid_search_space(params: list[ParamSpec]) -> dict[str, list[Any]]:
    return {param.path: param.grid_values() for param in params}


def grid_size(params: list[ParamSpec]) -> int:
    return math.prod(len(values) for values in grid_search_space(params).values())


def apply_params(config: TrainConfig, values: dict[str, Any]) -> TrainConfig:
    """A copy of ``config`` with the trial's values set (converted to each option's type)."""
    config = copy.deepcopy(config)
    for path, value in values.items():
        config.set(path, value)
    return config
