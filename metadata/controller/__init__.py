"""The active controller's decisions, as pure functions of (image, broker sessions, now): commands.

A facade: the controller is three modules, cut by what each decides, and this package re-exports
their public names so that `from freshet.metadata import controller` and
`from freshet.metadata.controller import X` keep working for the server and the tests.

    broker_sessions.py  ControllerCore: sessions, heartbeats, expiry, fencing/unfencing,
                        controlled shutdown, registration, and `poll` (the next action to propose)
    elections.py        eligibility, leader elections, ISR changes (AlterPartition), preferred
                        and unclean elections, reassignment steps: pure functions of the image
    topic_planning.py   admin requests: create topics and partitions (placement), config changes
                        and descriptions, request ids
    balancer.py         the replica balancer's planner (pure) and --generate on it
    auto_balance.py     when the active controller runs it: triggers, batches, the wait

The server (server/active_controller.py) proposes the commands and feeds the results back as new
images. Time enters only through the injected `Clock` (freshet.metadata.clock); request ids come
from an injected factory, so tests are deterministic.

Imports only the standard library, freshet.metadata and wire types. Forbidden: grpc, storage,
server, client, cli, pysyncobj.
Thread-safety: module functions are pure and thread-safe. `ControllerCore` and `BrokerSession`
are not thread-safe: one owner (the node's event loop) calls them.
"""

from freshet.metadata.clock import Clock
from freshet.metadata.controller.auto_balance import balance_plan
from freshet.metadata.controller.balancer import Move, broker_loads, generate_reassignment, plan_moves
from freshet.metadata.controller.broker_sessions import (
    CHANGES_PER_BATCH_MAX,
    ActionKind,
    BrokerSession,
    ControllerAction,
    ControllerCore,
    ControllerSettings,
    HeartbeatReply,
)
from freshet.metadata.controller.elections import (
    PartitionChange,
    alter_partition_change,
    available_brokers,
    broker_needing_repair,
    changes_without_broker,
    check_reassignment_targets,
    elect_leader,
    election_order,
    imbalanced_brokers,
    is_available,
    is_unclean_allowed,
    leaderless_elections,
    placement_brokers,
    preferred_election,
    preferred_leader_change,
    reassignment_completions,
    unclean_election,
)
from freshet.metadata.controller.topic_planning import (
    INTERNAL_TOPIC_PREFIX,
    REQUEST_ID_PREFIX_LENGTH_MAX,
    ConfigSource,
    DescribedConfig,
    TopicPlan,
    all_partitions,
    check_config_changes,
    check_request_id,
    config_resource_scope,
    describe_configs,
    is_internal_topic,
    item_request_id,
    own_config_values,
    partition_of,
    plan_partitions,
    plan_topic,
    topic_by_name,
)

__all__ = [
    "Clock",
    "Move",
    "balance_plan",
    "broker_loads",
    "generate_reassignment",
    "plan_moves",
    "ActionKind",
    "BrokerSession",
    "CHANGES_PER_BATCH_MAX",
    "ConfigSource",
    "ControllerAction",
    "ControllerCore",
    "ControllerSettings",
    "DescribedConfig",
    "HeartbeatReply",
    "INTERNAL_TOPIC_PREFIX",
    "PartitionChange",
    "REQUEST_ID_PREFIX_LENGTH_MAX",
    "TopicPlan",
    "all_partitions",
    "alter_partition_change",
    "available_brokers",
    "broker_needing_repair",
    "changes_without_broker",
    "check_config_changes",
    "check_reassignment_targets",
    "check_request_id",
    "config_resource_scope",
    "own_config_values",
    "describe_configs",
    "elect_leader",
    "election_order",
    "imbalanced_brokers",
    "is_available",
    "is_internal_topic",
    "is_unclean_allowed",
    "item_request_id",
    "leaderless_elections",
    "placement_brokers",
    "partition_of",
    "plan_partitions",
    "plan_topic",
    "preferred_election",
    "preferred_leader_change",
    "reassignment_completions",
    "topic_by_name",
    "unclean_election",
]
