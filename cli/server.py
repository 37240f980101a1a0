"""`freshet server start`: run one node in the foreground (thin: parse, build NodeConfig, run).

Flags are INTERFACE.md's ("Running nodes"); every node key can also come from `--config
FILE.toml`, `--config server.properties` (Kafka's names, freshet.server.properties) or `--set
key=value` (precedence: flags > --set > file > defaults; see freshet.server.config). A bad value
exits 2 with one line naming the key; every Kafka setting that has no effect prints one warning
line on stderr.
"""

from __future__ import annotations

import sys

import typer

app = typer.Typer(name="server", help="Run a Freshet node.", no_args_is_help=True)
# A module-level default: a repeatable (list) option in the signature trips bugbear's B008.
_SET_OPTION = typer.Option(None, "--set", help="key=value, repeatable (overrides --config).")


@app.command("start")
def start(
    node_id: int | None = typer.Option(None, "--node-id", help="This node's id (unique in the cluster)."),
    data_dir: str | None = typer.Option(None, "--data-dir", help="The node's data directory."),
    listen: str | None = typer.Option(None, "--listen", help="gRPC listener, HOST:PORT."),
    controller_quorum: str | None = typer.Option(
        None, "--controller-quorum", help="The metadata voters: ID@HOST:RAFTPORT,... (an odd number)."
    ),
    raft_listen: str | None = typer.Option(None, "--raft-listen", help="Raft listener (default: this node's quorum entry)."),
    http_listen: str | None = typer.Option(None, "--http-listen", help="HTTP listener (default: --listen port + 2)."),
    advertised: str | None = typer.Option(None, "--advertised", help="Where clients and nodes reach this node (default: --listen)."),
    kafka_listen: str | None = typer.Option(
        None, "--kafka-listen", help="Kafka protocol listener, HOST:PORT (default: none; `cluster up` uses port + 3)."
    ),
    kafka_advertised: str | None = typer.Option(
        None, "--kafka-advertised", help="Where Kafka clients reach this broker (default: --kafka-listen)."
    ),
    roles: str | None = typer.Option(None, "--roles", help="broker, controller, or broker,controller (default)."),
    rack: str | None = typer.Option(None, "--rack", help="The broker's rack, for rack-aware replica placement."),
    controller_listeners: str | None = typer.Option(
        None, "--controller-listeners", help="Controllers' gRPC endpoints ID@HOST:PORT,... (default: Raft port - 1)."
    ),
    cluster_secret_file: str | None = typer.Option(
        None, "--cluster-secret-file", help="File holding the cluster secret (the Raft password)."
    ),
    config_file: str | None = typer.Option(
        None, "--config", help="A TOML file of settings, or Kafka's server.properties (by extension or content)."
    ),
    set_values: list[str] | None = _SET_OPTION,
    from_env: bool = typer.Option(
        False,
        "--from-env",
        help="Take identity and quorum from a Kubernetes StatefulSet pod's environment "
        "(POD_NAME, FRESHET_SERVICE, FRESHET_QUORUM_REPLICAS, ...; see deploy/README.md). Flags still win.",
    ),
) -> None:
    """Run a node in the foreground; SIGTERM/SIGINT stop it cleanly (controlled shutdown).

    Example: freshet server start --node-id 1 --data-dir ./n1 --listen 127.0.0.1:9092
    --controller-quorum 1@127.0.0.1:9093
    """
    import os

    from freshet.server import node
    from freshet.server.config import load_node_config
    from freshet.server.errors import NodeConfigError
    from freshet.server.tools.pod_env import pod_identity

    flags = {
        "node.id": node_id,
        "data.dir": data_dir,
        "listen": listen,
        "controller.quorum": controller_quorum,
        "raft.listen": raft_listen,
        "http.listen": http_listen,
        "advertised": advertised,
        "kafka.listen": kafka_listen,
        "kafka.advertised": kafka_advertised,
        "roles": roles,
        "rack": rack,
        "controller.listeners": controller_listeners,
        "cluster.secret.file": cluster_secret_file,
    }
    try:
        if from_env:
            identity = pod_identity(os.environ)
            for key, value in identity.flags.items():
                if flags.get(key) is None:
                    flags[key] = value
            config_file = config_file or identity.config_file
        config = load_node_config(flags, set_values or [], config_file)
    except NodeConfigError as error:
        print(f"freshet server start: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    for warning in config.config_warnings:
        print(f"freshet server start: warning: {warning}", file=sys.stderr)
    raise typer.Exit(node.run(config))
