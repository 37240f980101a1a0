"""Entry point of the `freshet` command.

Command groups register themselves on `app`; `main()` is the console script. Exit codes follow
INTERFACE.md: 0 ok, 1 the operation failed, 2 bad usage (one line on stderr, never a traceback).
"""

from __future__ import annotations

import sys
from importlib import metadata

import typer
from freshet.cli.cluster import app as cluster_app
from freshet.cli.group import app as group_app
from freshet.cli.perf import app as perf_app
from freshet.cli.server import app as server_app

try:  # typer >= 0.20 carries its own copy of click; older releases use click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exceptions

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
app.add_typer(server_app, name="server")
app.add_typer(cluster_app, name="cluster")
app.add_typer(group_app, name="group")


def main() -> None:
    """Console-script entry point. Usage errors print one line on stderr and exit 2 (click's own
    output is a multi-line box); a command group without a subcommand prints its help and exits 2."""
    try:
        code = app(standalone_mode=False)
    except click_exceptions.NoArgsIsHelpError as error:
        print(error.ctx.get_help(), file=sys.stderr)
        sys.exit(2)
    except click_exceptions.UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "freshet"
        print(f"{command}: {error.format_message()} (see {command} --help)", file=sys.stderr)
        sys.exit(2)
    except typer.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
