"""Consumer groups: membership, assignment and committed offsets.

Owns `state` (a group's members, generations and KIP-848-style reconciliation), `assignors`
(range, uniform), `records` (the `__consumer_offsets` record codec and coordinator hash),
`coordinator` (groups whose offsets partition this broker leads, rebuilt from the log),
`classic_coordinator` (the coordinator's Kafka classic-protocol operations: JoinGroup, SyncGroup,
Heartbeat, LeaveGroup), `classic` (a classic group's pure decisions), `lag` (consumer lag in
time of the groups coordinated here, refreshed from the partition leaders),
`runtime` (wiring to the data plane's internal API) and `service` (the Group gRPC servicer).

May import: the server's top level, cluster, freshet.metadata (image), freshet.storage (batch
codec), wire types. It reaches the data plane only through the internal API `runtime` is given.
"""
