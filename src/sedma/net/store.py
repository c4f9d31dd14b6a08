"""On-disk block store under ``$SEDMA_HOME/blocks``: atomic writes, a size budget, pins and LRU GC.

Layout: ``<root>/<two chars before the last of the CID>/<cid>`` (IPFS's next-to-last/2 sharding:
CID prefixes are all alike, their tails are uniform), pins in ``<root>/pins.json``.
A block is written to a temp file in ``<root>/tmp`` and renamed into place, so a reader never sees
a half-written block and a crash leaves at most a temp file (removed on open). Durability: with
``fsync=True`` the file and its directory are fsynced before the rename counts; the default is
off, because a block lost in a crash is detected (missing or failing its CID) and fetched again.

Blocks a node publishes are kept in memory too (``put(..., hot=True)``, at most
``hot_bytes``, least recently used dropped first), so serving them needs neither a disk read
nor a worker thread (:meth:`BlockStore.get_hot`). The copies live in a :class:`HotCache`: a
store's own by default, or one shared by several stores, as the nodes of one process share
:func:`process_hot_cache` (a 16-node ``sedma swarm`` process holds 32 MiB of copies, not 512).
The disk stays the truth: a memory copy is returned only while its file still has the inode,
size and modification time it had when the copy was taken, so a file replaced or removed behind
the store's back is read (or missed) anew.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sedma.errors import ConfigError, InputError, StorageError
from sedma.memory.urls import resolve_home
from sedma.net.cid import matches, validate_cid, verify_block
from sedma.net.types import Blob

DEFAULT_BUDGET = 1 << 30
DEFAULT_HOT = 32 << 20


def default_root() -> Path:
    """``$SEDMA_HOME/blocks``, with SEDMA_HOME resolved as the dual memory resolves it."""
    return resolve_home() / "blocks"


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Options of a block store."""

    budget_bytes: int = DEFAULT_BUDGET
    verify_on_read: bool = False
    fsync: bool = False
    hot_bytes: int = DEFAULT_HOT  # memory copies of published blocks (0: none)

    def validate(self) -> StoreConfig:
        if self.budget_bytes <= 0:
            raise ConfigError(f"store budget_bytes must be positive, got {self.budget_bytes}")
        if self.hot_bytes < 0:
            raise ConfigError(f"store hot_bytes must be >= 0, got {self.hot_bytes}")
        return self


Stamp = tuple[int, int, int]  # a file's inode, size and modification time (ns)


class HotCache:
    """Memory copies of blocks under one byte budget, least recently used dropped first.

    Keys are (store token, CID), so stores sharing a cache never see each other's copies but
    compete for the same bytes. Thread-safe.
    """

    def __init__(self, budget_bytes: int = DEFAULT_HOT) -> None:
        if budget_bytes < 0:
            raise ConfigError(f"hot cache budget_bytes must be >= 0, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[object, str], tuple[bytes, Stamp]] = OrderedDict()
        self._bytes = 0

    @property
    def used_bytes(self) -> int:
        return self._bytes

    def get(self, key: tuple[object, str]) -> tuple[bytes, Stamp] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
            return entry

    def put(self, key: tuple[object, str], data: bytes, stamp: Stamp) -> None:
        if len(data) > self.budget_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            self._bytes += len(data) - (len(old[0]) if old else 0)
            self._entries[key] = (data, stamp)
            while self._bytes > self.budget_bytes:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def drop(self, key: tuple[object, str]) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old[0])

    def drop_owner(self, token: object) -> None:
        """Every copy one store put here (the store is closing)."""
        with self._lock:
            for key in [k for k in self._entries if k[0] is token]:
                self._bytes -= len(self._entries.pop(key)[0])


_process_hot: HotCache | None = None
_process_hot_lock = threading.Lock()


def process_hot_cache() -> HotCache:
    """The hot cache the nodes of this process share (``DEFAULT_HOT`` bytes), made on first use."""
    global _process_hot
    with _process_hot_lock:
        if _process_hot is None:
            _process_hot = HotCache(DEFAULT_HOT)
        return _process_hot


class BlockStore:
    """Blocks by CID on disk, with pins and least-recently-used GC of unpinned blocks.

    ``hot``: the :class:`HotCache` for memory copies of published blocks; by default the store's
    own, of ``config.hot_bytes``. ``config.hot_bytes = 0`` keeps no copies either way.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        config: StoreConfig | None = None,
        hot: HotCache | None = None,
    ) -> None:
        self.config = (config or StoreConfig()).validate()
        self.root = Path(root) if root is not None else default_root()
        self._lock = threading.RLock()
        self._sizes: OrderedDict[str, int] = OrderedDict()  # LRU order: oldest access first
        self._bytes = 0
        self._hot = hot if hot is not None else HotCache(self.config.hot_bytes)
        self._token = object()  # this store's half of its hot-cache keys
        try:
            (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"cannot create block store at {self.root}: {exc}") from None
        self._pins = self._load_pins()
        self._scan()

    # -- reading ------------------------------------------------------------------------------
    def has(self, cid: str) -> bool:
        return cid in self._sizes or self._path(cid).exists()

    def get(self, cid: str) -> bytes | None:
        """The block's bytes, or None when absent; verified when ``verify_on_read``."""
        try:
            data = self._path(cid).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            self._forget(cid)
            return None
        if self.config.verify_on_read and not matches(cid, data):
            self.delete(cid)
            raise StorageError(f"block {cid} on disk does not match its CID; it was removed")
        self._touch(cid, len(data))
        return data

    def get_hot(self, cid: str) -> bytes | None:
        """The block from memory if it is kept there and its file is unchanged; else None (no read)."""
        entry = self._hot.get((self._token, cid))
        if entry is None:
            return None
        data, stamp = entry
        if _stamp(self._path(cid)) != stamp:
            self._drop_hot(cid)
            return None
        self._touch(cid, len(data))
        return data

    def size_of(self, cid: str) -> int | None:
        with self._lock:
            return self._sizes.get(cid)

    def cids(self) -> list[str]:
        with self._lock:
            return list(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)

    def __contains__(self, cid: object) -> bool:
        return isinstance(cid, str) and self.has(cid)

    def __iter__(self) -> Iterator[str]:
        return iter(self.cids())

    @property
    def used_bytes(self) -> int:
        return self._bytes

    # -- writing ------------------------------------------------------------------------------
    def put(self, cid: str, data: Blob, *, verify: bool = True, pin: bool = False, hot: bool = False) -> None:
        """Store a block (idempotent); collects garbage first when the budget would overflow.

        ``hot``: keep a memory copy as well (blocks this node publishes and will serve).
        """
        validate_cid(cid)
        if verify:
            verify_block(cid, data)
        if pin:
            self.pin([cid])
        if cid not in self._sizes:
            self._make_room(len(data))
            self._write(cid, data)
        self._touch(cid, len(data))
        if hot:
            self._keep_hot(cid, bytes(data))

    def put_many(
        self, blocks: dict[str, bytes], *, verify: bool = True, pin: bool = False, hot: bool = False
    ) -> None:
        for cid, data in blocks.items():
            self.put(cid, data, verify=verify, pin=pin, hot=hot)

    def delete(self, cid: str) -> bool:
        self._drop_hot(cid)
        with contextlib.suppress(FileNotFoundError):
            self._path(cid).unlink()
            self._forget(cid)
            return True
        self._forget(cid)
        return False

    # -- pins and GC ----------------------------------------------------------------------------
    def pin(self, cids: Iterable[str]) -> None:
        with self._lock:
            self._pins.update(validate_cid(c) for c in cids)
            self._save_pins()

    def unpin(self, cids: Iterable[str]) -> None:
        with self._lock:
            self._pins.difference_update(cids)
            self._save_pins()

    def pinned(self) -> set[str]:
        with self._lock:
            return set(self._pins)

    def gc(self, target_bytes: int | None = None) -> int:
        """Delete unpinned blocks, least recently used first, until usage <= target; returns bytes freed."""
        target = 0 if target_bytes is None else target_bytes
        freed = 0
        with self._lock:
            victims = [c for c in self._sizes if c not in self._pins]
        for cid in victims:
            if self._bytes <= target:
                break
            size = self._sizes.get(cid, 0)
            if self.delete(cid):
                freed += size
        return freed

    # -- internals --------------------------------------------------------------------------------
    def _path(self, cid: str) -> Path:
        if not (cid.isascii() and cid.isalnum()):
            # A CID is base32 text; anything else could walk out of the store's directory.
            raise InputError(f"not a CID: {cid!r:.80}")
        shard = cid[-3:-1] if len(cid) >= 3 else "__"
        return self.root / shard / cid

    def _make_room(self, incoming: int) -> None:
        budget = self.config.budget_bytes
        if self._bytes + incoming <= budget:
            return
        self.gc(budget - incoming)
        if self._bytes + incoming > budget:
            raise StorageError(
                f"block store {self.root} is full: {self._bytes} B used (pinned), "
                f"{incoming} B more would pass the budget of {budget} B"
            )

    def _write(self, cid: str, data: Blob) -> None:
        path = self._path(cid)
        try:
            path.parent.mkdir(exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.root / "tmp", prefix=cid[-8:])
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                if self.config.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, path)
            if self.config.fsync:
                _fsync_dir(path.parent)
        except OSError as exc:
            raise StorageError(f"cannot write block {cid} under {self.root}: {exc}") from None

    def _keep_hot(self, cid: str, data: bytes) -> None:
        if self.config.hot_bytes == 0:
            return
        stamp = _stamp(self._path(cid))
        if stamp is not None:
            self._hot.put((self._token, cid), data, stamp)

    def _drop_hot(self, cid: str) -> None:
        self._hot.drop((self._token, cid))

    def release_hot(self) -> None:
        """Drop this store's memory copies (a node stopping: a shared cache keeps no dead copies)."""
        self._hot.drop_owner(self._token)

    def _touch(self, cid: str, size: int) -> None:
        with self._lock:
            old = self._sizes.pop(cid, None)
            self._bytes += size - (old or 0)
            self._sizes[cid] = size

    def _forget(self, cid: str) -> None:
        with self._lock:
            old = self._sizes.pop(cid, None)
            if old is not None:
                self._bytes -= old

    def _scan(self) -> None:
        # Access order after a restart: file modification time is the best record we have.
        for stale in (self.root / "tmp").iterdir():
            with contextlib.suppress(OSError):
                stale.unlink()
        found: list[tuple[float, str, int]] = []
        for shard in self.root.iterdir():
            if not shard.is_dir() or shard.name == "tmp":
                continue
            for entry in os.scandir(shard):
                st = entry.stat()
                found.append((st.st_mtime, entry.name, st.st_size))
        for _, cid, size in sorted(found):
            self._touch(cid, size)

    def _load_pins(self) -> set[str]:
        path = self.root / "pins.json"
        if not path.exists():
            return set()
        try:
            pins = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StorageError(f"pin file {path} is unreadable: {exc}; fix or remove it") from None
        if not isinstance(pins, list) or not all(isinstance(p, str) for p in pins):
            raise StorageError(f"pin file {path} must hold a JSON list of CID strings")
        return set(pins)

    def _save_pins(self) -> None:
        path = self.root / "pins.json"
        tmp = path.with_suffix(f".{os.getpid()}.{time.monotonic_ns()}")
        tmp.write_text(json.dumps(sorted(self._pins)))
        os.replace(tmp, path)


def _stamp(path: Path) -> Stamp | None:
    """What identifies a file's current content cheaply: inode, size, modification time."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
