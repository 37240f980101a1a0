"""The controller role: the active controller on the Raft leader and the Controller gRPC service.

Owns `active` (claiming the role, broker sessions and fencing, proposals, admin operations) and
`service` (the Controller servicer: answered locally, forwarded or refused per RPC).

May import: cluster, the server's top level, freshet.metadata, wire types. Never broker,
replication, groups or http.
"""
