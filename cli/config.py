"""`freshet config`: broker and cluster-wide dynamic configs (the broker half of kafka-configs.sh).

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
        False, "--cluster", help="The cluster-wide configs (defaults for every broker and topic)."
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
    """Show (value and source) or change broker / cluster configs.

    Examples:

      freshet config --cluster

      freshet config --cluster --set auto.create.topics.enable=true

      freshet config --broker 2 --set broker.session.timeout.ms=9000

      freshet config --broker 2 --delete broker.session.timeout.ms
    """
    if (broker is None) == (not cluster):
        common.usage_error(
            "give exactly one of --broker ID or --cluster (topic configs: freshet topic config NAME)"
        )
    resource = ConfigResource.cluster() if cluster else ConfigResource.broker(broker)
    run_config(resource, set_, delete_, bootstrap, output)
