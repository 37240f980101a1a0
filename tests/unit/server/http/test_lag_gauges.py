"""/metrics: the consumer lag in time gauges the collector reads from the groups view.

Goal: freshet_consumer_group_lag_seconds / _records / _alert per (group, topic) coordinated on the
node, topics not measured yet left out of the value gauges, the alert 0/1.
Method: NodeCollector over a NodeView whose groups() answers fixed entries (as GroupRuntime's
console_groups builds them), rendered with prometheus_client's text format.
"""

from __future__ import annotations

from freshet.metadata.image import EMPTY_IMAGE
from freshet.server.http.server import NodeCollector, NodeView
from prometheus_client import CollectorRegistry, generate_latest


def _view(groups):
    return NodeView(
        image=lambda: EMPTY_IMAGE, readiness=lambda: (True, ""), status=dict, is_active_controller=lambda: False,
        elections=lambda: (0, 0), fenced_by_this_controller=lambda: 0, hosted=lambda: (0, 0),
        is_broker_fenced=lambda: False, groups=lambda: groups,
    )


def test_lag_time_gauges_per_group_and_topic():
    groups = [
        {"group": "billing", "members": 1, "lag": 30, "lag_topics": [
            {"topic": "orders", "lag_seconds": 184.5, "lag_records": 30, "is_alerting": True},
            {"topic": "audit", "lag_seconds": None, "lag_records": None, "is_alerting": False},
        ]},
        {"group": "idle", "members": 0, "lag": 0, "lag_topics": [
            {"topic": "orders", "lag_seconds": 0.0, "lag_records": 0, "is_alerting": False},
        ]},
    ]
    registry = CollectorRegistry()
    registry.register(NodeCollector(_view(groups)))
    text = generate_latest(registry).decode()
    assert 'freshet_consumer_group_lag_seconds{group="billing",topic="orders"} 184.5' in text
    assert 'freshet_consumer_group_lag_seconds{group="idle",topic="orders"} 0.0' in text
    assert 'freshet_consumer_group_lag_seconds{group="billing",topic="audit"}' not in text
    assert 'freshet_consumer_group_lag_records{group="billing",topic="orders"} 30.0' in text
    assert 'freshet_consumer_group_lag_alert{group="billing",topic="orders"} 1.0' in text
    assert 'freshet_consumer_group_lag_alert{group="billing",topic="audit"} 0.0' in text
    assert 'freshet_consumer_group_lag_alert{group="idle",topic="orders"} 0.0' in text
