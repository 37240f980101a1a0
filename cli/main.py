"""Entry point of the `freshet` command.

Command groups register themselves on `app`; `main()` is the console script. Exit codes follow
INTERFACE.md: 0 ok, 1 the operation failed, 2 bad usage.
"""

from __future__ import annotations

from importlib import metadata

import typer
from freshet.cli.perf import app as perf_app

app = typer.Typer(
    name="freshet",
    help="Freshet: a Kafka-style replicated commit log whose cluster coordinates itself.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"freshet {metadata.version('freshet')}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Freshet: a Kafka-style replicated commit log whose cluster coordinates itself."""


app.add_typer(perf_app, name="perf")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
