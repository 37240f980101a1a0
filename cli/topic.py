"""`freshet topic ...`: create, list, describe, delete, alter and configure topics (kafka-topics.sh
and the topic half of kafka-configs.sh). Thin: parses, calls `freshet.client.Admin`, renders."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from freshet.cli import common
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, reporting_errors
from freshet.client import errors
from freshet.client.admin import ConfigResource, TopicDescription

TOPIC_CONFIGS_HELP = (
    "Topic configs: retention.ms, retention.bytes, segment.bytes, segment.ms, cleanup.policy (delete|compact), "
    "min.insync.replicas, max.message.bytes, unclean.leader.election.enable, compression.type, "
    "message.timestamp.type (CreateTime|LogAppendTime)."
)

app = typer.Typer(
    name="topic",
    help="Create, list, describe, delete, alter and configure topics (kafka-topics).",
    no_args_is_help=True,
)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Topic name: letters, digits, '.', '_' and '-', at most 249 characters."),
    partitions: int | None = typer.Option(
        None,
        "--partitions",
        "-p",
        min=1,
        help="Number of partitions (default: the cluster's num.partitions).",
    ),
    replication_factor: int | None = typer.Option(
        None,
        "--replication-factor",
        "-r",
        min=1,
        help="Replicas per partition, at most the number of live brokers (default: default.replication.factor).",
    ),
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="A topic config key=value (repeatable).")
    ] = None,
    if_not_exists: bool = typer.Option(False, "--if-not-exists", help="Succeed if the topic already exists."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Create a topic.

    Examples:

      freshet topic create orders --partitions 3 --replication-factor 3

      freshet topic create events -p 6 -r 3 --config retention.ms=86400000 --config cleanup.policy=compact
    """
    configs = common.parse_pairs(config, "--config")
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        try:
            created = admin.create_topic(name, partitions, replication_factor, configs=configs)
        except errors.TopicAlreadyExistsError:
            if not if_not_exists:
                raise
            typer.echo(f"topic {name} already exists")
            return
    typer.echo(
        f"created topic {created.name} with {created.partitions} partition{'s' if created.partitions != 1 else ''}, "
        f"replication factor {created.replication_factor}"
    )


@app.command("list")
def list_topics(
    internal: bool = typer.Option(
        False, "--internal", help="Also list internal topics (__consumer_offsets)."
    ),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """List topics with their partition count and replication factor.

    Examples:

      freshet topic list

      freshet topic list --output json
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        topics = admin.list_topics(include_internal=internal)
    if output == OutputFormat.json:
        common.print_json(
            [
                {"name": t.name, "partitions": t.partitions, "replication_factor": t.replication_factor}
                for t in topics
            ]
        )
        return
    if not topics:
        typer.echo(
            "no topics (create one with: freshet topic create NAME --partitions P --replication-factor R)"
        )
        return
    common.print_table(
        ["TOPIC", "PARTITIONS", "REPLICATION-FACTOR"],
        [(t.name, t.partitions, t.replication_factor) for t in topics],
    )


def topic_json(topic: TopicDescription) -> dict:
    """The INTERFACE.md shape of one described topic (stable keys; extra keys after them)."""
    return {
        "name": topic.name,
        "topic_id": topic.topic_id,
        "configs": dict(topic.configs),
        "partitions": [
            {
                "partition": p.partition,
                "leader": p.leader,
                "leader_epoch": p.leader_epoch,
                "replicas": p.replicas,
                "isr": p.isr,
                "log_start_offset": p.log_start_offset,
                "log_end_offset": p.log_end_offset,
                "high_watermark": p.high_watermark,
                "size_bytes": p.size_bytes,
                "offline_replicas": p.offline_replicas,
                "offsets_error": p.offsets_error,
            }
            for p in topic.partitions
        ],
        "is_internal": topic.is_internal,
    }


@app.command("describe")
def describe(
    name: str | None = typer.Argument(None, help="The topic; all topics when omitted."),
    under_replicated: bool = typer.Option(
        False, "--under-replicated", help="Only partitions whose ISR is smaller than their replica set."
    ),
    unavailable: bool = typer.Option(False, "--unavailable", help="Only partitions without a leader."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Describe topics: per partition Leader, Replicas, Isr (as kafka-topics --describe), leader
    epoch, and from the leader's own log: log start offset, high watermark, log end offset (LEO)
    and size on disk.

    Examples:

      freshet topic describe orders

      freshet topic describe --under-replicated

      freshet topic describe orders --output json
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        topics = admin.describe_topics([name] if name else None)
    if under_replicated or unavailable:
        topics = _only_partitions(topics, under_replicated=under_replicated, unavailable=unavailable)
    if output == OutputFormat.json:
        common.print_json([topic_json(t) for t in topics])
        return
    if not topics:
        typer.echo("no partitions match" if (under_replicated or unavailable) else "no topics")
        return
    for index, topic in enumerate(topics):
        if index:
            typer.echo("")
        _print_topic(topic)


def _only_partitions(
    topics: list[TopicDescription], *, under_replicated: bool, unavailable: bool
) -> list[TopicDescription]:
    """`topics` with only their under-replicated (ISR smaller than the replica set) and/or
    unavailable (leaderless) partitions; topics left without partitions are dropped."""
    topics = [
        dataclasses.replace(
            t,
            partitions=[
                p
                for p in t.partitions
                if (under_replicated and len(p.isr) < len(p.replicas)) or (unavailable and p.leader is None)
            ],
        )
        for t in topics
    ]
    return [t for t in topics if t.partitions]


def _print_topic(topic: TopicDescription) -> None:
    """One topic as kafka-topics --describe: a summary line, then a table of its partitions."""
    replication = max((len(p.replicas) for p in topic.partitions), default=0)
    configs = ",".join(f"{k}={v}" for k, v in sorted(topic.configs.items()))
    common.print_text(
        f"Topic: {topic.name}\tTopicId: {topic.topic_id}\tPartitionCount: {len(topic.partitions)}\t"
        f"ReplicationFactor: {replication}\tConfigs: {configs}"
    )
    common.print_table(
        ["PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR", "LOG-START", "HW", "LEO", "SIZE"],
        [
            (
                p.partition,
                common.Styled("none", "bold red") if p.leader is None else p.leader,
                p.leader_epoch,
                common.join_ids(p.replicas),
                common.Styled(common.join_ids(p.isr), "yellow" if len(p.isr) < len(p.replicas) else ""),
                common.human_count(p.log_start_offset),
                common.human_count(p.high_watermark),
                common.human_count(p.log_end_offset),
                "-" if p.size_bytes is None else common.human_bytes(p.size_bytes),
            )
            for p in topic.partitions
        ],
    )
    failed = sorted({p.offsets_error for p in topic.partitions if p.offsets_error})
    if failed:
        common.print_text(f"(offsets unavailable: {failed[0]})")


@app.command("delete")
def delete(
    name: str = typer.Argument(..., help="The topic to delete (with all its data)."),
    if_exists: bool = typer.Option(False, "--if-exists", help="Succeed if the topic does not exist."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Delete a topic and its data on every broker.

    Example:

      freshet topic delete orders
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        try:
            admin.delete_topic(name)
        except errors.UnknownTopicError:
            if not if_exists:
                raise errors.UnknownTopicError(f"topic {name!r} does not exist") from None
            typer.echo(f"topic {name} does not exist")
            return
    typer.echo(f"deleted topic {name}")


@app.command("alter")
def alter(
    name: str = typer.Argument(..., help="The topic."),
    partitions: int = typer.Option(
        ..., "--partitions", "-p", min=1, help="The new total partition count (increase only)."
    ),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Increase a topic's partition count (keys move to other partitions, as in Kafka).

    Example:

      freshet topic alter orders --partitions 6
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        added = admin.create_partitions(name, partitions)
    typer.echo(f"topic {name} now has {partitions} partitions ({len(added)} added)")


@app.command("config", epilog=TOPIC_CONFIGS_HELP)
def config(
    name: str = typer.Argument(..., help="The topic."),
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Set key=value on the topic (repeatable).")
    ] = None,
    delete_: Annotated[
        list[str] | None,
        typer.Option(
            "--delete",
            help="Remove the topic's value of key: back to the cluster's or the default (repeatable).",
        ),
    ] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Show a topic's configs (value and source), or change them with --set / --delete.

    Examples:

      freshet topic config orders

      freshet topic config orders --set retention.ms=3600000 --delete cleanup.policy
    """
    run_config(ConfigResource.topic(name), set_, delete_, bootstrap, output)


def run_config(
    resource: ConfigResource,
    set_: list[str] | None,
    delete_: list[str] | None,
    bootstrap: str,
    output: OutputFormat,
) -> None:
    """Describe (no changes given) or change the configs of `resource`; shared with `freshet config`."""
    to_set = common.parse_pairs(set_, "--set")
    to_delete = [key.strip() for key in delete_ or ()]
    both = sorted(set(to_set) & set(to_delete))
    if both:
        common.usage_error(f"config {both[0]!r} is both in --set and --delete; give it once")
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        if to_set or to_delete:
            admin.alter_configs(resource, set=to_set, delete=to_delete)
            changes = [f"{k}={v}" for k, v in to_set.items()] + [f"-{k}" for k in to_delete]
            typer.echo(f"updated {resource}: {' '.join(changes)}")
            return
        entries = admin.describe_configs(resource)
    if output == OutputFormat.json:
        common.print_json({e.key: {"value": e.value, "source": e.source} for e in entries})
        return
    common.print_table(["KEY", "VALUE", "SOURCE"], [(e.key, e.value, e.source) for e in entries])
