"""One topic check for the controller's planning and the state machine (metadata/topic_rules.py).

Goal: a topic the controller refuses to plan is refused by the state machine with the same code and
message, and vice versa, so a command proposed by a controller of another version (or built by
hand) meets the same rules. Method: each bad name or config goes through plan_topic (raises
ControllerRequestError) and through a CreateTopic command applied by the state machine (returns a
result with an error code); both must report the same code and message.
"""

from __future__ import annotations

import pytest
from freshet.metadata import commands as c
from freshet.metadata import configs
from freshet.metadata.controller import plan_topic
from freshet.metadata.errors import ControllerRequestError

from tests.support.metadata_script import EPOCH, E, Script

DEFAULTS = configs.broker_config({}, {})


def _cluster() -> Script:
    s = Script()
    s.claim()
    s.broker(1)
    s.topic("a.b", [([1], [1], 1)])
    return s


@pytest.mark.parametrize(
    ("name", "topic_configs", "code"),
    [
        ("", {}, E.INVALID_TOPIC),
        ("x" * 250, {}, E.INVALID_TOPIC),
        ("..", {}, E.INVALID_TOPIC),
        ("bad/name", {}, E.INVALID_TOPIC),
        ("a.b", {}, E.TOPIC_ALREADY_EXISTS),
        ("a_b", {}, E.INVALID_TOPIC),
        ("fine", {"no.such.key": "1"}, E.INVALID_CONFIG),
        ("fine", {"retention.ms": "soon"}, E.INVALID_CONFIG),
        ("fine", {"broker.session.timeout.ms": "9000"}, E.INVALID_CONFIG),
    ],
)
def test_planning_and_applying_refuse_a_topic_with_the_same_code_and_message(name, topic_configs, code):
    s = _cluster()
    with pytest.raises(ControllerRequestError) as planned:
        plan_topic(s.image, name, 1, 1, [], topic_configs, DEFAULTS)
    assert planned.value.error_code == code
    applied = s.fails(c.create_topic(s.rid(), EPOCH, b"n" * 16, name, [([1], [1], 1)], topic_configs), code)
    assert applied.error_message == planned.value.message
