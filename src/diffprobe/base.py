"""The names every layer shares that need neither torch nor numpy: the error a user can fix, the
precision choices and how settings saved before ``precision`` existed read, the schema every settings class is
built on (``Settings``: a pydantic dataclass's checks, errors that name the setting) and the type aliases the
settings share (``TupleOf``, ``PairOf``, ``Fraction``, ...). The settings themselves are ``diffprobe.config``'s.
``utils`` re-exports the first three; the CLI and ``diffprobe.config`` import them from here, so that building
the parser (``diffprobe --help``) does not load torch."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import ConfigDict, Field, Strict, ValidationError, model_validator


class DiffprobeError(Exception):
    """An error a user can fix: the message names the file and the fix."""


PRECISIONS = ("auto", "fp32", "bf16")
Precision = Literal[PRECISIONS]


def legacy_precision(d: dict) -> dict:
    """Settings saved before ``precision`` existed carry ``bf16: true/false``: true was the only default
    then (not a choice), so it reads as ``auto``; false was an explicit opt-out and stays ``fp32``."""
    if "bf16" not in d:
        return d
    d = dict(d)
    flag = d.pop("bf16")
    d.setdefault("precision", "auto" if flag else "fp32")
    return d


# ---- the settings' schema ----

T = TypeVar("T")
# Strict settings take a tuple only; a tuple setting also reads the list a JSON or TOML file holds (its items
# as strictly as ever).
TupleOf = Annotated[tuple[T, ...], Strict(False)]
NonEmptyTupleOf = Annotated[tuple[T, ...], Strict(False), Field(min_length=1)]
PairOf = Annotated[tuple[T, T], Strict(False)]
Fraction = Annotated[float, Field(ge=0, lt=1)]  # a share that can be 0 but never all: dropout, label smoothing, ...


def invalid_settings(where: str, error: ValidationError, known: Iterable[str]) -> str:
    """pydantic's ``error`` as a user reads it: the unknown keys and the known ones, or the first bad setting
    (``where.key[index]``), what it should be and what it got."""
    errors = error.errors()
    unknown = sorted(str(e["loc"][0]) for e in errors
                     if e["type"] in ("extra_forbidden", "unexpected_keyword_argument"))
    if unknown:
        return f"unknown setting(s) {unknown} in {where}; known: {sorted(known)}"
    e = errors[0]
    key = "".join(f".{x}" for x in e["loc"][:1]) + "".join(f"[{x}]" for x in e["loc"][1:])
    return f"{where}{key}: {e['msg']}, got {e['input']!r}"


class Settings:
    """Base of every settings class, each a ``pydantic.dataclasses.dataclass`` (so ``dataclasses.fields``,
    ``asdict`` and ``replace`` work on it) with its bounds declared at the field. Unknown keys are refused, and
    values are taken as Python, JSON and TOML write them: strict, so True is no 1 and "3" no 3 (a float setting
    takes an int). A value out of its type or bounds is a DiffprobeError naming the class and the setting."""

    __pydantic_config__: ClassVar[ConfigDict] = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="wrap")
    @classmethod
    def _errors_name_the_setting(cls, values: Any, handler):
        try:
            return handler(values)
        except ValidationError as e:
            raise DiffprobeError(invalid_settings(cls.__name__, e, (f.name for f in fields(cls)))) from None
