"""The rules a topic and its configs must satisfy, written once for the controller and the state
machine.

Owns the topic name rules (Kafka's: legal characters, length, not "."/"..", no '.'/'_' collision
with an existing topic, not existing already) and the config checks of CreateTopic and
AlterConfigs. The controller checks a request with them before proposing (and raises
ControllerRequestError); the state machine checks the command again when it is applied (and
rejects it): both report the same code and message because both read them from here. Each check
returns a `Problem` (or None) instead of raising, so that each caller raises its own error type.

Partition counts and replica lists are checked by each side on its own terms: the controller
against the brokers available for placement, the state machine against the registered brokers of
an explicit assignment; their messages differ on purpose and are part of the tested contract.

Imports only the standard library, freshet.metadata (configs, errors, image) and wire types.
Thread-safe: module state is immutable; functions are pure.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence

from freshet.metadata import configs
from freshet.metadata.errors import InvalidConfigError
from freshet.metadata.image import MetadataImage
from freshet.v1 import common_pb2

E = common_pb2.ErrorCode

TOPIC_NAME_LENGTH_MAX = 249           # Kafka's limit
_TOPIC_NAME = re.compile(r"[a-zA-Z0-9._-]+")


@dataclasses.dataclass(frozen=True, slots=True)
class Problem:
    """Why a request or command is refused: an ErrorCode and a message for people. Thread-safe."""

    code: int
    message: str


def topic_name_problem(name: str) -> str | None:
    """What is wrong with `name` as a topic name by Kafka's rules, or None when it is legal."""
    if not name:
        return "topic name is empty"
    if len(name) > TOPIC_NAME_LENGTH_MAX:
        return f"topic name is {len(name)} characters; the limit is {TOPIC_NAME_LENGTH_MAX}"
    if name in (".", ".."):
        return f"topic name cannot be {name!r}"
    if _TOPIC_NAME.fullmatch(name) is None:
        return f"topic name {name!r} may contain only ASCII letters, digits, '.', '_' and '-'"
    return None


def colliding_topic(image: MetadataImage, name: str) -> str | None:
    """An existing topic whose name equals `name` once '.' and '_' are identified, or None.

    Kafka: '.' and '_' map to the same metric name, so "a.b" and "a_b" cannot both exist.
    """
    if "." not in name and "_" not in name:
        return None
    normalized = name.replace(".", "_")
    for existing in image.topic_ids_by_name:
        if existing != name and existing.replace(".", "_") == normalized:
            return existing
    return None


def new_topic_name_problem(image: MetadataImage, name: str) -> Problem | None:
    """Whether a topic called `name` may be created in `image`, in Kafka's order: the name rules
    (INVALID_TOPIC), that it does not exist (TOPIC_ALREADY_EXISTS), that it does not collide with
    an existing name (INVALID_TOPIC). None when it may."""
    problem = topic_name_problem(name)
    if problem is not None:
        return Problem(E.INVALID_TOPIC, problem)
    if name in image.topic_ids_by_name:
        return Problem(E.TOPIC_ALREADY_EXISTS, f"topic {name!r} already exists")
    colliding = colliding_topic(image, name)
    if colliding is not None:
        return Problem(
            E.INVALID_TOPIC, f"topic {name!r} collides with existing topic {colliding!r} ('.' and '_' are equivalent)"
        )
    return None


def config_problem(
    scope: configs.ConfigScope, to_set: Mapping[str, str], to_delete: Sequence[str] = ()
) -> Problem | None:
    """Whether `to_set` may be set and `to_delete` deleted at `scope` (keys checked in sorted
    order, set before deleted): INVALID_CONFIG naming the first bad key, or None."""
    try:
        configs.validate_entries(scope, sorted(to_set.items()))
        configs.validate_delete_keys(scope, sorted(to_delete))
    except InvalidConfigError as error:
        return Problem(E.INVALID_CONFIG, str(error))
    return None
