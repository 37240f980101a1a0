"""Freshet server: the node process.

Wires storage and metadata to the network: node lifecycle, gRPC services, replica manager and
fetchers, produce/fetch purgatories, group coordinator, the single error-to-status table, metrics
and HTTP. May import every layer below it; never the cli.

Modules:
    node.py                 Node: start, serve, controlled shutdown; `serve`/`run` for the CLI
    config.py               NodeConfig from flags, --set, TOML, environment; validation
    errors.py               server domain errors; status.py maps every domain error to the wire
    active_controller.py    the active-controller role (claim, sessions, proposals, admin)
    controller_service.py   the Controller gRPC service: local, forwarded or refused per RPC
    controller_client.py    channels to the controllers and KIP-590 forwarding
    metadata_publisher.py   the node's current image: local voter or WatchMetadata stream
    broker_lifecycle.py     the broker's registration, heartbeats and controlled shutdown
    replica_manager.py      hosted replicas and roles from metadata (the data plane's seam)
    broker_service.py       Broker.Metadata (the data-plane RPCs come with their issue)
    http_server.py          /healthz /readyz /metrics /status
    local_cluster.py        `freshet cluster up`
"""
