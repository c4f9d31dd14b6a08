"""Iterative look-up against an in-memory network of routing tables (I/O passed in)."""

from __future__ import annotations

import asyncio
import math
import os
import time

import pytest

from sedma.net.dht.routing import RoutingTable, distance
from sedma.net.dht.traverse import Answer, iterative_lookup
from sedma.net.types import PeerError, PeerInfo


def _network(n: int, k: int = 20) -> tuple[list[PeerInfo], dict[bytes, RoutingTable]]:
    peers = [PeerInfo(b"\x12\x20" + os.urandom(32), "127.0.0.1", 1 + i) for i in range(n)]
    tables = {p.peer_id: RoutingTable(p.dht_key, k=k) for p in peers}
    for p in peers:
        for q in peers:
            tables[p.peer_id].add(q)
    return peers, tables


def test_lookup_finds_true_k_closest_within_log_hops_and_aggregates_all_values() -> None:
    peers, tables = _network(256)
    target = os.urandom(32)
    truth = sorted(peers, key=lambda p: distance(p.dht_key, target))[:20]
    holders = {p.peer_id for p in truth[::4]}  # every 4th of the closest holds a provider

    async def query(peer: PeerInfo) -> Answer:
        await asyncio.sleep(0)
        vals = [peer.peer_id] if peer.peer_id in holders else []
        return Answer(tables[peer.peer_id].closest(target, 20), vals)

    start = peers[0]
    seeds = tables[start.peer_id].closest(os.urandom(32), 3)  # far seeds: the look-up must walk
    result = asyncio.run(iterative_lookup(target, seeds, query))
    assert [p.peer_id for p in result.closest] == [p.peer_id for p in truth]
    assert set(result.values) == holders  # no partial provider answers
    assert result.hops <= math.ceil(math.log2(256)) + 2


def test_dead_peers_are_skipped_and_stragglers_not_awaited() -> None:
    peers, tables = _network(64, k=64)  # every peer knows every other: no gaps
    target = os.urandom(32)
    order = sorted(peers, key=lambda p: distance(p.dht_key, target))
    dead = {p.peer_id for p in order[:25:2]}  # half of the closest are dead
    hung = order[-1].peer_id  # farthest peer never answers

    async def query(peer: PeerInfo) -> Answer:
        if peer.peer_id in dead:
            raise PeerError("refused")
        if peer.peer_id == hung:
            await asyncio.sleep(60)
        # Answers name more than k peers, so enough live ones are known without the hung one.
        return Answer(tables[peer.peer_id].closest(target, 40))

    t0 = time.perf_counter()
    result = asyncio.run(iterative_lookup(target, [order[-1], *order[30:33]], query))
    assert time.perf_counter() - t0 < 2.0
    alive = [p.peer_id for p in order if p.peer_id not in dead][:20]
    assert [p.peer_id for p in result.closest] == alive
    assert {p.peer_id for p in result.failed} <= dead


def test_a_query_that_fails_for_a_reason_other_than_the_network_fails_the_lookup() -> None:
    peers, tables = _network(32)
    target = os.urandom(32)
    seeds = tables[peers[0].peer_id].closest(target, 5)

    def raises_at_once(peer: PeerInfo) -> asyncio.Future[Answer]:
        raise KeyError("bug in the query")

    async def raises_later(peer: PeerInfo) -> Answer:
        await asyncio.sleep(0)
        raise ValueError("bug in the answer")

    for query, kind in ((raises_at_once, KeyError), (raises_later, ValueError)):
        with pytest.raises(kind):
            asyncio.run(asyncio.wait_for(iterative_lookup(target, seeds, query), 5))


def test_cancelling_the_lookup_cancels_its_queries_in_flight() -> None:
    peers, _ = _network(32)
    target = os.urandom(32)
    pending: list[asyncio.Future[Answer]] = []

    def never(peer: PeerInfo) -> asyncio.Future[Answer]:
        pending.append(asyncio.get_running_loop().create_future())
        return pending[-1]

    async def main() -> None:
        task = asyncio.ensure_future(iterative_lookup(target, peers[:5], never))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(pending) == 3 and all(f.cancelled() for f in pending)  # α in flight, all cancelled

    asyncio.run(main())


def test_the_callback_form_finds_the_same_peers_even_when_answers_come_at_once() -> None:
    from sedma.net.dht.traverse import Respond

    peers, tables = _network(128)
    target = os.urandom(32)
    truth = sorted(peers, key=lambda p: distance(p.dht_key, target))[:20]
    dead = {truth[3].peer_id}

    def send(peer: PeerInfo, respond: Respond) -> None:
        # Answered inside the call, before send returns: the look-up must not trip over that.
        if peer.peer_id in dead:
            respond(None, PeerError("refused"))
        else:
            respond(Answer(tables[peer.peer_id].closest(target, 20), [peer.peer_id]), None)

    seeds = tables[peers[0].peer_id].closest(os.urandom(32), 3)
    result = asyncio.run(iterative_lookup(target, seeds, send=send))
    alive = [p for p in sorted(peers, key=lambda p: distance(p.dht_key, target)) if p.peer_id not in dead]
    assert [p.peer_id for p in result.closest] == [p.peer_id for p in alive[:20]]
    assert {p.peer_id for p in result.failed} == dead
    assert {p.peer_id for p in alive[:20]} <= set(result.values)  # every one of the k answered
    with pytest.raises(TypeError, match="query or send"):
        asyncio.run(iterative_lookup(target, seeds))
