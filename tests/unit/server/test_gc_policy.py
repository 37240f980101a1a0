"""The node's garbage-collector policy (server/gc_policy.py): the start-up heap is frozen unless
FRESHET_GC_FREEZE=off, and every collection is a pause in the node's metrics."""

from __future__ import annotations

import gc

import pytest
from freshet.server.gc_policy import GC_FREEZE_ENV, GcPauses, freeze_start_up_heap
from prometheus_client import CollectorRegistry


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_start_up_heap_is_frozen_so_collections_skip_it(unfrozen):
    survivors = [[index] for index in range(10_000)]        # tracked objects alive "at start-up"
    gc.collect()
    assert any(item is survivors[0] for item in gc.get_objects(generation=2)), "an old object is in generation 2"
    frozen = freeze_start_up_heap({})
    assert frozen == gc.get_freeze_count() >= len(survivors)
    assert not any(item is survivors[0] for item in gc.get_objects(generation=2)), "frozen: no collection walks it"


def test_freezing_can_be_turned_off(unfrozen):
    assert freeze_start_up_heap({GC_FREEZE_ENV: "OFF"}) == 0
    assert gc.get_freeze_count() == 0


def test_every_collection_is_a_pause_in_the_metrics_until_closed():
    registry = CollectorRegistry()
    pauses = GcPauses(registry)
    try:
        cycle = [None]
        cycle[0] = cycle                                      # garbage only the cyclic collector frees
        del cycle
        gc.collect(2)
        assert registry.get_sample_value("freshet_python_gc_pause_seconds_count", {"generation": "2"}) >= 1
        assert registry.get_sample_value("freshet_python_gc_pause_seconds_sum", {"generation": "2"}) > 0
        assert registry.get_sample_value("freshet_python_gc_collected_objects_total", {"generation": "2"}) >= 1
    finally:
        pauses.close()
    counted = registry.get_sample_value("freshet_python_gc_pause_seconds_count", {"generation": "2"})
    gc.collect(2)
    assert registry.get_sample_value("freshet_python_gc_pause_seconds_count", {"generation": "2"}) == counted
