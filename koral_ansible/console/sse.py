"""Server-sent events: a polling source turned into a ``text/event-stream`` response.

The sources are files and the state database other processes (CLI commands, job workers) write,
so the stream polls them (every :data:`POLL_SECONDS`) and sends what changed; EventSource
reconnects by itself and the page asks again from what it already has.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.responses import StreamingResponse

POLL_SECONDS = 1.0
#: A comment line now and then keeps proxies and the browser from timing the stream out.
KEEPALIVE_POLLS = 15

#: ``poll()`` returns the events to send now as (event name, data) pairs, and whether to stop.
Poll = Callable[[], tuple[list[tuple[str, Any]], bool]]


def message(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


async def _frames(poll: Poll, interval: float) -> AsyncIterator[str]:
    idle = 0
    while True:
        items, done = await asyncio.to_thread(poll)
        for event, data in items:
            yield message(event, data)
        if done:
            yield message("end", {})
            return
        idle = 0 if items else idle + 1
        if idle >= KEEPALIVE_POLLS:
            idle = 0
            yield ": keepalive\n\n"
        await asyncio.sleep(interval)


def stream(poll: Poll, interval: float = POLL_SECONDS) -> StreamingResponse:
    return StreamingResponse(
        _frames(poll, interval),
        media_type="text/event-stream",
        headers={"x-accel-buffering": "no"},
    )
