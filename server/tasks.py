"""Small asyncio helpers shared by the node's background loops.

Imports: asyncio only. Thread-safety: call on the event loop that runs the tasks.
"""

from __future__ import annotations

import asyncio
import logging

logger = logging.getLogger(__name__)


async def cancel_and_wait(*tasks: asyncio.Task | None) -> None:
    """Cancel every task given (None is skipped) and wait until each has finished.

    A task's CancelledError is the expected end and is swallowed; any other exception it ends
    with propagates, as does cancellation of the caller itself.
    """
    running = [task for task in tasks if task is not None]
    for task in running:
        task.cancel()
    for task in running:
        try:
            await task
        except asyncio.CancelledError:
            if asyncio.current_task() is not None and asyncio.current_task().cancelling():
                raise


async def cancel_quietly(*tasks: asyncio.Task | None) -> None:
    """Like `cancel_and_wait`, but a task that ended with an error is logged, not raised, and
    every task is waited for: for shutdown paths where one task's error must not stop the rest
    (for example the high-watermark checkpoint that follows)."""
    for task in tasks:
        try:
            await cancel_and_wait(task)
        except Exception:
            logger.exception("task %s ended with an error", task.get_name() if task is not None else None)
