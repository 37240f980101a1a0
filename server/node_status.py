"""What a node says about itself: /readyz (`readiness`) and the /status JSON (`status`).

Read-only functions of a running `Node` (server/node.py), called on the HTTP thread through the
node's view: they read immutable metadata images and plain attributes, never the loop's state
beyond that. Split from `Node` so that the lifecycle class holds the lifecycle.

Imports: freshet.server (publisher kinds, disk descriptions), storage errors.
Thread-safety: see above (read-only).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from freshet.server.broker.disk_watch import describe_disk, readiness_note
from freshet.server.cluster.publisher import QuorumPublisher, WatchPublisher
from freshet.storage.errors import StorageError

if TYPE_CHECKING:
    from freshet.server.node import Node


def readiness(node: Node) -> tuple[bool, str]:
    """(ready, reason) for /readyz."""
    if node.is_stopping:
        return False, "stopping"
    if not node.is_started:
        return False, "starting"
    reasons = []
    publisher = node.publisher
    if node.config.is_controller:
        assert isinstance(publisher, QuorumPublisher) and node.quorum is not None
        if node.quorum.leader_id is None:
            reasons.append("controller: the metadata quorum has no leader")
        elif not publisher.is_caught_up:
            reasons.append("controller: this voter has not caught up with the leader")
    if node.config.is_broker:
        lifecycle = node.lifecycle
        assert lifecycle is not None and publisher is not None
        image = publisher.image
        if not lifecycle.is_registered:
            reasons.append("broker: not registered with the active controller yet")
        elif image.offset < lifecycle.broker_epoch:
            reasons.append(f"broker: metadata at offset {image.offset}, registration at {lifecycle.broker_epoch}")
        elif not lifecycle.is_ready(image):
            reasons.append("broker: fenced")
        elif node.data_plane is not None and not node.data_plane.is_active:
            reasons.append("broker: partition roles not applied yet")
    if reasons:
        return False, "not ready: " + "; ".join(reasons)
    if node.data_plane is not None:
        note = readiness_note(node.data_plane.disk.state())
        if note:
            return True, "ready; " + note
    return True, "ready"


def status(node: Node) -> dict:
    """The /status JSON: this node's view of itself and the cluster."""
    image = node.publisher.image if node.publisher is not None else None
    ready, reason = readiness(node)
    result: dict = {
        "node_id": node.node_id,
        "roles": sorted(node.config.roles),
        "ready": ready,
        "readiness": reason,
        "listen": str(node.config.listen),
        "advertised": str(node.config.advertised),
        "metadata_offset": None if image is None else image.offset,
        "cluster_id": None if image is None else image.cluster_id,
        "controller_id": None if image is None else image.controller_id,
        "controller_epoch": None if image is None else image.controller_epoch,
        "is_active_controller": node.is_active_controller(),
    }
    if node.quorum is not None:
        result["quorum"] = {"leader": node.quorum.leader_id, "term": node.quorum.term, "is_leader": node.quorum.is_leader}
    if node.controller is not None:
        result["controller"] = node.controller.describe()
        if node.controller_service is not None:
            result["controller"]["metadata_watchers"] = node.controller_service.watchers
    if node.lifecycle is not None:
        lifecycle = node.lifecycle
        result["broker"] = {
            "broker_epoch": lifecycle.broker_epoch,
            "incarnation_id": lifecycle.incarnation_id.hex(),
            "is_fenced": lifecycle.is_fenced,
            "heartbeating_to": lifecycle.connected_controller,
            "heartbeat_sessions_opened": lifecycle.sessions_opened,
            "want_shutdown": lifecycle.want_shutdown,
        }
        if isinstance(node.publisher, WatchPublisher):
            result["broker"]["metadata_resyncs"] = node.publisher.resyncs
    if node.hosted_replicas is not None:
        result["replicas"] = [
            {
                "topic": replica.topic,
                "partition": replica.partition,
                "role": replica.role,
                "leader": replica.leader_id,
                "leader_epoch": replica.leader_epoch,
                "log_end_offset": _end_offset(replica.log),
            }
            for _, replica in sorted(node.hosted_replicas.replicas.items())
        ]
    if node.data_plane is not None:
        data_plane = node.data_plane
        result["data_plane"] = {
            "is_active": data_plane.is_active,
            "partitions": data_plane.describe(),
            "follower_streams": sorted(session.replica_id for session in list(data_plane.sessions)),
            "leader_links": sorted(data_plane.fetcher.links),
            "produce_purgatory": data_plane.produce_waiting(),
            "fetch_purgatory": data_plane.fetch_waiting,
        }
        result["disk"] = describe_disk(data_plane.disk.state())
    return result


def _end_offset(log) -> int | None:
    try:
        return log.log_end_offset
    except StorageError:
        return None
