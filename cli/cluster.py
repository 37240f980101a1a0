"""`freshet cluster up`: a local cluster of combined nodes in the foreground (thin; the supervisor
is freshet.server.tools.local_cluster); `freshet cluster status`: the cluster as its metadata knows it."""

from __future__ import annotations

import sys

import typer
from freshet.cli import common
from freshet.client import errors

app = typer.Typer(name="cluster", help="Run and inspect Freshet clusters.", no_args_is_help=True)


@app.command("up")
def up(
    nodes: int = typer.Option(3, "--nodes", help="Number of combined nodes (odd)."),
    data_dir: str = typer.Option(
        "./freshet-data", "--data-dir", help="Where the nodes keep their data and logs."
    ),
    base_port: int = typer.Option(
        9092, "--base-port", help="Node i listens on base+(i-1)*10 (gRPC), +1 (Raft), +2 (HTTP)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON line with the bootstrap string and the nodes."
    ),
    secure: bool = typer.Option(
        False,
        "--secure",
        help="TLS (and authentication) on every port: a CA, node certificates and a superuser "
        "password made once under <data-dir>/security/.",
    ),
) -> None:
    """Start a local cluster, wait until it is ready, print the bootstrap string; Ctrl-C stops it.

    Examples:

      freshet cluster up                               # 3 nodes, ./freshet-data, ports 9092-9114

      freshet cluster up --nodes 1 --base-port 19092 --data-dir /tmp/f1

      freshet cluster up --secure                      # prints how to connect (--tls-ca ...)
    """
    from freshet.server.tools import local_cluster
    try:
        code = local_cluster.run(nodes, data_dir, base_port, as_json, secure=secure)
    except local_cluster.ClusterUsageError as error:
        print(f"freshet cluster up: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    raise typer.Exit(code)


@app.command("status")
def status(
    bootstrap: common.Bootstrap = common.DEFAULT_BOOTSTRAP,
    output: common.Output = common.OutputFormat.table,
) -> None:
    """Active controller, quorum voters (leader, lag), brokers (address, rack, active/fenced), and
    counts of topics, partitions, under-replicated and offline partitions.

    Examples:

      freshet cluster status

      freshet cluster status --output json
    """
    admin = common.make_admin(bootstrap)
    with common.reporting_errors():
        cluster = admin.describe_cluster()
        quorum, quorum_error = _describe_quorum(bootstrap)
    document = _status_document(cluster, quorum, quorum_error)
    if output == common.OutputFormat.json:
        common.print_json(document)
        return
    _print_status(cluster, quorum, quorum_error, document["brokers"])


def _describe_quorum(bootstrap: str):
    """(quorum, None), or (None, the error's message) when the quorum cannot be described."""
    try:
        # Forwarded to the Raft leader; a quorum without a leader must not hide the rest.
        return common.make_admin(bootstrap, timeout_ms=5000).describe_quorum(), None
    except errors.FreshetError as error:
        return None, error.message


def _status_document(cluster, quorum, quorum_error: str | None) -> dict:
    """The INTERFACE.md `cluster status --output json` document (the table view reads its
    brokers too)."""
    return {
        "cluster_id": cluster.cluster_id,
        "active_controller": cluster.controller_id,
        "quorum": {
            "leader": quorum.leader_id if quorum else None,
            "term": quorum.term if quorum else None,
            "voters": [
                {"id": v.node_id, "address": v.raft_address, "lag": v.lag, "is_connected": v.is_connected}
                for v in (quorum.voters if quorum else [])
            ],
            "has_quorum": quorum.has_quorum if quorum else False,
            "error": quorum_error,
        },
        "brokers": [
            {
                "id": b.node.node_id,
                "address": b.node.address,
                "rack": b.node.rack,
                "state": "fenced" if b.state == "fenced" else "active",
                "is_shutting_down": b.state == "controlled_shutdown",
                "broker_epoch": b.broker_epoch,
                "disk_state": b.disk_state,
                "disk_free_bytes": b.disk_free_bytes,
                "disk_total_bytes": b.disk_total_bytes,
            }
            for b in cluster.brokers
        ],
        "topics": cluster.topic_count,
        "partitions": cluster.partition_count,
        "under_replicated_partitions": cluster.under_replicated_partitions,
        "offline_partitions": cluster.offline_partitions,
        "metadata_offset": cluster.metadata_offset,
    }


def _print_status(cluster, quorum, quorum_error: str | None, brokers: list[dict]) -> None:
    """The table view: summary lines, the quorum's voters, the brokers (`brokers` as in the
    JSON document)."""
    controller = cluster.controller_id if cluster.controller_id is not None else "none"
    common.print_text(
        f"cluster {cluster.cluster_id}  active controller: {controller}  metadata offset: {cluster.metadata_offset}"
    )
    common.print_text(
        f"topics: {cluster.topic_count}  partitions: {cluster.partition_count}  "
        f"under-replicated: {cluster.under_replicated_partitions}  offline: {cluster.offline_partitions}"
    )
    if quorum is None:
        common.print_text(f"quorum: unknown ({quorum_error})")
    else:
        common.print_table(
            ["VOTER", "RAFT-ADDRESS", "ROLE", "LAG"],
            [
                (v.node_id, v.raft_address, "leader" if v.node_id == quorum.leader_id else "follower", v.lag)
                for v in quorum.voters
            ],
            title=f"quorum: term {quorum.term}, leader {quorum.leader_id if quorum.leader_id is not None else 'none'}",
        )
    common.print_table(
        ["BROKER", "ADDRESS", "RACK", "STATE", "DISK"],
        [
            (
                b["id"],
                b["address"],
                b["rack"],
                common.Styled(
                    b["state"] + (" (shutting down)" if b["is_shutting_down"] else ""),
                    "red" if b["state"] == "fenced" else ("yellow" if b["is_shutting_down"] else "green"),
                ),
                _disk_cell(b),
            )
            for b in brokers
        ],
        title="brokers",
    )


def _disk_cell(broker: dict) -> common.Styled | str:
    """"ok, 1.2 GiB free of 10.0 GiB" / "FULL, ..." (red), or "unknown" without a report."""
    if broker["disk_state"] is None:
        return "unknown"
    free, total = broker["disk_free_bytes"], broker["disk_total_bytes"]
    text = f"{broker['disk_state']}, {free / 2**30:.2f} GiB free of {total / 2**30:.2f} GiB"
    return common.Styled(text, "red" if broker["disk_state"] == "full" else "green")
