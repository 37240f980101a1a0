"""Replication: how a partition's replicas agree, from the pure decisions to the streams.

Owns `core` (pure: high watermark, LeaderState and its ISR decisions, push cursors, divergence
and truncation checks; no asyncio, grpc, time or random), `partition` (one hosted replica at run
time: role, epochs, high watermark, the produce and fetch purgatories), `leader_sessions` (the
leader's ReplicaFetch service pushing batches to followers) and `fetcher` (the follower's
streams to its leaders).

May import: freshet.storage, freshet.metadata (image types), wire types, and the server's top
level (status, errors, metrics, limits, clock, tasks, cluster). Never broker, groups, controller
or http: what the sessions and the fetcher need of the broker is the `ReplicaHost` protocol.
"""
