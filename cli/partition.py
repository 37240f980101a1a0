"""`freshet partition ...`: move replicas (kafka-reassign-partitions.sh) and elect leaders
(kafka-leader-election.sh). Thin: parses, calls `freshet.client.Admin`, renders."""

from __future__ import annotations

import json

import typer
from freshet.cli import common
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, reporting_errors
from freshet.client import errors
from freshet.client.structs import TopicPartition

app = typer.Typer(
    name="partition",
    help="Reassign partition replicas and elect leaders (kafka-reassign-partitions, kafka-leader-election).",
    no_args_is_help=True,
)

_STATE_STYLES = {"complete": "green", "in_progress": "yellow", "failed": "red", "would_move": "yellow"}

PLAN_HELP = (
    'Plan file, Kafka\'s format: {"version": 1, "partitions": [{"topic": "orders", "partition": 0, '
    '"replicas": [2, 3, 4]}]}'
)


def read_plan(path: str) -> dict[TopicPartition, list[int]]:
    """The reassignment plan in `path` (Kafka's JSON format); a usage error when malformed."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as error:
        common.usage_error(f"--file {path}: {error.strerror or error}")
    except json.JSONDecodeError as error:
        common.usage_error(f"--file {path}: not JSON ({error.msg} at line {error.lineno})")
    entries = document.get("partitions") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        common.usage_error(
            f'--file {path}: expected {{"partitions": [{{"topic", "partition", "replicas"}}, ...]}}'
        )
    plan: dict[TopicPartition, list[int]] = {}
    for index, entry in enumerate(entries):
        is_valid = (
            isinstance(entry, dict)
            and isinstance(entry.get("topic"), str)
            and isinstance(entry.get("partition"), int)
            and isinstance(entry.get("replicas"), list)
            and all(isinstance(r, int) and not isinstance(r, bool) for r in entry["replicas"])
        )
        if not is_valid:
            common.usage_error(
                f"--file {path}: partitions[{index}] needs topic (string), partition (int), replicas (list of broker ids)"
            )
        tp = TopicPartition(entry["topic"], entry["partition"])
        if tp in plan:
            common.usage_error(f"--file {path}: {tp} appears twice")
        plan[tp] = list(entry["replicas"])
    return plan


@app.command("reassign", epilog=PLAN_HELP)
def reassign(
    file: str | None = typer.Option(None, "--file", "-f", help="The reassignment plan (JSON, Kafka's format)."),
    execute: bool = typer.Option(False, "--execute", help="Start the reassignment."),
    verify: bool = typer.Option(
        False, "--verify", help="Show whether each partition of the plan has moved; without --file, every reassignment in progress."
    ),
    cancel: bool = typer.Option(
        False, "--cancel", help="Cancel the reassignments of the plan's partitions; without --file, every one in progress."
    ),
    generate: bool = typer.Option(False, "--generate", help="Propose a plan moving the topics onto --broker-list."),
    topics_file: str | None = typer.Option(
        None, "--topics-to-move-json-file", help='With --generate: {"version": 1, "topics": [{"topic": "orders"}]}.'
    ),
    broker_list: str | None = typer.Option(None, "--broker-list", help="With --generate: broker ids, e.g. 1,2,3."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Move partition replicas to other brokers. Without --execute/--verify/--cancel, show the
    current replicas next to the plan and change nothing.

    The controller adds the new replicas, waits until they are in the ISR, then moves leadership
    off the replicas being removed and drops them (Kafka's steps). --verify and --cancel without
    --file cover every reassignment in progress, the balancer's too (to stop the balancer from
    starting its next batch: freshet config --cluster --set auto.balance.enable=false).

    Examples:

      freshet partition reassign --generate --topics-to-move-json-file topics.json --broker-list 1,2,3

      freshet partition reassign --file plan.json             # dry run: current vs proposed

      freshet partition reassign --file plan.json --execute

      freshet partition reassign --file plan.json --verify

      freshet partition reassign --verify                     # every reassignment in progress

      freshet partition reassign --cancel                     # cancel them all
    """
    if execute + verify + cancel + generate > 1:
        common.usage_error("give at most one of --execute, --verify, --cancel, --generate")
    if generate:
        _generate(topics_file, broker_list, file, bootstrap, output)
        return
    if topics_file is not None or broker_list is not None:
        common.usage_error("--topics-to-move-json-file and --broker-list go with --generate")
    if file is None:
        if verify or cancel:
            _in_progress(bootstrap, output, cancel=cancel)
            return
        common.usage_error("give --file plan.json (or --generate; --verify and --cancel alone cover every reassignment)")
    _with_plan(file, execute=execute, verify=verify, cancel=cancel, bootstrap=bootstrap, output=output)


def _with_plan(file: str, *, execute: bool, verify: bool, cancel: bool, bootstrap: str, output: OutputFormat) -> None:
    """--file: the dry run, --execute, --verify or --cancel of the plan's partitions."""
    plan = read_plan(file)
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        if execute or cancel:
            _submit_reassignments(admin, plan, cancel=cancel, output=output)
            return
        statuses = admin.verify_reassignment(plan)
    rows = [
        {
            "topic": s.topic,
            "partition": s.partition,
            "current_replicas": s.current_replicas,
            "target_replicas": s.target_replicas,
            "state": s.state if verify else ("unchanged" if s.state == "complete" else "would_move"),
        }
        for s in statuses
    ]
    _print_reassignment_states(rows, verify=verify, output=output)
    if verify and any(r["state"] == "failed" for r in rows):
        raise typer.Exit(common.EXIT_FAILED)


def read_topics_to_move(path: str) -> list[str]:
    """Kafka's --topics-to-move-json-file: {"version": 1, "topics": [{"topic": "orders"}, ...]}."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except OSError as error:
        common.usage_error(f"--topics-to-move-json-file {path}: {error.strerror or error}")
    except json.JSONDecodeError as error:
        common.usage_error(f"--topics-to-move-json-file {path}: not JSON ({error.msg} at line {error.lineno})")
    entries = document.get("topics") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries or not all(
        isinstance(e, dict) and isinstance(e.get("topic"), str) and e["topic"] for e in entries
    ):
        common.usage_error(f'--topics-to-move-json-file {path}: expected {{"topics": [{{"topic": "NAME"}}, ...]}}')
    names = [e["topic"] for e in entries]
    if len(set(names)) != len(names):
        common.usage_error(f"--topics-to-move-json-file {path}: a topic appears twice")
    return names


def _plan_document(rows: list[tuple[str, int, list[int]]]) -> dict:
    """A plan in Kafka's JSON format (what --file reads)."""
    return {
        "version": 1,
        "partitions": [
            {"topic": topic, "partition": partition, "replicas": replicas, "log_dirs": ["any"] * len(replicas)}
            for topic, partition, replicas in rows
        ],
    }


def _generate(topics_file: str | None, broker_list: str | None, file: str | None, bootstrap: str, output: OutputFormat) -> None:
    """--generate: print the current assignment and the proposed one (Kafka's two JSON plans)."""
    if file is not None:
        common.usage_error("--generate takes --topics-to-move-json-file, not --file")
    if topics_file is None or broker_list is None:
        common.usage_error("--generate needs --topics-to-move-json-file FILE and --broker-list 1,2,3")
    topics = read_topics_to_move(topics_file)
    broker_ids = common.parse_int_list(broker_list, "--broker-list")
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        proposal = admin.generate_reassignment(topics, broker_ids)
    current = _plan_document([(p.topic, p.partition, p.current_replicas) for p in proposal])
    proposed = _plan_document([(p.topic, p.partition, p.proposed_replicas) for p in proposal])
    if output == OutputFormat.json:
        common.print_json({"current": current, "proposed": proposed})
        return
    moved = sum(1 for p in proposal if p.current_replicas != p.proposed_replicas)
    typer.echo("Current partition replica assignment")
    typer.echo(json.dumps(current, separators=(",", ":")))
    typer.echo("")
    typer.echo(f"Proposed partition reassignment configuration ({moved} of {len(proposal)} partitions move)")
    typer.echo(json.dumps(proposed, separators=(",", ":")))


def _in_progress(bootstrap: str, output: OutputFormat, *, cancel: bool) -> None:
    """--verify / --cancel without --file: every reassignment in progress (who started it, the
    adding replicas' distance to the leader), or cancel them all."""
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        ongoing = admin.list_partition_reassignments(with_progress=not cancel)
        if cancel:
            if not ongoing:
                typer.echo("no reassignment in progress")
                return
            plan = {TopicPartition(r.topic, r.partition): r.replicas for r in ongoing}
            _submit_reassignments(admin, plan, cancel=True, output=output)
            return
    rows = [
        {
            "topic": r.topic,
            "partition": r.partition,
            "started_by": "balancer" if r.by_balancer else "user",
            "replicas": r.replicas,
            "adding_replicas": r.adding_replicas,
            "removing_replicas": r.removing_replicas,
            "isr": r.isr,
            "leader": r.leader,
            "progress": [
                {"broker": p.broker_id, "log_end_offset": p.log_end_offset, "offsets_left": p.offsets_left,
                 "bytes_left": p.bytes_left, "error": p.error}
                for p in r.progress
            ],
        }
        for r in ongoing
    ]
    if output == OutputFormat.json:
        common.print_json(rows)
        return
    if not rows:
        typer.echo("no reassignment in progress")
        return
    common.print_table(
        ["TOPIC", "PARTITION", "BY", "ADDING", "REMOVING", "ISR", "LEFT (per adding replica)"],
        [
            (
                r["topic"],
                r["partition"],
                r["started_by"],
                common.join_ids(r["adding_replicas"]),
                common.join_ids(r["removing_replicas"]),
                common.join_ids(r["isr"]),
                ", ".join(_progress_text(p) for p in r["progress"]) or "-",
            )
            for r in rows
        ],
    )


def _progress_text(progress: dict) -> str:
    if progress["error"] is not None:
        return f"{progress['broker']}: ? ({progress['error']})"
    return f"{progress['broker']}: {progress['offsets_left']} offsets, {common.human_bytes(progress['bytes_left'])}"


def _submit_reassignments(
    admin, plan: dict[TopicPartition, list[int]], *, cancel: bool, output: OutputFormat
) -> None:
    """--execute / --cancel: send the plan (an empty target cancels), print one row per
    partition, and exit 1 if the controller refused any."""
    results = admin.reassign_partitions({tp: ([] if cancel else r) for tp, r in plan.items()})
    rows = [
        {
            "topic": r.topic,
            "partition": r.partition,
            "replicas": plan[TopicPartition(r.topic, r.partition)],
            "result": "ok" if r.error is None else "error",
            "error": None if r.error is None else r.error.message,
        }
        for r in results
    ]
    if output == OutputFormat.json:
        common.print_json(rows)
    else:
        verb = "cancelled" if cancel else "started"
        common.print_table(
            ["TOPIC", "PARTITION", "TARGET", "RESULT"],
            [
                (
                    r["topic"],
                    r["partition"],
                    common.join_ids(r["replicas"]),
                    verb if r["error"] is None else r["error"],
                )
                for r in rows
            ],
        )
    failed = [r for r in rows if r["error"] is not None]
    if failed:
        common.fail(f"{len(failed)} of {len(rows)} reassignments refused; first: {failed[0]['error']}")


def _print_reassignment_states(rows: list[dict], *, verify: bool, output: OutputFormat) -> None:
    """The dry run (current vs target) or --verify view of the plan's partitions."""
    if output == OutputFormat.json:
        common.print_json(rows)
        return
    common.print_table(
        ["TOPIC", "PARTITION", "CURRENT", "TARGET", "STATE"],
        [
            (
                r["topic"],
                r["partition"],
                common.join_ids(r["current_replicas"]),
                common.join_ids(r["target_replicas"]),
                common.Styled(r["state"], _STATE_STYLES.get(r["state"], "")),
            )
            for r in rows
        ],
    )
    if not verify:
        typer.echo("dry run: nothing changed (pass --execute to start)")


@app.command("elect-leaders")
def elect_leaders(
    topic: str | None = typer.Option(None, "--topic", "-t", help="Only this topic's partitions."),
    partition: int | None = typer.Option(
        None, "--partition", min=0, help="Only this partition (needs --topic)."
    ),
    election_type: str = typer.Option(
        "preferred",
        "--type",
        help="preferred: back to the first replica if in the ISR; unclean: leaderless ones, outside the ISR if need be.",
    ),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Elect partition leaders (kafka-leader-election).

    Examples:

      freshet partition elect-leaders                      # preferred leaders everywhere

      freshet partition elect-leaders --topic orders --partition 0

      freshet partition elect-leaders --type unclean --topic orders
    """
    if election_type not in ("preferred", "unclean"):
        common.usage_error(f"--type must be preferred or unclean, not {election_type!r}")
    if partition is not None and topic is None:
        common.usage_error("--partition needs --topic")
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        partitions = _election_partitions(admin, topic, partition)
        results = admin.elect_leaders(partitions, election_type=election_type)
    rows = [_election_row(r) for r in results]
    _print_elections(rows, output)
    failed = [r for r in rows if r["result"] == "error"]
    if failed:
        common.fail(
            f"election failed for {len(failed)} partition(s); first: {failed[0]['topic']}-{failed[0]['partition']}: {failed[0]['error']}"
        )


def _election_partitions(admin, topic: str | None, partition: int | None) -> list[TopicPartition] | None:
    """The partitions to elect for --topic / --partition; None (every partition) without --topic.

    Raises:
        UnknownTopicError: the topic, or its partition `partition`, does not exist.
    """
    if topic is None:
        return None
    described = admin.describe_topics([topic], with_offsets=False)[0]
    known = [p.partition for p in described.partitions]
    if partition is not None and partition not in known:
        raise errors.UnknownTopicError(f"topic {topic!r} has no partition {partition} (it has {len(known)})")
    return [TopicPartition(topic, p) for p in known if partition is None or p == partition]


def _election_row(result) -> dict:
    """One partition's outcome for the JSON and the table; "not needed" is not an error."""
    is_not_needed = isinstance(result.error, errors.ElectionNotNeededError)
    return {
        "topic": result.topic,
        "partition": result.partition,
        "leader": result.leader,
        "result": "elected" if result.error is None else ("not_needed" if is_not_needed else "error"),
        "error": None if result.error is None or is_not_needed else result.error.message,
    }


def _print_elections(rows: list[dict], output: OutputFormat) -> None:
    if output == OutputFormat.json:
        common.print_json(rows)
    elif not rows:
        typer.echo("no partitions to elect")
    else:
        common.print_table(
            ["TOPIC", "PARTITION", "LEADER", "RESULT"],
            [
                (
                    r["topic"],
                    r["partition"],
                    r["leader"],
                    common.Styled(r["error"], "red") if r["error"] else r["result"].replace("_", " "),
                )
                for r in rows
            ],
        )
