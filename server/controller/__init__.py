"""The controller role: the active controller on the Raft leader and the Controller gRPC service.

Owns `active` (claiming the role, periodic work: fencing, elections, proposals), its parts
`heartbeat_streams` (broker registration and sessions) and `admin_requests` (admin operations),
and `service` (the Controller servicer: answered locally, forwarded or refused per RPC).

May import: cluster, the server's top level, freshet.metadata, wire types. Never broker,
replication, groups or http.
"""
