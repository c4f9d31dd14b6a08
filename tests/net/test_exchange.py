"""Block exchange over the in-memory transport: parallel fetch, resumption, lying peers, bounds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from memtransport import MemNetwork

from sedma.errors import InputError, SedmaError, StorageError
from sedma.net.cid import compute_cid
from sedma.net.exchange import (
    BlockExchange,
    Busy,
    ExchangeConfig,
    ProviderOutcome,
    WantlistFull,
    provider_entry,
)
from sedma.net.store import BlockStore
from sedma.net.tensor import Manifest, TensorBlocks, assemble_tensor, chunk_tensor
from sedma.net.types import PeerError, PeerInfo


class _Node:
    def __init__(
        self, net: MemNetwork, root: Path, n: int, config: ExchangeConfig, delay_s: float = 0.0
    ) -> None:
        self.info = PeerInfo(bytes([0x12, 0x20]) + bytes([n]) * 32, "127.0.0.1", 7000 + n)
        self.store = BlockStore(root / f"node{n}")
        self.penalties: list[tuple[PeerInfo, str]] = []
        self.outcomes: list[ProviderOutcome] = []
        self.ex = BlockExchange(
            self.store,
            request=net.request_fn(self.info),
            config=config,
            on_penalty=lambda p, why: self.penalties.append((p, why)),
            on_outcome=self.outcomes.extend,
        )
        net.add(self.info, lambda caller, m, body: self.ex.handle(m, body, peer_id=caller), delay_s=delay_s)


def _swarm(
    tmp_path: Path, n: int, config: ExchangeConfig | None = None, delay_s: float = 0.0
) -> tuple[MemNetwork, list[_Node]]:
    net = MemNetwork()
    return net, [_Node(net, tmp_path, i, config or ExchangeConfig(), delay_s) for i in range(n)]


def _tensor(seed: int = 0, n: int = 40_000):
    return chunk_tensor(np.random.default_rng(seed).standard_normal(n), chunk_size=16_384)  # 20 blocks


def _liar_and_honest(
    tmp_path: Path, seed: int, forged: bytes = b"forged"
) -> tuple[_Node, _Node, _Node, TensorBlocks]:
    """A reader and two providers of tensor ``seed``; the liar's disk holds ``forged`` under every CID."""
    _net, (reader, liar, honest) = _swarm(tmp_path, 3)
    tb = _tensor(seed)
    liar.store.put_many(tb.blocks)
    honest.store.put_many(tb.blocks)
    for cid in tb.blocks:
        liar.store._path(cid).write_bytes(forged)
    return reader, liar, honest, tb


def test_fetch_spreads_over_providers_and_stores_verified_blocks(tmp_path: Path) -> None:
    _net, (reader, *providers) = _swarm(tmp_path, 4, delay_s=0.001)
    tb = _tensor()
    for p in providers:
        p.store.put_many(tb.blocks)
    got = asyncio.run(reader.ex.fetch(tb.blocks, [p.info for p in providers]))
    assert got == tb.blocks and set(reader.store.cids()) == set(tb.blocks)
    served = [o.blocks for o in reader.outcomes]
    assert sum(served) >= len(tb.blocks) and all(s > 0 for s in served)  # >=: endgame duplicates
    out = assemble_tensor(Manifest.from_block(got[tb.manifest_cid]), got)
    np.testing.assert_array_equal(out, np.random.default_rng(0).standard_normal(40_000))


def test_provider_dying_mid_transfer_is_resumed_elsewhere(tmp_path: Path) -> None:
    net, (reader, dying, healthy) = _swarm(tmp_path, 3, delay_s=0.001)
    tb = _tensor(1)
    dying.store.put_many(tb.blocks)
    healthy.store.put_many(tb.blocks)
    net.die_after(dying.info.peer_id, 3)
    got = asyncio.run(reader.ex.fetch(tb.blocks, [dying.info, healthy.info]))
    assert got == tb.blocks
    by_peer = {o.peer.peer_id: o for o in reader.outcomes}
    assert by_peer[dying.info.peer_id].failed == "dead" and by_peer[dying.info.peer_id].blocks <= 3
    assert by_peer[healthy.info.peer_id].failed is None


def test_endgame_does_not_wait_for_a_slow_provider(tmp_path: Path) -> None:
    net, (reader, fast, slow) = _swarm(tmp_path, 3, delay_s=0.001)
    tb = _tensor(9)
    fast.store.put_many(tb.blocks)
    slow.store.put_many(tb.blocks)
    net.slow_blocks(slow.info.peer_id, 5.0)  # its first blocks would arrive after 5 s

    async def timed() -> float:
        t0 = time.perf_counter()
        assert await reader.ex.fetch(tb.blocks, [slow.info, fast.info]) == tb.blocks
        return time.perf_counter() - t0

    assert asyncio.run(timed()) < 2.5  # the blocks stuck at the slow provider were asked of the fast one
    by_peer = {o.peer.peer_id: o for o in reader.outcomes}
    assert by_peer[slow.info.peer_id].blocks == 0 and by_peer[fast.info.peer_id].blocks == len(tb.blocks)


def test_lying_peer_is_detected_penalised_and_its_bytes_discarded(tmp_path: Path) -> None:
    reader, liar, honest, tb = _liar_and_honest(tmp_path, 2, b"not the block you asked for")
    got = asyncio.run(reader.ex.fetch(tb.blocks, [liar.info, honest.info]))
    assert got == tb.blocks
    assert [p.peer_id for p, _ in reader.penalties] == [liar.info.peer_id]
    assert "not matching" in reader.penalties[0][1]
    assert all(reader.store.get(c) == d for c, d in tb.blocks.items())


def test_blocks_reach_the_sink_only_after_verification_local_ones_too(tmp_path: Path) -> None:
    reader, liar, honest, tb = _liar_and_honest(tmp_path, 7)
    local = tb.manifest.blocks[0]
    reader.store.put(local, tb.blocks[local])
    seen: list[tuple[str, bytes]] = []
    got = asyncio.run(
        reader.ex.fetch(tb.blocks, [liar.info, honest.info], on_block=lambda c, d: seen.append((c, bytes(d))))
    )
    assert got == tb.blocks and seen[0] == (local, tb.blocks[local])  # the local block first
    assert {c for c, _ in seen} == set(tb.blocks)  # every block, forged bytes never
    assert all(data == tb.blocks[cid] for cid, data in seen)


def test_block_nobody_has_raises_peer_error(tmp_path: Path) -> None:
    _net, (reader, provider) = _swarm(tmp_path, 2)
    tb = _tensor(3)
    provider.store.put_many({c: d for c, d in tb.blocks.items() if c != tb.manifest.blocks[0]})
    with pytest.raises(PeerError, match="1 of 21 blocks"):
        asyncio.run(reader.ex.fetch(tb.blocks, [provider.info]))


def test_all_providers_dead_raises_peer_error(tmp_path: Path) -> None:
    net, (reader, a, b) = _swarm(tmp_path, 3)
    net.kill(a.info.peer_id)
    net.kill(b.info.peer_id)
    with pytest.raises(PeerError, match="no provider"):
        asyncio.run(reader.ex.fetch([compute_cid(b"x")], [a.info, b.info]))
    assert {o.failed for o in reader.outcomes} == {"dead"}


def test_local_blocks_need_no_request(tmp_path: Path) -> None:
    net, (reader, provider) = _swarm(tmp_path, 2)
    tb = _tensor(4)
    reader.store.put_many(tb.blocks)
    assert asyncio.run(reader.ex.fetch(tb.blocks, [provider.info])) == tb.blocks
    assert net.stats(provider.info.peer_id).calls == {}


def test_inflight_per_provider_is_bounded(tmp_path: Path) -> None:
    net, (reader, provider) = _swarm(tmp_path, 2, ExchangeConfig(max_inflight=3), delay_s=0.002)
    tb = _tensor(5)
    provider.store.put_many(tb.blocks)
    asyncio.run(reader.ex.fetch(tb.blocks, [provider.info]))
    assert net.stats(provider.info.peer_id).max_inflight_seen == 3


def test_busy_server_pushes_back_and_client_retries(tmp_path: Path) -> None:
    cfg = ExchangeConfig(max_inflight=4, max_serve_inflight=1)
    _net, (reader, provider) = _swarm(tmp_path, 2, cfg)
    tb = _tensor(6)
    provider.store.put_many(tb.blocks)
    assert asyncio.run(reader.ex.fetch(tb.blocks, [provider.info])) == tb.blocks


def test_serve_block_refuses_beyond_the_per_peer_bound(tmp_path: Path) -> None:
    store = BlockStore(tmp_path)
    cid = compute_cid(b"block")
    store.put(cid, b"block")
    ex = BlockExchange(
        store,
        request=MemNetwork().request_fn(PeerInfo(b"r", "h", 1)),
        config=ExchangeConfig(max_serve_inflight=2),
    )

    async def burst() -> list[object]:
        return await asyncio.gather(
            *(ex.serve_block(b"peer", {"cid": cid}) for _ in range(5)), return_exceptions=True
        )

    results = asyncio.run(burst())
    assert sum(isinstance(r, Busy) for r in results) == 3
    assert sum(isinstance(r, dict) and r["data"] == b"block" for r in results) == 2


def test_wantlist_is_bounded_per_peer_and_cancellable(tmp_path: Path) -> None:
    ex = BlockExchange(
        BlockStore(tmp_path),
        request=MemNetwork().request_fn(PeerInfo(b"r", "h", 1)),
        config=ExchangeConfig(max_wantlist=4),
    )
    cids = [compute_cid(bytes([i])) for i in range(6)]

    async def scenario() -> None:
        assert (await ex.serve_want(b"a", {"cids": cids[:3]}))["have"] == [False] * 3
        with pytest.raises(WantlistFull):
            await ex.serve_want(b"a", {"cids": cids[3:5]})
        with pytest.raises(WantlistFull):
            await ex.serve_want(b"a", {"cids": cids * 2})
        await ex.serve_want(b"b", {"cids": cids[:4]})  # another peer has its own list
        await ex.serve_want(b"a", {"cids": cids[3:5], "cancel": cids[:2]})
        assert sorted(ex.wantlist(b"a")) == sorted(cids[2:5])

    asyncio.run(scenario())


def test_want_entries_expire(tmp_path: Path) -> None:
    ex = BlockExchange(
        BlockStore(tmp_path),
        request=MemNetwork().request_fn(PeerInfo(b"r", "h", 1)),
        config=ExchangeConfig(want_ttl_s=0.01),
    )
    asyncio.run(ex.serve_want(b"a", {"cids": [compute_cid(b"1")]}))
    asyncio.run(asyncio.sleep(0.02))
    assert ex.wantlist(b"a") == []


def test_fetch_cancels_its_leftover_wants(tmp_path: Path) -> None:
    _net, (reader, a, b) = _swarm(tmp_path, 3, delay_s=0.001)
    tb = _tensor(7)
    a.store.put_many(tb.blocks)
    b.store.put_many(tb.blocks)
    asyncio.run(reader.ex.fetch(tb.blocks, [a.info, b.info]))
    assert a.ex.wantlist(reader.info.peer_id) == [] and b.ex.wantlist(reader.info.peer_id) == []


def test_bs_fetch_pulls_and_pins_from_named_providers(tmp_path: Path) -> None:
    net, (holder, source) = _swarm(tmp_path, 2)
    tb = _tensor(8)
    source.store.put_many(tb.blocks)
    body = {"cids": list(tb.blocks), "providers": [provider_entry(source.info)]}
    reply = asyncio.run(net.request_fn(source.info)(holder.info, "bs.fetch", body))
    assert reply == {"stored": len(tb.blocks)} and holder.store.pinned() == set(tb.blocks)


@pytest.mark.parametrize(
    ("method", "body", "message"),
    [
        ("bs.block", {"cid": 5}, "CID"),
        ("bs.block", {"cid": "../etc"}, "CID"),
        ("bs.want", {"cids": "notalist"}, "list"),
        ("bs.fetch", {"cids": [], "providers": [["x", 1]]}, "providers"),
        ("bs.nope", {}, "unknown"),
    ],
)
def test_malformed_requests_are_typed_errors(tmp_path: Path, method: str, body: dict, message: str) -> None:
    ex = BlockExchange(BlockStore(tmp_path), request=MemNetwork().request_fn(PeerInfo(b"r", "h", 1)))
    with pytest.raises((InputError, PeerError, Exception), match=message):
        asyncio.run(ex.handle(method, body, peer_id=b"p"))


_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80) | st.binary(max_size=80),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(
    method=st.sampled_from(["bs.want", "bs.block", "bs.fetch", "bs.other"]),
    body=st.dictionaries(
        st.sampled_from(["cid", "cids", "cancel", "providers", "x"]), _json_like, max_size=4
    ),
)
def test_any_request_body_gets_a_typed_error_or_an_answer(tmp_path_factory, method: str, body: dict) -> None:
    store = BlockStore(tmp_path_factory.mktemp("fuzz"))
    ex = BlockExchange(store, request=MemNetwork().request_fn(PeerInfo(b"r", "h", 1)))
    try:
        reply = asyncio.run(ex.handle(method, body, peer_id=b"p"))
    except SedmaError:
        return  # typed: the RPC layer answers it as one error line
    assert isinstance(reply, dict)


def test_store_later_hands_blocks_on_first_and_flush_waits_for_the_store(tmp_path: Path) -> None:
    reader, liar, honest, tb = _liar_and_honest(tmp_path, 8)
    seen: dict[str, bytes] = {}

    async def run() -> dict[str, object]:
        sink = lambda c, d: seen.update({c: bytes(d)})  # noqa: E731
        got = await reader.ex.fetch(tb.blocks, [liar.info, honest.info], on_block=sink, store_later=True)
        await reader.ex.flush()
        return dict(got)

    assert asyncio.run(run()) == tb.blocks and seen == tb.blocks
    assert all(reader.store.get(c) == d for c, d in tb.blocks.items())  # verified bytes only


def test_simd_batches_catch_forged_blocks_of_the_right_length(tmp_path: Path) -> None:
    from sedma.net import sha256_lanes

    assert sha256_lanes.warm_up()
    _net, (reader, liar, honest) = _swarm(tmp_path, 3)
    tb = chunk_tensor(np.random.default_rng(9).standard_normal(48 * 1024), chunk_size=8192)  # 48 blocks
    liar.store.put_many(tb.blocks)
    honest.store.put_many(tb.blocks)
    rng = np.random.default_rng(1)
    for cid in tb.manifest.blocks[::3]:  # same length, other bytes: judged inside a SIMD pass
        liar.store._path(cid).write_bytes(rng.bytes(8192))
    got = asyncio.run(reader.ex.fetch(tb.manifest.blocks, [liar.info, honest.info]))
    assert got == {c: tb.blocks[c] for c in tb.manifest.blocks}
    assert [p.peer_id for p, _ in reader.penalties] == [liar.info.peer_id]
    assert all(reader.store.get(c) == tb.blocks[c] for c in tb.manifest.blocks)


def test_a_store_that_cannot_take_the_blocks_fails_the_fetch_typed(tmp_path: Path) -> None:
    from sedma.net.store import StoreConfig

    _net, (reader, provider) = _swarm(tmp_path, 2)
    reader.ex.store = BlockStore(tmp_path / "tiny", config=StoreConfig(budget_bytes=20_000))
    pinned = bytes(10_000)  # pinned, so GC cannot make room for a 16 KiB block
    reader.ex.store.put(compute_cid(pinned), pinned, pin=True)
    tb = _tensor(10)
    provider.store.put_many(tb.blocks)
    with pytest.raises(StorageError, match="full"):
        asyncio.run(asyncio.wait_for(reader.ex.fetch(tb.manifest.blocks, [provider.info]), 20))


def test_verifier_waits_for_a_fuller_batch_only_while_more_blocks_are_coming() -> None:
    from sedma.net.verify import BatchVerifier

    async def run() -> list[list[bool | None]]:
        accepted: list[list[tuple[str, object]]] = []
        v = BatchVerifier(lambda blocks, _: accepted.append(blocks), full=4)
        verdicts: list[bool | None] = []
        blocks = [bytes([i]) * 100 for i in range(6)]
        for b in blocks[:3]:
            v.submit(compute_cid(b), b, verdicts.append)
        v.poke(on_wire=2, expected=3)  # more on the wire, batch not full: wait
        first = v.running
        v.poke(on_wire=0, expected=3)  # nothing on the wire: check what is here
        second = v.running
        await v.drain(poke=lambda: v.poke(on_wire=0, expected=0))
        v.submit(compute_cid(blocks[3]), b"forged", verdicts.append)
        v.poke(on_wire=5, expected=0)  # every expected block is here
        await v.drain(poke=lambda: None)
        return [[first, second, len(accepted)], verdicts]

    (first, second, accepted), verdicts = asyncio.run(run())
    assert (first, second, accepted) == (0, 3, 1)
    assert verdicts == [True, True, True, False]


def test_a_slot_is_lent_to_one_request_and_an_endgame_duplicate_takes_it_back() -> None:
    from sedma.net.exchange import _Fetch
    from sedma.net.tensor import TensorAssembly
    from sedma.net.verify import BatchVerifier

    async def run() -> None:
        tb = chunk_tensor(np.random.default_rng(5).integers(0, 255, 3000, dtype=np.uint8), chunk_size=1024)
        assembly = TensorAssembly(tb.manifest)
        cid = tb.manifest.blocks[0]
        state = _Fetch(list(tb.manifest.blocks), BatchVerifier(lambda *_: None, staging=assembly))
        lease = state.lease(cid)
        assert lease is not None and len(lease.view) == 1024
        assert state.lease(cid) is None and assembly.slot(cid, 1024) is None  # one writer at a time
        state.revoke(cid)  # what the endgame does before asking a second provider
        assert lease.revoked and state.lease(cid) is None  # no direct writes for this block again
        assert assembly.slot(cid, 1024) == 0  # the verifier may stage a checked copy there
        other = tb.manifest.blocks[1]
        second = state.lease(other)
        assert second is not None
        state.unlease(other, second)  # the bytes came elsewhere: slot open, lendable again
        assert state.lease(other) is not None

    asyncio.run(run())
