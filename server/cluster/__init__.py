"""The node's link to the metadata quorum, shared by every role.

Owns `channels` (gRPC channels to the controllers, KIP-590 forwarding to the active controller)
and `publisher` (the node's current MetadataImage: from the local voter or a WatchMetadata stream,
with listeners).

May import: the server's top level, freshet.metadata, wire types. Never broker, replication,
groups, controller or http.
"""
