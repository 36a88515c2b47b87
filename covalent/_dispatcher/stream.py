"""Committed transitions and nodes' output, fanned out to subscribers: the live event
stream of the UI and of ``covalent logs -f``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


class EventHub:
    """Committed transitions, fanned out to subscribers (the UI's live stream), and
    what running nodes write (dicts with ``"type": "output"``, published just before
    the transitions of the same turn).

    A subscriber is a bounded queue; one that falls behind loses events and gets a
    ``{"lagged": True}`` marker instead, so a slow browser never slows the dispatcher.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(self.size)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(queue)

    def publish(self, transitions: Iterable[Any]) -> None:
        """Send committed transitions or output events (dicts) to every subscriber."""
        for queue in self.subscribers:
            for event in transitions:
                try:
                    queue.put_nowait(event)
                except asyncio.QueueFull:
                    _replace_with_lag_marker(queue)
                    break


def _replace_with_lag_marker(queue: asyncio.Queue[dict[str, Any]]) -> None:
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait({"lagged": True})
