"""Outstanding requests: each outcome delivered once, deadlines kept by one timer, all failed on close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from sedma.net.pending import TIMER_SLACK, Pending, deliver, settle
from sedma.net.types import PeerError


def _recorder() -> tuple[list[tuple[str, Any]], Any]:
    got: list[tuple[str, Any]] = []

    def reply_for(name: str) -> Any:
        return lambda body, exc: got.append((name, body if exc is None else exc))

    return got, reply_for


def test_each_request_expires_at_its_own_deadline_and_answered_ones_never_do() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pending, (got, reply) = Pending(loop, "peer-x"), _recorder()
        t0 = loop.time()
        pending.add(1, "slow", 0.3, reply("slow"), now=t0)  # armed first, expires last
        pending.add(2, "fast", 0.1, reply("fast"), now=t0)  # re-arms the sweep earlier
        pending.add(3, "answered", 0.1, reply("answered"), now=t0)
        answer = pending.pop(3)
        assert answer is not None and pending.pop(3) is None  # popped once
        await asyncio.sleep(0.2)
        assert [name for name, _ in got] == ["fast"] and len(pending) == 1
        assert isinstance(got[0][1], PeerError) and "fast to peer-x timed out after 0.1s" in str(got[0][1])
        await asyncio.sleep(0.2)
        assert [name for name, _ in got] == ["fast", "slow"] and len(pending) == 0
        assert loop.time() - t0 >= 0.3 - TIMER_SLACK

    asyncio.run(main())


def test_closing_fails_every_outstanding_request_once_and_stops_the_timer() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        pending, (got, reply) = Pending(loop, "peer-y"), _recorder()
        for i in range(3):
            pending.add(i, "m", 0.05, reply(f"r{i}"), now=loop.time())
        gone = PeerError("connection closed")
        pending.fail_all(gone)
        await asyncio.sleep(0.1)  # past every deadline: nothing fires a second time
        assert got == [("r0", gone), ("r1", gone), ("r2", gone)] and len(pending) == 0

    asyncio.run(main())


def test_a_cancelled_dial_cancels_the_future_of_its_request() -> None:
    async def main() -> None:
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        dial = asyncio.ensure_future(asyncio.sleep(10))
        dial.add_done_callback(lambda done: deliver(done, settle(fut)))  # type: ignore[arg-type]
        dial.cancel()
        with pytest.raises(asyncio.CancelledError):
            await fut
        assert fut.cancelled()  # not a TypeError from set_exception(CancelledError())

    asyncio.run(main())


def test_settle_hands_over_results_and_errors_and_ignores_a_settled_future() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        ok, bad = loop.create_future(), loop.create_future()
        settle(ok)({"x": 1}, None)
        settle(bad)(None, PeerError("no"))
        settle(ok)(None, PeerError("late"))  # already settled: ignored
        assert ok.result() == {"x": 1}
        with pytest.raises(PeerError, match="no"):
            bad.result()

    asyncio.run(main())
