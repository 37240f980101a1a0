"""How `--help` names option values, for every `freshet` command at once.

typer labels each parameter with its Python type (`<str>`, `<bool>`, `<int range>`, `<list[str]>`)
and a range (`[x>=1]`); to a Kafka user that is noise. `use_plain_metavars()` (called once by
cli/main.py when it builds the app) replaces the labels: nothing for flags and arguments, the
choices for a choice (`table|json`), `N` for a number, and the option's own name in capitals
(`--bootstrap BOOTSTRAP`) for the rest; an explicit `metavar=` still wins. Bounds are still
enforced (a bad value is a usage error naming them); they are just not printed as `[x>=1]`.

Thread-safety: patches typer's parameter classes once at import of the CLI (single-threaded).
"""

from __future__ import annotations

from typing import get_args, get_origin

from typer import core

#: What the help must never show (tests/unit/cli/test_kafka_spellings.py checks every command).
NOISE = (
    "<str>",
    "<bool>",
    "<int",
    "<float",
    "<list",
    "<path",
    "[x>",
    "[x<",
    "[x=",
    "TEXT",
    "INTEGER",
    "BOOLEAN",
)


def _plain_metavar(param, ctx) -> str | None:
    """The label shown after an option in --help (None: no label)."""
    if param.metavar is not None:
        return param.metavar
    if (
        isinstance(param, core.TyperArgument)
        or getattr(param, "is_flag", False)
        or getattr(param, "count", False)
    ):
        return None
    descriptor = param.type_descriptor
    if descriptor.is_choice:
        return core._TyperParameter.display_type(param, ctx).strip("<>")
    annotation = descriptor.annotation
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    if descriptor.is_ranged or annotation in (int, float):
        return "N"
    return (param.name or "value").upper()


def _no_range(param) -> None:
    return None


def use_plain_metavars() -> None:
    """Install the plain labels on typer's option and argument classes (idempotent)."""
    for cls in (core.TyperOption, core.TyperArgument):
        cls.display_type_rich = _plain_metavar
        cls._get_number_range_help_str = _no_range
