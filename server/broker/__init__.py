"""The broker role: hosted replicas, the data plane and the Broker gRPC service.

Owns `hosted_replicas` (which replicas this broker hosts, opened and deleted as metadata says),
`data_plane` (Kafka's HostedReplicas: a facade over `roles`, `produce`, `fetch`, `alter_partition`
and `housekeeping`), `producer_ids` (blocks of producer ids from the controller), `lifecycle`
(registration, heartbeats, controlled shutdown) and `service` (the Broker gRPC servicer).

May import: replication, cluster, the server's top level, freshet.storage, freshet.metadata, wire
types. Never groups, controller or http.
"""
