"""The on-disk block store: atomic writes, verification, pins, budget and LRU garbage collection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sedma.errors import ConfigError, InputError, StorageError
from sedma.net.cid import compute_cid
from sedma.net.store import DEFAULT_HOT, BlockStore, HotCache, StoreConfig, process_hot_cache
from sedma.net.types import IntegrityError


def _blocks(n: int, size: int = 100) -> dict[str, bytes]:
    out = {}
    for i in range(n):
        data = bytes([i % 256]) * size + i.to_bytes(4, "big")
        out[compute_cid(data)] = data
    return out


def test_default_root_is_under_sedma_home(_isolated_home: Path) -> None:
    store = BlockStore()
    assert store.root == _isolated_home / "blocks"


def test_put_get_roundtrip_and_reopen(tmp_path: Path) -> None:
    blocks = _blocks(5)
    store = BlockStore(tmp_path)
    store.put_many(blocks)
    assert all(store.get(c) == d for c, d in blocks.items())
    again = BlockStore(tmp_path)
    assert set(again.cids()) == set(blocks) and again.used_bytes == sum(map(len, blocks.values()))


def test_put_rejects_bytes_not_matching_the_cid(tmp_path: Path) -> None:
    cid = compute_cid(b"right")
    with pytest.raises(IntegrityError):
        BlockStore(tmp_path).put(cid, b"wrong")
    assert not BlockStore(tmp_path).has(cid)


def test_verify_on_read_removes_a_corrupted_file(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, config=StoreConfig(verify_on_read=True))
    cid = compute_cid(b"payload")
    store.put(cid, b"payload")
    store._path(cid).write_bytes(b"tampered")
    with pytest.raises(StorageError, match="does not match"):
        store.get(cid)
    assert store.get(cid) is None


def test_gc_evicts_least_recently_used_unpinned(tmp_path: Path) -> None:
    blocks = list(_blocks(4).items())
    store = BlockStore(tmp_path, config=StoreConfig(budget_bytes=3 * 104))
    for cid, data in blocks[:3]:
        store.put(cid, data)
    store.pin([blocks[0][0]])
    store.get(blocks[1][0])  # block 2 is now the least recently used unpinned one
    store.put(*blocks[3])
    assert not store.has(blocks[2][0])
    assert all(store.has(c) for c, _ in (blocks[0], blocks[1], blocks[3]))


def test_full_of_pins_raises_storage_error(tmp_path: Path) -> None:
    blocks = list(_blocks(3).items())
    store = BlockStore(tmp_path, config=StoreConfig(budget_bytes=2 * 104))
    for cid, data in blocks[:2]:
        store.put(cid, data, pin=True)
    with pytest.raises(StorageError, match="full"):
        store.put(*blocks[2])


def test_pins_persist_and_unpinned_blocks_are_collected(tmp_path: Path) -> None:
    blocks = list(_blocks(3).items())
    store = BlockStore(tmp_path)
    store.put_many(dict(blocks))
    store.pin([blocks[0][0]])
    reopened = BlockStore(tmp_path)
    assert reopened.pinned() == {blocks[0][0]}
    freed = reopened.gc()
    assert freed == 2 * 104 and reopened.cids() == [blocks[0][0]]
    reopened.unpin([blocks[0][0]])
    assert BlockStore(tmp_path).pinned() == set()


def test_leftover_temp_files_are_removed_on_open(tmp_path: Path) -> None:
    BlockStore(tmp_path)
    (tmp_path / "tmp" / "half-written").write_bytes(b"x")
    BlockStore(tmp_path)
    assert os.listdir(tmp_path / "tmp") == []


def test_fsync_policy_writes_durably(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, config=StoreConfig(fsync=True))
    cid = compute_cid(b"durable")
    store.put(cid, b"durable")
    assert store.get(cid) == b"durable"


def test_path_traversal_cid_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        BlockStore(tmp_path).get("../../etc/passwd")


def test_bad_budget_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="budget"):
        BlockStore(tmp_path, config=StoreConfig(budget_bytes=0))


def test_corrupt_pin_file_is_a_storage_error(tmp_path: Path) -> None:
    BlockStore(tmp_path)
    (tmp_path / "pins.json").write_text("{not json")
    with pytest.raises(StorageError, match="pin file"):
        BlockStore(tmp_path)


def test_published_blocks_are_served_from_memory_while_their_file_is_unchanged(tmp_path: Path) -> None:
    store = BlockStore(tmp_path, config=StoreConfig(hot_bytes=3000))
    blocks = {compute_cid(bytes([i]) * 1000): bytes([i]) * 1000 for i in range(4)}
    a, b, c, d = blocks
    store.put(a, blocks[a], hot=True)
    store.put(b, bytearray(blocks[b]), hot=True)  # kept as an immutable copy
    store.put(c, blocks[c])  # not published here: disk only
    assert store.get_hot(a) is blocks[a] and store.get_hot(b) == blocks[b] and store.get_hot(c) is None
    store.put(d, blocks[d], hot=True)
    store.put(c, blocks[c], hot=True)  # 4 x 1000 B > 3000 B: the least recently used (a) leaves
    assert store.get_hot(a) is None and store.get(a) == blocks[a]
    forged = bytes(1000)
    store._path(b).write_bytes(forged)  # same size, same inode: the modification time tells
    os.utime(store._path(b), ns=(1, 1))
    assert store.get_hot(b) is None and store.get(b) == forged  # the disk is the truth
    replaced = tmp_path / "other"
    replaced.write_bytes(blocks[d])
    os.replace(replaced, store._path(d))  # another inode
    assert store.get_hot(d) is None
    store.delete(c)
    assert store.get_hot(c) is None
    with pytest.raises(ConfigError, match="hot_bytes"):
        StoreConfig(hot_bytes=-1).validate()
    assert BlockStore(tmp_path / "off", config=StoreConfig(hot_bytes=0)).get_hot(a) is None


def test_stores_sharing_a_hot_cache_share_its_budget_not_their_copies(tmp_path: Path) -> None:
    shared = HotCache(2500)
    one = BlockStore(tmp_path / "one", hot=shared)
    two = BlockStore(tmp_path / "two", hot=shared)
    blocks = {compute_cid(bytes([i]) * 1000): bytes([i]) * 1000 for i in range(3)}
    a, b, c = blocks
    one.put(a, blocks[a], hot=True)
    one.put(b, blocks[b], hot=True)
    two.put(a, blocks[a])  # the same block in the other store, not published there
    assert two.get_hot(a) is None and one.get_hot(a) == blocks[a]  # copies are per store
    two.put(c, blocks[c], hot=True)  # 3 x 1000 B > 2500 B: the least recently used (one's b) leaves
    assert one.get_hot(b) is None and one.get_hot(a) == blocks[a] and two.get_hot(c) == blocks[c]
    assert shared.used_bytes == 2000
    one.release_hot()  # a store closing takes its copies with it, and only its own
    assert one.get_hot(a) is None and two.get_hot(c) == blocks[c] and shared.used_bytes == 1000
    assert process_hot_cache() is process_hot_cache() and process_hot_cache().budget_bytes == DEFAULT_HOT
    with pytest.raises(ConfigError, match="budget_bytes"):
        HotCache(-1)
