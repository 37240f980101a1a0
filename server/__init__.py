"""Freshet server: the node process, as sub-packages by concern.

A produce request's path: `broker.service` (gRPC) -> `broker.data_plane` (facade) ->
`broker.produce` -> `replication.partition` (purgatory) -> `freshet.storage.log`; followers get the
batch through `replication.leader_sessions` and acknowledge it through `replication.fetcher`.

Packages (each `__init__` says what it owns and may import; pyproject's import-linter contracts
enforce the arrows):

    replication/  the pure replication core, a hosted partition's run-time state and purgatories,
                  the leader's push sessions and the follower's fetcher (imports no broker/groups)
    broker/       the data plane (roles, produce, fetch, AlterPartition, housekeeping), hosted
                  replicas, producer ids, registration/heartbeats, the Broker gRPC service
    groups/       consumer groups: state, assignors, offsets records, coordinator, runtime, service
    cluster/      the node's link to the metadata quorum: controller channels, KIP-590
                  forwarding, the published MetadataImage (imports no broker/controller/groups)
    controller/   the active-controller role and the Controller gRPC service
    http/         /metrics /healthz /readyz /status and the web console
    tools/        entry points the CLI runs besides `server start`: `cluster up`, the pod
                  environment (`--from-env`), the storage benchmark

Top level: `node.py` (wiring and lifecycle), `node_security.py` (the node's TLS material,
Authorizer, Authenticator and HTTP listeners, which node.py wires into every front-end), `config.py` (NodeConfig), `limits.py` (every bound),
`clock.py` (injected time), `errors.py` + `status.py` (domain errors and the single table mapping
them to the wire), `metrics.py`, `tasks.py`.

May import every layer below it (storage, metadata, wire types); never the cli.
"""
