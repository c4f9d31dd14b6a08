"""Iterative α-parallel Kademlia look-up (Kademlia paper §2.3); the RPC is passed in.

Every answer is aggregated: the look-up ends only when the k closest peers still alive have
all answered, so a provider or value held by any of them is found (no partial answers). Up to
α queries run at once while answers bring closer peers; once a round brings none, all of the k
closest not yet asked are queried together (the paper's rule), and stragglers outside the
final k are not waited for.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sedma.net.dht.routing import K
from sedma.net.types import NetError, PeerInfo

ALPHA = 3  # look-up concurrency α, Kademlia paper §2.3


@dataclass(slots=True)
class Answer:
    """What one queried peer returned: closer peers, and values/providers it holds."""

    peers: list[PeerInfo]
    values: list[Any] = field(default_factory=list)


Query = Callable[[PeerInfo], Awaitable[Answer]]
# The callback form: ``send(peer, respond)`` asks ``peer`` and later calls ``respond(answer,
# None)`` or ``respond(None, error)`` once, with no future and no loop turn in between.
Respond = Callable[[Answer | None, BaseException | None], None]
SendQuery = Callable[[PeerInfo, Respond], None]


@dataclass(slots=True)
class LookupResult:
    """The k closest live peers, everything they held, hops taken and peers that failed."""

    closest: list[PeerInfo]
    values: list[Any]
    hops: int
    queried: int
    failed: list[PeerInfo]


@dataclass(slots=True)
class _Candidate:
    peer: PeerInfo
    dist: int
    depth: int
    state: str = "new"  # new | asked | done | failed


class _Lookup:
    def __init__(self, target: bytes, k: int, alpha: int, exclude: set[bytes]) -> None:
        self.target, self.k, self.alpha, self.exclude = target, k, alpha, exclude
        self.target_int = int.from_bytes(target, "big")
        self.cands: dict[bytes, _Candidate] = {}
        self.order: list[_Candidate] = []  # every candidate, nearest first (kept sorted)
        self.values: list[Any] = []
        self.best = 1 << 257
        self.burst = False
        self.failed = 0  # candidates that failed: none, and the shortlist is a plain slice

    def offer(self, peers: Iterable[PeerInfo], depth: int) -> bool:
        """Add newly learnt peers; True when one is closer than any seen before."""
        closer, known, cands = False, self.exclude, self.cands
        # Answers late in a look-up name peers already met: filter them in one pass first.
        for peer in [p for p in peers if p.peer_id not in cands and p.peer_id not in known]:
            cand = _Candidate(peer, peer.dht_int ^ self.target_int, depth)
            self.cands[peer.peer_id] = cand
            bisect.insort(self.order, cand, key=_dist)
            if cand.dist < self.best:
                self.best, closer = cand.dist, True
        return closer

    def shortlist(self) -> list[_Candidate]:
        """The k nearest candidates that have not failed."""
        if not self.failed:
            return self.order[: self.k]
        out: list[_Candidate] = []
        for cand in self.order:
            if cand.state != "failed":
                out.append(cand)
                if len(out) == self.k:
                    break
        return out

    def next_to_ask(self, short: list[_Candidate], inflight: int) -> list[_Candidate]:
        """Not-yet-asked peers of the shortlist, up to α (or k in the final burst) in flight."""
        limit = (self.k if self.burst else self.alpha) - inflight
        if limit <= 0:
            return []
        return [c for c in short if c.state == "new"][:limit]


def _dist(cand: _Candidate) -> int:
    return cand.dist


async def iterative_lookup(
    target: bytes,
    seeds: Iterable[PeerInfo],
    query: Query | None = None,
    *,
    send: SendQuery | None = None,
    k: int = K,
    alpha: int = ALPHA,
    exclude: Iterable[bytes] = (),
) -> LookupResult:
    """Find the k peers closest to ``target`` and collect all values they hold.

    The RPC is ``query`` (an awaitable per peer) or ``send`` (its callback form, cheaper).
    """
    state = _Lookup(target, k, alpha, set(exclude))
    state.offer(seeds, 1)
    run = _Run(state)
    if send is None:
        if query is None:
            raise TypeError("iterative_lookup needs query or send")
        send = run.awaiting(query)
    run.send = send
    run.pump()
    try:
        await run.finished
    finally:
        run.finished.cancel()  # no-op once finished; on cancellation, stops the callbacks
        for task in run.tasks:
            task.cancel()  # stragglers outside the final k are not waited for
    return _result(state)


class _Run:
    """Drives one look-up from the answers' callbacks: the awaiting task wakes once, at the end.

    Answers that arrive in one loop turn are absorbed before the next queries are chosen (one
    shortlist for all of them, as the paper's rounds do): the first schedules :meth:`pump`.
    """

    __slots__ = ("finished", "loop", "open", "pumping", "send", "state", "tasks")

    def __init__(self, state: _Lookup) -> None:
        self.state = state
        self.send: SendQuery | None = None
        self.loop = asyncio.get_running_loop()
        self.open = 0  # queries asked and not yet answered
        self.tasks: list[asyncio.Future[Answer]] = []  # awaitable queries' futures, to cancel
        self.finished: asyncio.Future[None] = self.loop.create_future()
        self.pumping = False

    def awaiting(self, query: Query) -> SendQuery:
        """The callback form of an awaitable ``query``."""

        def send(peer: PeerInfo, respond: Respond) -> None:
            task = asyncio.ensure_future(query(peer))
            self.tasks.append(task)
            task.add_done_callback(lambda done: respond(*_outcome(done)))

        return send

    def pump(self) -> None:
        self.pumping = False
        if self.finished.done():
            return
        try:
            self._ask_next()
        except Exception as exc:  # a query that raised at once: surfaced to the caller
            if not self.finished.done():
                self.finished.set_exception(exc)

    def _ask_next(self) -> None:
        state, send = self.state, self.send
        assert send is not None
        short = state.shortlist()
        if all(c.state == "done" for c in short):
            self.finished.set_result(None)
            return
        for cand in state.next_to_ask(short, self.open):
            cand.state = "asked"
            self.open += 1
            send(cand.peer, self._responder(cand))
        # Nothing in flight and no answer waiting to be pumped (one may have come at once,
        # inside send): no one left to ask.
        if not self.open and not self.pumping and not self.finished.done():
            self.finished.set_result(None)

    def _responder(self, cand: _Candidate) -> Respond:
        return lambda answer, exc: self._answered(cand, answer, exc)

    def _answered(self, cand: _Candidate, answer: Answer | None, exc: BaseException | None) -> None:
        if self.finished.done() or cand.state != "asked":
            return  # a straggler, or a second outcome for one query
        self.open -= 1
        try:
            _absorb(self.state, cand, answer, exc)
        except asyncio.CancelledError:  # a query cancelled from outside: so is the look-up
            self.finished.cancel()
            return
        except Exception as err:  # not a network failure: a bug, surfaced to the caller
            self.finished.set_exception(err)
            return
        if not self.pumping:
            self.pumping = True
            self.loop.call_soon(self.pump)


def _outcome(task: asyncio.Future[Answer]) -> tuple[Answer | None, BaseException | None]:
    if task.cancelled():
        return None, asyncio.CancelledError()
    exc = task.exception()
    return (None, exc) if exc is not None else (task.result(), None)


def _absorb(state: _Lookup, cand: _Candidate, answer: Answer | None, exc: BaseException | None) -> None:
    if exc is not None or answer is None:
        if not isinstance(exc, NetError | OSError | TimeoutError):
            raise exc or TypeError("a query answered nothing")
        cand.state = "failed"
        state.failed += 1
        return
    cand.state = "done"
    state.values.extend(answer.values)
    # No closer peer learnt: ask all of the k closest at once; a closer one: back to α.
    state.burst = not state.offer(answer.peers, cand.depth + 1)


def _result(state: _Lookup) -> LookupResult:
    short = [c for c in state.shortlist() if c.state == "done"]
    return LookupResult(
        closest=[c.peer for c in short],
        values=state.values,
        hops=max((c.depth for c in short), default=0),
        queried=sum(c.state in ("done", "failed") for c in state.cands.values()),
        failed=[c.peer for c in state.cands.values() if c.state == "failed"],
    )
