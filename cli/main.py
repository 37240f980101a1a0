"""Entry point of the `freshet` command.

Command groups register themselves on `app`; `main()` is the console script. Exit codes follow
INTERFACE.md: 0 ok, 1 the operation failed, 2 bad usage (one line on stderr, never a traceback).
"""

from __future__ import annotations

import os
import sys
import traceback
from importlib import metadata

import typer
from freshet.cli import common, help_text, kafka_argv
from freshet.cli.broker import app as broker_app
from freshet.cli.cluster import app as cluster_app
from freshet.cli.config import config as config_command
from freshet.cli.console import consume as consume_command
from freshet.cli.console import produce as produce_command
from freshet.cli.dump_log import dump_log as dump_log_command
from freshet.cli.group import app as group_app
from freshet.cli.metadata import app as metadata_app
from freshet.cli.partition import app as partition_app
from freshet.cli.perf import app as perf_app
from freshet.cli.security import acl_app, user_app
from freshet.cli.server import app as server_app
from freshet.cli.topic import app as topic_app

try:  # typer >= 0.20 carries its own copy of click; older releases use click itself
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - depends on the installed typer
    from click import exceptions as click_exceptions

help_text.use_plain_metavars()  # --help without typer's <str>/<bool>/<int range> labels

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
    debug: bool = typer.Option(
        False, "--debug", help="Print tracebacks with errors (also accepted after the command; env FRESHET_DEBUG=1)."
    ),
    tls_ca: str = typer.Option(
        None,
        "--tls-ca",
        envvar="FRESHET_TLS_CA",
        metavar="FILE",
        help="Connect with TLS, trusting the CA certificate(s) in FILE (a secure cluster's ca.pem; "
        "also accepted after the command). Env: FRESHET_TLS_CA.",
    ),
    user: str = typer.Option(
        None, "--user", envvar="FRESHET_USER", show_envvar=False,
        help="Log in as this user (SASL SCRAM-SHA-512). Env: FRESHET_USER. Also accepted after the command.",
    ),
    password_file: str = typer.Option(
        None, "--password-file", envvar="FRESHET_PASSWORD_FILE", show_envvar=False,
        help="File holding the user's password. Env: FRESHET_PASSWORD_FILE.",
    ),
    command_config: str = typer.Option(
        None, "--command-config",
        help="Kafka client properties: security.protocol, sasl.mechanism, sasl.username, sasl.password "
        "(or sasl.jaas.config), ssl.ca.location.",
    ),
) -> None:
    """Freshet: a Kafka-style replicated commit log whose cluster coordinates itself.

    Every command that talks to a cluster takes --bootstrap HOST:PORT (or FRESHET_BOOTSTRAP;
    default localhost:9092). Read commands take --output json. Exit codes: 0 ok, 1 the cluster
    refused or could not be reached, 2 bad usage.

    Examples:

      freshet cluster up                       # a local 3-node cluster

      freshet topic create orders --partitions 3 --replication-factor 3

      seq 10 | freshet produce orders

      freshet consume orders --from-beginning --max-messages 10
    """
    if debug:
        common.DEBUG["enabled"] = True
    common.set_client_security(tls_ca or None, user or None, password_file or None, command_config or None)


app.add_typer(perf_app, name="perf")
app.add_typer(server_app, name="server")
app.add_typer(cluster_app, name="cluster")
app.add_typer(topic_app, name="topic")
app.add_typer(partition_app, name="partition")
app.command("config")(config_command)
app.add_typer(metadata_app, name="metadata")
app.command("produce")(produce_command)
app.command("consume")(consume_command)
app.command("dump-log")(dump_log_command)
app.add_typer(group_app, name="group")
app.add_typer(user_app, name="user")
app.add_typer(acl_app, name="acl")
app.add_typer(broker_app, name="broker")


def main() -> None:
    """Console-script entry point. Usage errors print one line on stderr and exit 2 (click's own
    output is a multi-line box); a command group without a subcommand prints its help and exits 2."""
    _quiet_rich_on_broken_pipe()
    if "--debug" in sys.argv[2:]:  # --debug after the command: the same as before it
        common.DEBUG["enabled"] = True
        sys.argv = [sys.argv[0], *[a for a in sys.argv[1:] if a != "--debug"]]
    sys.argv = [sys.argv[0], *common.lift_global_options(sys.argv[1:])]
    try:  # Kafka's spellings (kafka-topics.sh --create --topic T ...): cli/kafka_argv.py
        sys.argv = [sys.argv[0], *kafka_argv.rewrite(sys.argv[1:])]
    except kafka_argv.KafkaSpellingError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    try:
        code = app(standalone_mode=False)
    except BrokenPipeError:
        _quiet_broken_pipe()
        sys.exit(0)
    except click_exceptions.NoArgsIsHelpError as error:
        print(error.ctx.get_help(), file=sys.stderr)
        sys.exit(2)
    except click_exceptions.UsageError as error:
        command = error.ctx.command_path if error.ctx is not None else "freshet"
        print(f"error: {command}: {error.format_message()}; see {command} --help", file=sys.stderr)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except Exception as error:  # a bug: one line unless --debug (INTERFACE.md: never a traceback)
        if common.DEBUG["enabled"]:
            traceback.print_exc()
        else:
            print(f"error: {type(error).__name__}: {error}; rerun with --debug for the traceback", file=sys.stderr)
        sys.exit(1)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
    sys.exit(code if isinstance(code, int) else 0)


def _quiet_rich_on_broken_pipe() -> None:
    """rich's Console ends the process with exit code 1 when its reader goes away; every freshet
    command instead ends quietly with 0 (`freshet ... | head`, `until freshet ... | grep -q x`
    under pipefail), so the policy is set once here for every command's console."""
    from rich.console import Console

    def on_broken_pipe(console: Console) -> None:
        _quiet_broken_pipe()
        raise SystemExit(0)

    Console.on_broken_pipe = on_broken_pipe


def _quiet_broken_pipe() -> None:
    """The reader of our stdout went away (`| head`): stop quietly. Point stdout at /dev/null so
    the interpreter's final flush does not complain (Python's documented recipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    main()
