"""`freshet metadata ...`: the metadata quorum (kafka-metadata-quorum.sh) and the metadata image.
Thin: calls `freshet.client.Admin`, renders."""

from __future__ import annotations

import dataclasses

import typer
from freshet.cli import common
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, reporting_errors

app = typer.Typer(
    name="metadata",
    help="Inspect the metadata quorum and the metadata image (kafka-metadata-quorum).",
    no_args_is_help=True,
)


@app.command("quorum")
def quorum(
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """The Raft quorum of controllers: leader, term, indexes and each voter's lag.

    Examples:

      freshet metadata quorum

      freshet metadata quorum --output json
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        described = admin.describe_quorum()
    if output == OutputFormat.json:
        common.print_json(dataclasses.asdict(described))
        return
    common.print_text(
        f"leader: {described.leader_id if described.leader_id is not None else 'none (election)'}  "
        f"term: {described.term}  commit index: {described.commit_raft_index}  "
        f"last index: {described.last_raft_index}  applied offset: {described.applied_offset}  "
        f"has quorum: {'yes' if described.has_quorum else 'no'}"
    )
    common.print_table(
        ["VOTER", "RAFT-ADDRESS", "ROLE", "CONNECTED", "MATCH-INDEX", "LAG"],
        [
            (
                v.node_id,
                v.raft_address,
                "leader" if v.node_id == described.leader_id else "follower",
                "yes" if v.is_connected else common.Styled("no", "red"),
                v.match_raft_index,
                v.lag,
            )
            for v in described.voters
        ],
    )


@app.command("dump")
def dump(
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
    output: Output = OutputFormat.table,
) -> None:
    """Print the current metadata image (brokers, topics, partitions, configs) as one JSON document,
    read from a controller node's snapshot stream (always JSON; --output is accepted for scripts).

    Example:

      freshet metadata dump > image.json
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        image = admin.metadata_image()
    common.print_json(image)
