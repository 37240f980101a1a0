"""cancel_and_wait: the one way the node's loops stop their background tasks."""

from __future__ import annotations

import asyncio

import pytest
from freshet.server.tasks import cancel_and_wait


def test_cancels_every_task_skips_none_and_swallows_their_cancellation():
    async def scenario():
        forever = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(2)]
        await asyncio.sleep(0)
        await cancel_and_wait(forever[0], None, forever[1])
        return forever

    tasks = asyncio.run(scenario())
    assert all(task.cancelled() for task in tasks)


def test_an_error_a_task_ended_with_is_not_hidden():
    async def failing():
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("cleanup failed")

    async def scenario():
        task = asyncio.create_task(failing())
        await asyncio.sleep(0)
        await cancel_and_wait(task)

    with pytest.raises(RuntimeError, match="cleanup failed"):
        asyncio.run(scenario())
