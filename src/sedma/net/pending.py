"""The requests a connection is waiting on: who gets each outcome, and when each one expires.

A request's outcome goes to a :data:`Reply` callback, called exactly once from whatever settles
it (its answer's frame, its deadline, the connection closing), so the look-up's 20 queries need
no task, future or loop turn each. Expiry costs no timer per request either: deadlines sit in a
dict and one timer is armed for the earliest, since answers nearly always come long before it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import Any

from sedma.net.types import PeerError

# How a request's outcome is delivered: (answer body, None) or (None, error), exactly once.
Reply = Callable[[dict[str, Any] | None, BaseException | None], None]
TIMER_SLACK = 0.002  # seconds: a request this close to its deadline at a sweep has expired


class Pending:
    """Outstanding requests of one connection by id, with their replies and deadlines."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str) -> None:
        self._loop, self._where = loop, where  # ``where`` names the peer in timeout errors
        self._replies: dict[int, Reply] = {}
        self._deadlines: dict[int, tuple[float, str, float]] = {}  # id -> (at, method, timeout)
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_at = math.inf

    def __len__(self) -> int:
        return len(self._replies)

    def add(self, req_id: int, method: str, timeout: float, reply: Reply, *, now: float) -> None:
        """Wait for ``req_id``: its outcome goes to ``reply``, a timeout error after ``timeout`` s."""
        self._replies[req_id] = reply
        at = now + timeout
        self._deadlines[req_id] = (at, method, timeout)
        if at < self._sweep_at:
            self._arm(at)

    def pop(self, req_id: int) -> Reply | None:
        """Stop waiting for ``req_id`` (answered or abandoned); its reply if it was still pending."""
        self._deadlines.pop(req_id, None)
        return self._replies.pop(req_id, None)

    def fail_all(self, exc: BaseException) -> None:
        """Settle every outstanding request with ``exc`` (the connection is gone)."""
        replies = list(self._replies.values())
        self._replies.clear()
        self._deadlines.clear()
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep, self._sweep_at = None, math.inf
        for reply in replies:
            reply(None, exc)

    def _arm(self, at: float) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
        self._sweep_at, self._sweep = at, self._loop.call_at(at, self._expire_due)

    def _expire_due(self) -> None:
        """Fail every request past its deadline, then wait for the next deadline."""
        self._sweep, self._sweep_at = None, math.inf
        now = self._loop.time() + TIMER_SLACK  # loop timers may fire a hair early
        due = [req_id for req_id, (at, _, _) in self._deadlines.items() if at <= now]
        for req_id in due:
            _, method, timeout = self._deadlines.pop(req_id)
            reply = self._replies.pop(req_id, None)
            if reply is not None:
                reply(None, PeerError(f"{method} to {self._where} timed out after {timeout}s"))
        if self._deadlines:
            self._arm(min(at for at, _, _ in self._deadlines.values()))


def settle(fut: asyncio.Future[dict[str, Any]]) -> Reply:
    """A :data:`Reply` that settles ``fut`` (unless it was cancelled meanwhile)."""

    def reply(body: dict[str, Any] | None, exc: BaseException | None) -> None:
        if fut.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            fut.cancel()  # a future cannot hold a CancelledError as its exception
        elif exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(body or {})

    return reply


def deliver(task: asyncio.Future[dict[str, Any]], reply: Reply) -> None:
    """Hand a finished task's outcome (result, error or cancellation) to ``reply``."""
    if task.cancelled():
        reply(None, asyncio.CancelledError())
    elif (exc := task.exception()) is not None:
        reply(None, exc)
    else:
        reply(task.result(), None)
