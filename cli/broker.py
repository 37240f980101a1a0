"""`freshet broker ...`: list brokers with their load, decommission one. Thin: parses, calls
`freshet.client.Admin`, renders."""

from __future__ import annotations

import typer
from freshet.cli import common
from freshet.cli.common import DEFAULT_BOOTSTRAP, Bootstrap, Output, OutputFormat, reporting_errors

app = typer.Typer(
    name="broker",
    help="List brokers (state, replicas, leaders) and decommission them.",
    no_args_is_help=True,
)

_STATE_STYLES = {"active": "green", "fenced": "red", "decommissioning": "yellow", "decommissioned": "cyan"}


@app.command("list")
def list_brokers(bootstrap: Bootstrap = DEFAULT_BOOTSTRAP, output: Output = OutputFormat.table) -> None:
    """Every broker: address, rack, state, replica and leader counts, bytes on disk.

    State is active, fenced, decommissioning, or decommissioned (marked and no replica left).

    Examples:

      freshet broker list

      freshet broker list --output json
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        cluster = admin.describe_cluster()
        # Bytes on disk from the brokers that are up (a fenced one would only cost a timeout).
        sizes = admin.broker_log_bytes({b.node.node_id: b.node.address for b in cluster.brokers if b.state == "active"})
    rows = [
        {
            "id": b.node.node_id,
            "address": b.node.address,
            "rack": b.node.rack,
            "state": b.balance_state,
            "replicas": b.replica_count,
            "leaders": b.leader_count,
            "bytes": sizes.get(b.node.node_id),
            "is_decommissioning": b.is_decommissioning,
            "broker_epoch": b.broker_epoch,
        }
        for b in cluster.brokers
    ]
    if output == OutputFormat.json:
        common.print_json(rows)
        return
    common.print_table(
        ["ID", "ADDRESS", "RACK", "STATE", "REPLICAS", "LEADERS", "SIZE"],
        [
            (
                r["id"], r["address"], r["rack"] or "-", common.Styled(r["state"], _STATE_STYLES.get(r["state"], "")),
                r["replicas"], r["leaders"], "-" if r["bytes"] is None else common.human_bytes(r["bytes"]),
            )
            for r in rows
        ],
    )


@app.command("decommission")
def decommission(
    node_id: int = typer.Argument(..., metavar="ID", help="The broker to empty."),
    cancel: bool = typer.Option(False, "--cancel", help="Stop decommissioning it (moved replicas stay moved)."),
    bootstrap: Bootstrap = DEFAULT_BOOTSTRAP,
) -> None:
    """Move every replica off broker ID.

    The controller's balancer does it in throttled batches; watch with `freshet broker list` or `freshet partition reassign --verify`). Once its state is
    "decommissioned" the broker may be stopped. New topics never place replicas on it.

    Examples:

      freshet broker decommission 2

      freshet broker decommission 2 --cancel
    """
    admin = common.make_admin(bootstrap)
    with reporting_errors():
        admin.decommission_broker(node_id, cancel=cancel)
    if cancel:
        typer.echo(f"broker {node_id} is no longer decommissioning")
    else:
        typer.echo(f"broker {node_id} is decommissioning: its replicas move off in batches (freshet broker list)")
