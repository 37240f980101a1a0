"""`freshet group`: list, describe, delete consumer groups and reset their offsets.

Thin: parses, calls the group methods of `freshet.client.Admin` (client/admin_groups.py), renders
a table or (`--output json`) one JSON document. Errors print one line on stderr: exit 1 when the
cluster said no, 2 for bad usage (INTERFACE.md), through cli/common.py.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated

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
    group: str | None = typer.Argument(None, help="The group id (or --group G)."),
    all_groups: bool = typer.Option(False, "--all-groups", help="Describe every group."),
    members: bool = typer.Option(False, "--members", help="Only the members: id, host, client id, partitions."),
    state: bool = typer.Option(False, "--state", help="Only the summary line: state, members, assignor."),
    offsets: bool = typer.Option(False, "--offsets", help="The per-partition offsets (the default view)."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Members and, per partition: committed offset, log end, lag, lag in time and owner.

    LAG-TIME is the age of the oldest record the group has not committed yet (0s when caught up),
    as the group's coordinator last measured it (every group.lag.refresh.interval.ms); "-" when not
    measured yet. A "!" marks partitions over the group's lag.alert.seconds. With --all-groups,
    every group in turn (JSON: a list of the per-group documents). --members and --state show
    only the members or only the summary line (kafka-consumer-groups' views); JSON is always whole.

    Examples:

      freshet group describe billing

      freshet group describe billing --output json

      freshet group --describe --all-groups

      freshet group --describe --group billing --members
    """
    if (group is None) == (not all_groups):
        common.usage_error("give a group id (or --group G), or --all-groups")
    if members + state + offsets > 1:
        common.usage_error("give at most one of --members, --state, --offsets")
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        ids = [group] if group is not None else [g.group_id for g in admin.list_groups()]
        described = [admin.describe_group(one) for one in ids]
    if output == OutputFormat.json:
        documents = [one.to_json() for one in described]
        common.print_json(documents if all_groups else documents[0])
        return
    if not described:
        typer.echo("no consumer groups")
    for index, one in enumerate(described):
        if index:
            typer.echo("")
        _print_group(one, members=members, state=state)


def _print_group(described, *, members: bool = False, state: bool = False) -> None:
    """One group's summary line, then (kafka-consumer-groups' views) its members (`members`),
    nothing more (`state`), or its per-partition table and its lag alert (stderr)."""
    typer.echo(
        f"group {described.group}: {described.state}, generation {described.generation}, "
        f"{len(described.members)} member(s), assignor {described.assignor}, coordinator {described.coordinator}"
    )
    if state:
        return
    if members:
        common.print_table(
            ["MEMBER", "HOST", "CLIENT", "PARTITIONS"],
            [(m.member_id, m.host, m.client_id, len(m.assignment)) for m in described.members],
        )
        return
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
    group: str = typer.Argument(..., help="The group id, or --group G (it must have no active members)."),
    topic: Annotated[
        list[str] | None,
        typer.Option("--topic", help="A topic (every partition) or TOPIC:0,2 (those partitions); repeatable."),
    ] = None,
    all_topics: bool = typer.Option(False, "--all-topics", help="Every topic the group has committed offsets for."),
    to_earliest: bool = typer.Option(False, "--to-earliest", help="Each partition's log start offset."),
    to_latest: bool = typer.Option(False, "--to-latest", help="Each partition's log end (high watermark)."),
    to_offset: int | None = typer.Option(
        None, "--to-offset", min=0, help="This offset (clamped to each partition's range)."
    ),
    to_datetime: str | None = typer.Option(
        None,
        "--to-datetime",
        metavar="ISO",
        help="ISO 8601 time: the first offset at or after it (UTC when no zone is given).",
    ),
    shift_by: int | None = typer.Option(
        None, "--shift-by", help="Move the committed offset by N (negative: back), clamped to the log."
    ),
    by_duration: str | None = typer.Option(
        None,
        "--by-duration",
        metavar="PnDTnHnM",
        help="ISO 8601 duration PnDTnHnMnS: the first offset at or after now minus it.",
    ),
    execute: bool = typer.Option(False, "--execute", help="Commit the new offsets."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only (the default, as Kafka's)."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Reset a group's committed offsets (a dry run unless --execute), as kafka-consumer-groups.

    Examples:

      freshet group reset-offsets billing --topic orders --to-earliest --execute

      freshet group reset-offsets billing --topic orders --to-datetime 2026-11-21T12:00:00Z

      freshet group reset-offsets billing --topic orders:0,2 --shift-by -10 --execute

      freshet group --reset-offsets --group billing --all-topics --by-duration PT1H --dry-run
    """
    target = _reset_target(to_earliest, to_latest, to_offset, to_datetime, shift_by, by_duration)
    if execute and dry_run:
        common.usage_error("give --execute or --dry-run, not both")
    if bool(topic) == all_topics:
        common.usage_error("give --topic TOPIC[:PARTITIONS] (repeatable) or --all-topics")
    selections = [_topic_selection(item) for item in topic or ()]
    admin = common.make_admin(bootstrap)
    plan = []
    with reporting_errors():
        if all_topics:
            offsets = admin.describe_group(group).offsets
            committed = {o.topic for o in offsets if o.committed_offset is not None}
            selections = [(name, None) for name in sorted(committed)]
        for name, partitions in selections:
            plan += admin.reset_offsets(group, name, partitions=partitions, execute=execute, **target)
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


def _reset_target(to_earliest, to_latest, to_offset, to_datetime, shift_by, by_duration) -> dict:
    """The SDK's reset_offsets target keyword for the one --to-*/--shift-by/--by-duration given
    (a usage error otherwise)."""
    given = [to_earliest, to_latest, to_offset is not None, to_datetime is not None, shift_by is not None,
             by_duration is not None]
    if sum(bool(t) for t in given) != 1:
        common.usage_error(
            "give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by, --by-duration"
        )
    if to_earliest or to_latest:
        return {"to_earliest": to_earliest, "to_latest": to_latest}
    if to_offset is not None:
        return {"to_offset": to_offset}
    if shift_by is not None:
        return {"shift_by": shift_by}
    if by_duration is not None:
        try:
            duration = parse_iso_duration(by_duration)
        except ValueError as error:
            common.usage_error(f"--by-duration {by_duration!r}: {error}")
        return {"to_datetime": datetime.datetime.now(datetime.UTC) - duration}
    try:
        return {"to_datetime": datetime.datetime.fromisoformat(to_datetime)}
    except ValueError:
        common.usage_error(f"--to-datetime {to_datetime!r} is not an ISO 8601 time")


_DURATION = re.compile(
    r"P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?",
    re.IGNORECASE,
)


def parse_iso_duration(text: str) -> datetime.timedelta:
    """An ISO 8601 duration as Kafka's --by-duration takes it (java.time.Duration: PnDTnHnMn.nS).

    Raises:
        ValueError: not such a duration, or an empty one (P, PT).
    """
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groupdict().values()) or text.strip().upper().endswith("T"):
        raise ValueError("expected an ISO 8601 duration such as PT30M, PT1H, P1DT12H")
    parts = {name: float(value) for name, value in match.groupdict().items() if value is not None}
    return datetime.timedelta(**parts)


def _topic_selection(item: str) -> tuple[str, list[int] | None]:
    """`TOPIC` (every partition) or `TOPIC:0,2` (those partitions), as Kafka's --topic."""
    name, colon, numbers = item.partition(":")
    if not name:
        common.usage_error(f"--topic {item!r}: expected TOPIC or TOPIC:0,2")
    if not colon:
        return name, None
    try:
        partitions = [int(part) for part in numbers.split(",") if part.strip()]
    except ValueError:
        partitions = []
    if not partitions or any(p < 0 for p in partitions):
        common.usage_error(f"--topic {item!r}: expected TOPIC:0,2 (partition numbers)")
    return name, partitions
