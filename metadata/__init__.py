"""Freshet metadata: the replicated cluster state that replaces ZooKeeper.

Owns the command types, the pure deterministic state machine, the immutable MetadataImage read by
every other thread, the snapshot codec, the quorum adapter over pysyncobj (metadata/quorum.py is
the only module that imports pysyncobj) and the active-controller logic.

Imports no grpc, storage, server, client or cli.
"""
