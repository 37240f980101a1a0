"""`freshet config`: broker, consumer-group and cluster-wide dynamic configs (the broker and group
half of kafka-configs.sh; group configs are Kafka 4's --entity-type groups).

Values are stored in the metadata quorum and applied by the nodes without a restart where
possible. Thin: parses, calls `freshet.client.Admin`, renders (shared with `topic config`).
"""

from __future__ import annotations

from typing import Annotated

import typer
from freshet.cli import common
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat
from freshet.cli.topic import run_config
from freshet.client.admin import ConfigResource


def config(
    broker: int | None = typer.Option(
        None, "--broker", help="The broker id whose configs to show or change."
    ),
    cluster: bool = typer.Option(
        False, "--cluster", help="The cluster-wide configs (defaults for every broker, topic and group)."
    ),
    group: str | None = typer.Option(
        None, "--group", help="The consumer group whose configs to show or change (lag.alert.seconds)."
    ),
    set_: Annotated[list[str] | None, typer.Option("--set", help="Set key=value (repeatable).")] = None,
    delete_: Annotated[
        list[str] | None,
        typer.Option(
            "--delete", help="Remove the value set at this level: back to the next lower level (repeatable)."
        ),
    ] = None,
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Show (value and source) or change broker / group / cluster configs.

    Examples:

      freshet config --cluster

      freshet config --cluster --set auto.create.topics.enable=true

      freshet config --broker 2 --set broker.session.timeout.ms=9000

      freshet config --broker 2 --delete broker.session.timeout.ms

      freshet config --group billing --set lag.alert.seconds=60
    """
    if sum([broker is not None, cluster, group is not None]) != 1:
        common.usage_error(
            "give exactly one of --broker ID, --group G or --cluster (topic configs: freshet topic config NAME)"
        )
    if group is not None and not group:
        common.usage_error("--group needs a non-empty group id")
    if cluster:
        resource = ConfigResource.cluster()
    elif group is not None:
        resource = ConfigResource.group(group)
    else:
        resource = ConfigResource.broker(broker)
    run_config(resource, set_, delete_, bootstrap, output)
