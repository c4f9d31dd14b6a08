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

    def offer(self, peers: Iterable[PeerInfo], depth: int) -> bool:
        """Add newly learnt peers; True when one is closer than any seen before."""
        closer = False
        for peer in peers:
            if peer.peer_id in self.exclude or peer.peer_id in self.cands:
                continue
            cand = _Candidate(peer, peer.dht_int ^ self.target_int, depth)
            self.cands[peer.peer_id] = cand
            bisect.insort(self.order, cand, key=_dist)
            if cand.dist < self.best:
                self.best, closer = cand.dist, True
        return closer

    def shortlist(self) -> list[_Candidate]:
        """The k nearest candidates that have not failed."""
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
    query: Query,
    *,
    k: int = K,
    alpha: int = ALPHA,
    exclude: Iterable[bytes] = (),
) -> LookupResult:
    """Find the k peers closest to ``target`` and collect all values they hold."""
    state = _Lookup(target, k, alpha, set(exclude))
    state.offer(seeds, 1)
    tasks: dict[asyncio.Task[Answer], _Candidate] = {}
    # Finished queries arrive through one queue: O(1) per answer, where asyncio.wait would
    # re-register a callback on every pending query each time.
    done: asyncio.Queue[asyncio.Task[Answer]] = asyncio.Queue()
    try:
        while True:
            short = state.shortlist()  # once per wake-up: it is the look-up's hot loop
            if all(c.state == "done" for c in short):
                break
            for cand in state.next_to_ask(short, len(tasks)):
                cand.state = "asked"
                task = asyncio.ensure_future(query(cand.peer))
                task.add_done_callback(done.put_nowait)
                tasks[task] = cand
            if not tasks:
                break
            task = await done.get()
            _absorb(state, tasks.pop(task), task)
            while not done.empty():  # answers that arrived together: one shortlist for all
                task = done.get_nowait()
                _absorb(state, tasks.pop(task), task)
    finally:
        for task in tasks:
            task.cancel()  # stragglers outside the final k are not waited for
    return _result(state)


def _absorb(state: _Lookup, cand: _Candidate, task: asyncio.Task[Answer]) -> None:
    exc = task.exception()
    if exc is not None:
        if not isinstance(exc, NetError | OSError | TimeoutError):
            raise exc
        cand.state = "failed"
        return
    answer = task.result()
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
