"""Freshet client SDK: Producer, Consumer and Admin over gRPC.

Owns the public names of `freshet.client`. Everything a user needs is importable from here:

    from freshet.client import Admin, Consumer, Producer, TopicPartition
    from freshet.client.errors import FreshetError, DeliveryTimeoutError

Imports the wire contract (`freshet.v1`), grpc and storage's batch codec only (`record_batch`,
`compression`, `errors`); never server or metadata code (import-linter contract).

Thread-safety: see each class; `Producer` is thread-safe, a `Consumer` is polled from one thread.
"""

from freshet.client import errors
from freshet.client.admin import Admin
from freshet.client.consumer import Consumer, ConsumerRebalanceListener
from freshet.client.producer import Producer
from freshet.client.structs import ConsumerRecord, Node, OffsetAndTimestamp, RecordMetadata, TopicPartition

__all__ = [
    "Admin",
    "Consumer",
    "ConsumerRebalanceListener",
    "ConsumerRecord",
    "Node",
    "OffsetAndTimestamp",
    "Producer",
    "RecordMetadata",
    "TopicPartition",
    "errors",
]
