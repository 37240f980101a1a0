"""`freshet group`: list, describe, delete consumer groups and reset their offsets.

Thin: parses, calls `freshet.client.admin_groups.GroupAdmin`, renders a table or (`--output json`)
one JSON document. Errors print one line on stderr: exit 1 when the cluster said no, 2 for bad
usage (INTERFACE.md).

The shared CLI helpers (cli/common.py) are on another branch; this module has the few it needs
and should switch to them once merged.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
from collections.abc import Iterator

import typer

app = typer.Typer(name="group", help="Consumer groups: list, describe, delete, reset offsets.", no_args_is_help=True)

BOOTSTRAP_HELP = "host:port[,host:port...] of any live node(s) (env FRESHET_BOOTSTRAP, default localhost:9092)."
EXIT_FAILED = 1
EXIT_USAGE = 2


def _bootstrap_option():
    return typer.Option(
        None, "--bootstrap", envvar="FRESHET_BOOTSTRAP", help=BOOTSTRAP_HELP, show_default=False
    )


def _output_option():
    return typer.Option("table", "--output", "-o", help="table, or json (one JSON document on stdout).")


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    from freshet.client.errors import FreshetError

    try:
        yield
    except FreshetError as error:
        hint = "; this may pass if retried" if error.retriable else ""
        print(f"error: {error.message}{hint}", file=sys.stderr)
        raise typer.Exit(EXIT_FAILED) from None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None


def _admin(bootstrap: str | None):
    from freshet.client.admin_groups import GroupAdmin

    try:
        return GroupAdmin(bootstrap or os.environ.get("FRESHET_BOOTSTRAP") or "localhost:9092", client_id="freshet-cli")
    except ValueError as error:
        print(f"error: --bootstrap {bootstrap!r}: {error}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE) from None


def _check_output(output: str) -> bool:
    if output not in ("table", "json"):
        print(f"error: --output must be table or json, not {output!r}", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE)
    return output == "json"


def _table(columns: list[str], rows: list[list]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(*columns, box=None, pad_edge=False)
    for row in rows:
        table.add_row(*("-" if value is None else str(value) for value in row))
    Console(width=200).print(table)


@app.command("list")
def list_groups(bootstrap: str | None = _bootstrap_option(), output: str = _output_option()) -> None:
    """List every consumer group: id, state, members."""
    as_json = _check_output(output)
    with _errors(), _admin(bootstrap) as admin:
        groups = admin.list_groups()
    if as_json:
        typer.echo(json.dumps([{"group": g.group_id, "state": g.state, "members": g.member_count} for g in groups]))
        return
    _table(["GROUP", "STATE", "MEMBERS"], [[g.group_id, g.state, g.member_count] for g in groups])


@app.command("describe")
def describe(
    group: str = typer.Argument(..., help="The group id."),
    bootstrap: str | None = _bootstrap_option(),
    output: str = _output_option(),
) -> None:
    """Members and, per partition: committed offset, log end, lag and owner."""
    as_json = _check_output(output)
    with _errors(), _admin(bootstrap) as admin:
        described = admin.describe_group(group)
    if as_json:
        typer.echo(json.dumps(described.to_json()))
        return
    typer.echo(
        f"group {described.group}: {described.state}, generation {described.generation}, "
        f"{len(described.members)} member(s), assignor {described.assignor}, coordinator {described.coordinator}"
    )
    clients = {m.member_id: f"{m.client_id}@{m.host}" for m in described.members}
    _table(
        ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "OWNER"],
        [
            [o.topic, o.partition, o.committed_offset, o.log_end_offset, o.lag,
             None if o.member_id is None else f"{o.member_id[:12]} ({clients.get(o.member_id, '?')})"]
            for o in described.offsets
        ],
    )


@app.command("delete")
def delete(group: str = typer.Argument(..., help="The group id."), bootstrap: str | None = _bootstrap_option()) -> None:
    """Delete a group without active members, with its committed offsets."""
    with _errors(), _admin(bootstrap) as admin:
        admin.delete_group(group)
    typer.echo(f"deleted group {group}")


@app.command("reset-offsets")
def reset_offsets(
    group: str = typer.Argument(..., help="The group id (it must have no active members)."),
    topic: str = typer.Option(..., "--topic", help="The topic whose offsets to reset (every partition)."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="Each partition's log start offset."),
    to_latest: bool = typer.Option(False, "--to-latest", help="Each partition's log end (high watermark)."),
    to_offset: int | None = typer.Option(None, "--to-offset", help="This offset (clamped to each partition's range)."),
    to_datetime: str | None = typer.Option(
        None, "--to-datetime", help="ISO 8601 time: the first offset at or after it (UTC when no zone is given)."
    ),
    execute: bool = typer.Option(False, "--execute", help="Commit the new offsets (default: print the plan only)."),
    bootstrap: str | None = _bootstrap_option(),
    output: str = _output_option(),
) -> None:
    """Reset a group's committed offsets for a topic (a dry run unless --execute)."""
    as_json = _check_output(output)
    targets = [to_earliest, to_latest, to_offset is not None, to_datetime is not None]
    if sum(bool(t) for t in targets) != 1:
        print("error: give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime", file=sys.stderr)
        raise typer.Exit(EXIT_USAGE)
    moment = None
    if to_datetime is not None:
        try:
            moment = datetime.datetime.fromisoformat(to_datetime)
        except ValueError:
            print(f"error: --to-datetime {to_datetime!r} is not an ISO 8601 time", file=sys.stderr)
            raise typer.Exit(EXIT_USAGE) from None
    with _errors(), _admin(bootstrap) as admin:
        plan = admin.reset_offsets(
            group, topic, to_earliest=to_earliest, to_latest=to_latest, to_offset=to_offset,
            to_datetime=moment, execute=execute,
        )
    if as_json:
        typer.echo(json.dumps({
            "group": group,
            "executed": execute,
            "offsets": [
                {"topic": r.topic, "partition": r.partition, "current_offset": r.current_offset, "new_offset": r.new_offset}
                for r in plan
            ],
        }))
        return
    _table(["TOPIC", "PARTITION", "CURRENT", "NEW"], [[r.topic, r.partition, r.current_offset, r.new_offset] for r in plan])
    if not execute:
        typer.echo("dry run: nothing committed; add --execute to apply")
