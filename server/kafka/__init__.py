"""Kafka's binary protocol, a second front-end over the broker's operations (DESIGN.md).

Owns `listener` (the asyncio TCP server: framing, bounds, pipelining, ordered responses), `codec`
(the kio encodings), `apis` (the handler table, dispatch, ApiVersions) and one module per group of
APIs (`metadata_api`, ...). Produce, fetch, offsets and admin call what the gRPC services call: the
data plane, the metadata image and the controller forwarding; record batches pass through byte for
byte. Domain errors become Kafka error codes through `freshet.server.status.kafka_code`, the table
beside the gRPC one.

May import: kio, broker, groups, cluster, the server's top level, freshet.metadata, freshet.storage
(batch header reads), wire types. Never controller or http.
"""
