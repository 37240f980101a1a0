"""`freshet group`: list, describe, delete consumer groups and reset their offsets.

Thin: parses, calls the group methods of `freshet.client.Admin` (client/admin_groups.py), renders
a table or (`--output json`) one JSON document. Errors print one line on stderr: exit 1 when the
cluster said no, 2 for bad usage (INTERFACE.md), through cli/common.py.
"""

from __future__ import annotations

import datetime

import typer
from freshet.cli import common
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, reporting_errors

app = typer.Typer(name="group", help="Consumer groups: list, describe, delete, reset offsets.", no_args_is_help=True)


@app.command("list")
def list_groups(bootstrap: Bootstrap = DEFAULT_BOOTSTRAP, output: Output = OutputFormat.table) -> None:
    """List every consumer group: id, state, members.

    Examples:

      freshet group list --output json
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        groups = admin.list_groups()
    if output == OutputFormat.json:
        common.print_json([{"group": g.group_id, "state": g.state, "members": g.member_count} for g in groups])
        return
    if not groups:
        typer.echo("no consumer groups")
        return
    common.print_table(["GROUP", "STATE", "MEMBERS"], [(g.group_id, g.state, g.member_count) for g in groups])


@app.command("describe")
def describe(
    group: str = typer.Argument(..., help="The group id."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Members and, per partition: committed offset, log end, lag, lag in time and owner.

    LAG-TIME is the age of the oldest record the group has not committed yet (0s when caught up),
    as the group's coordinator last measured it (every group.lag.refresh.interval.ms); "-" when not
    measured yet. A "!" marks partitions over the group's lag.alert.seconds.

    Examples:

      freshet group describe billing

      freshet group describe billing --output json
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        described = admin.describe_group(group)
    if output == OutputFormat.json:
        common.print_json(described.to_json())
        return
    typer.echo(
        f"group {described.group}: {described.state}, generation {described.generation}, "
        f"{len(described.members)} member(s), assignor {described.assignor}, coordinator {described.coordinator}"
    )
    clients = {m.member_id: f"{m.client_id}@{m.host}" for m in described.members}
    common.print_table(
        ["TOPIC", "PARTITION", "COMMITTED", "LOG-END", "LAG", "LAG-TIME", "OWNER"],
        [
            (
                o.topic,
                o.partition,
                o.committed_offset,
                o.log_end_offset,
                o.lag,
                format_lag_time(o.lag_seconds) + ("!" if described.is_lag_alerting(o) else ""),
                None if o.member_id is None else f"{o.member_id[:12]} ({clients.get(o.member_id, '?')})",
            )
            for o in described.offsets
        ],
    )
    alerting = sorted({o.topic for o in described.offsets if described.is_lag_alerting(o)})
    if alerting:
        typer.echo(
            f"warning: group {described.group} is more than {described.lag_alert_seconds:g}s behind "
            f"(lag.alert.seconds) on {', '.join(alerting)}",
            err=True,
        )


def format_lag_time(seconds: float | None) -> str:
    """A lag in time for people: 0s, 12s, 3m04s, 2h01m, 3d04h; "-" when unknown."""
    if seconds is None:
        return "-"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


@app.command("delete")
def delete(group: str = typer.Argument(..., help="The group id."), bootstrap: Bootstrap = DEFAULT_BOOTSTRAP) -> None:
    """Delete a group without active members, with its committed offsets.

    Examples:

      freshet group delete billing
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        admin.delete_group(group)
    typer.echo(f"deleted group {group}")


@app.command("reset-offsets")
def reset_offsets(
    group: str = typer.Argument(..., help="The group id (it must have no active members)."),
    topic: str = typer.Option(..., "--topic", help="The topic whose offsets to reset (every partition)."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="Each partition's log start offset."),
    to_latest: bool = typer.Option(False, "--to-latest", help="Each partition's log end (high watermark)."),
    to_offset: int | None = typer.Option(
        None, "--to-offset", min=0, help="This offset (clamped to each partition's range)."
    ),
    to_datetime: str | None = typer.Option(
        None, "--to-datetime", help="ISO 8601 time: the first offset at or after it (UTC when no zone is given)."
    ),
    execute: bool = typer.Option(False, "--execute", help="Commit the new offsets (default: print the plan only)."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Reset a group's committed offsets for a topic (a dry run unless --execute).

    Examples:

      freshet group reset-offsets billing --topic orders --to-earliest --execute

      freshet group reset-offsets billing --topic orders --to-datetime 2026-11-21T12:00:00Z
    """
    targets = [to_earliest, to_latest, to_offset is not None, to_datetime is not None]
    if sum(bool(t) for t in targets) != 1:
        common.usage_error("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime")
    moment = None
    if to_datetime is not None:
        try:
            moment = datetime.datetime.fromisoformat(to_datetime)
        except ValueError:
            common.usage_error(f"--to-datetime {to_datetime!r} is not an ISO 8601 time")
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        plan = admin.reset_offsets(
            group, topic, to_earliest=to_earliest, to_latest=to_latest, to_offset=to_offset,
            to_datetime=moment, execute=execute,
        )
    if output == OutputFormat.json:
        common.print_json({
            "group": group,
            "executed": execute,
            "offsets": [
                {"topic": r.topic, "partition": r.partition, "current_offset": r.current_offset, "new_offset": r.new_offset}
                for r in plan
            ],
        })
        return
    common.print_table(
        ["TOPIC", "PARTITION", "CURRENT", "NEW"], [(r.topic, r.partition, r.current_offset, r.new_offset) for r in plan]
    )
    if not execute:
        typer.echo("dry run: nothing committed; add --execute to apply")
