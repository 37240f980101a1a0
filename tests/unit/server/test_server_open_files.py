"""The node's side of the segment-file cache: log.open.files.max sizes it, a budget that leaves
no descriptors for sockets is refused at start in one line, and a fatal stop caused by EMFILE says
what was open and what to change.

Goal: an operator who runs out of descriptors gets one readable line naming the limit, the
segment files and the setting, never a traceback or a silent crash loop.
Method: configure_open_files and Node._fatal on an unstarted node object; the descriptor limit is
this process's own (read with resource.getrlimit).
"""

from __future__ import annotations

import errno
import os

import pytest
from freshet.server.errors import NodeStartError
from freshet.server.node import Node, configure_open_files
from freshet.storage.open_files import OPEN_FILES, RESERVED_DESCRIPTORS_MIN, default_budget, descriptor_limit


@pytest.fixture
def restore_budget():
    before = OPEN_FILES.budget
    yield
    OPEN_FILES.configure(before)


def test_zero_derives_the_budget_from_the_limit_and_a_number_sets_it(restore_budget):
    configure_open_files(0)
    assert OPEN_FILES.budget == default_budget(descriptor_limit())
    configure_open_files(100)
    assert OPEN_FILES.budget == 100


def test_a_budget_without_room_for_sockets_is_refused_in_one_line(restore_budget):
    before = OPEN_FILES.budget
    limit = descriptor_limit()
    with pytest.raises(NodeStartError) as caught:
        configure_open_files(limit - RESERVED_DESCRIPTORS_MIN + 1)
    message = str(caught.value)
    assert "log.open.files.max" in message and str(limit) in message and "\n" not in message
    assert OPEN_FILES.budget == before, "nothing changed"


def test_a_fatal_stop_out_of_descriptors_names_the_limit_and_the_setting():
    node = Node.__new__(Node)                  # only _fatal's state: no sockets, no files
    node.fatal = None
    requests = []
    node.request_stop = requests.append
    node._fatal(f"the metadata voter stopped: [Errno 24] {os.strerror(errno.EMFILE)}: 'term'")
    assert node.fatal.startswith("the metadata voter stopped: [Errno 24] Too many open files")
    assert f"the limit is {descriptor_limit()} (ulimit -n)" in node.fatal
    assert "segment files" in node.fatal and "log.open.files.max" in node.fatal
    assert requests == [f"fatal: {node.fatal}"]
    node.fatal = None
    node._fatal("the metadata voter stopped: disk I/O error")
    assert node.fatal == "the metadata voter stopped: disk I/O error"
