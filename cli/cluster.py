"""`freshet cluster up`: a local cluster of combined nodes in the foreground (thin; the supervisor
is freshet.server.local_cluster)."""

from __future__ import annotations

import sys

import typer

app = typer.Typer(name="cluster", help="Run and inspect Freshet clusters.", no_args_is_help=True)


@app.command("up")
def up(
    nodes: int = typer.Option(3, "--nodes", help="Number of combined nodes (odd)."),
    data_dir: str = typer.Option("./freshet-data", "--data-dir", help="Where the nodes keep their data and logs."),
    base_port: int = typer.Option(9092, "--base-port", help="Node i listens on base+(i-1)*10 (gRPC), +1 (Raft), +2 (HTTP)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON line with the bootstrap string and the nodes."),
) -> None:
    """Start a local cluster, wait until it is ready, print the bootstrap string; Ctrl-C stops it."""
    from freshet.server import local_cluster

    try:
        code = local_cluster.run(nodes, data_dir, base_port, as_json)
    except local_cluster.ClusterUsageError as error:
        print(f"freshet cluster up: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    raise typer.Exit(code)
