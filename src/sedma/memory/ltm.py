"""Long-term memory: (layer, kind, key) -> JSON value, score, uses; SQLite or PostgreSQL, one code path."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Connection, delete, func, select
from sqlalchemy.exc import DBAPIError

from sedma.errors import ConfigError, InputError, StorageError
from sedma.memory.cache import LruCache, copy_plan
from sedma.memory.engine import is_sqlite, make_engine, with_retries, write_txn
from sedma.memory.jsonl import ImportRow, read_jsonl
from sedma.memory.records import EvictionWeights, Record, check_name, check_score, encode_value
from sedma.memory.schema import RECORDS_TABLE, ensure_schema, records
from sedma.memory.statements import RECORD_COLS, Statements
from sedma.memory.urls import parse_ltm_url, redact, resolve_ltm_url

T = TypeVar("T")
Key = tuple[str, str, str]
#: A cache entry: the record, and how to hand out a private copy of its value (see copy_plan).
_Entry = tuple[Record, Callable[[Any], Any] | None, Any]
#: tuple.__new__ builds a Record without NamedTuple's Python-level __new__ (cached-get hot path).
_new_tuple = tuple.__new__

DEFAULT_CAPACITY = 10_000
DEFAULT_CACHE_SIZE = 4096


class LongTermMemory:
    """Persistent patterns that worked, with capacity-bounded eviction and a read-through LRU cache."""

    def __init__(
        self,
        url: str | None = None,
        *,
        capacity: int = DEFAULT_CAPACITY,
        cache_size: int = DEFAULT_CACHE_SIZE,
        eviction: EvictionWeights | None = None,
    ) -> None:
        _check_int("capacity", capacity, minimum=1)
        _check_int("cache_size", cache_size, minimum=0)
        self.url = resolve_ltm_url(url)
        self.capacity = capacity
        self.eviction = (eviction or EvictionWeights()).validate()
        self._engine = make_engine(parse_ltm_url(self.url))
        self.backend: str = self._engine.dialect.name
        self._cache: LruCache[Key, _Entry] = LruCache(cache_size)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._reader: Any = None
        self._sql = Statements(self._engine.dialect)
        try:
            self.schema_version = self._retry(self._open_schema, "open")
        except BaseException:
            self._engine.dispose()
            raise

    # ---- reads -------------------------------------------------------------------------

    def get(self, layer: str, kind: str, key: str) -> Record | None:
        """The record stored under (layer, kind, key), or None; served from the LRU cache when hot."""
        k = (layer, kind, key)
        hit = self._cache.get(k)
        if hit is not None:
            rec, copy, payload = hit
            if copy is None:
                return rec
            # A fresh copy per hit so a caller mutating the value cannot change what others read.
            fields = (layer, kind, key, copy(payload), rec[4], rec[5], rec[6], rec[7])
            return _new_tuple(Record, fields)  # type: ignore[no-any-return]
        row = self._retry(lambda: self._fetch(k), "get")
        if row is None:
            return None
        rec = _to_record(row)
        self._cache.put(k, (rec, *copy_plan(rec.value)))
        return rec

    def query(self, layer: str | None = None, kind: str | None = None, key_prefix: str = "") -> list[Record]:
        """Every record matching layer/kind (None: any) whose key starts with key_prefix, by key."""
        stmt = select(*RECORD_COLS).where(*_filters(layer, kind, key_prefix))
        stmt = stmt.order_by(records.c.layer, records.c.kind, records.c.key)
        return self._read(lambda conn: [_to_record(r) for r in conn.execute(stmt)], "query")

    def top_k(self, layer: str, kind: str, k: int, key_prefix: str = "") -> list[Record]:
        """The k best-scored records of (layer, kind) under key_prefix, best first."""
        _check_int("k", k, minimum=0, error=InputError)
        stmt = select(*RECORD_COLS).where(*_filters(layer, kind, key_prefix))
        stmt = stmt.order_by(records.c.score.desc(), records.c.updated_at.desc()).limit(k)
        return self._read(lambda conn: [_to_record(r) for r in conn.execute(stmt)], "top_k")

    def count(self) -> int:
        """Number of stored records."""
        stmt = select(func.count()).select_from(records)
        return int(self._read(lambda conn: conn.execute(stmt).scalar_one(), "count"))

    def stats(self) -> dict[str, Any]:
        """Backend, location, counts per (layer, kind), capacity and cache hit/miss counters."""
        stmt = select(records.c.layer, records.c.kind, func.count(), func.avg(records.c.score))
        stmt = stmt.group_by(records.c.layer, records.c.kind).order_by(records.c.layer, records.c.kind)
        groups = self._read(lambda conn: conn.execute(stmt).all(), "stats")
        out: dict[str, Any] = {
            "backend": self.backend,
            "url": redact(self.url),
            "schema_version": self.schema_version,
            "count": sum(int(g[2]) for g in groups),
            "capacity": self.capacity,
            "groups": [
                {"layer": g[0], "kind": g[1], "count": int(g[2]), "mean_score": float(g[3])} for g in groups
            ],
            "cache": {"size": len(self._cache), "capacity": self._cache.capacity},
        }
        out["cache"].update(hits=self._cache.hits, misses=self._cache.misses)
        if is_sqlite(self._engine) and self._engine.url.database:
            path = Path(self._engine.url.database)
            out["path"] = str(path)
            out["file_bytes"] = path.stat().st_size if path.exists() else 0
        return out

    # ---- writes ------------------------------------------------------------------------

    def put(self, layer: str, kind: str, key: str, value: Any, *, score: float = 0.0) -> Record:
        """Store a value unconditionally (uses and created_at of an existing record are kept)."""
        k, text, s = _checked(layer, kind, key, value, score)
        rec = self._write(lambda conn: self._upsert(conn, k, text, s, force=True), "put", k)
        assert rec is not None
        return rec

    def upsert_if_better(self, layer: str, kind: str, key: str, value: Any, score: float) -> bool:
        """Write when the key is absent or score >= the stored score; True if written."""
        k, text, s = _checked(layer, kind, key, value, score)
        return self._write(lambda conn: self._upsert(conn, k, text, s, force=False), "upsert", k) is not None

    def use(self, layer: str, kind: str, key: str) -> bool:
        """Count one use of a record (uses += 1, its age restarts); False when absent."""
        k = (layer, kind, key)
        return self._write(lambda conn: self._use(conn, k), "use", k)

    def delete(self, layer: str, kind: str, key: str) -> bool:
        """Remove one record; True when it existed."""
        k = (layer, kind, key)
        return bool(
            self._write(lambda conn: self._sql.delete.run(conn, **_pk_params(k)).rowcount > 0, "delete", k)
        )

    def clear(self) -> None:
        """Remove every record."""
        self._write(lambda conn: conn.execute(delete(records)), "clear", None)
        self._cache.clear()

    def export_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Write every record as one JSON object per line (atomically: temp file + rename)."""
        recs = self.query()
        p = Path(path)
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                for r in recs:
                    f.write(json.dumps(r.to_json(), ensure_ascii=False, separators=(", ", ": ")) + "\n")
            os.replace(tmp, p)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise InputError(f"{p}: cannot write export file ({exc.strerror or exc})") from None
        return len(recs)

    def import_jsonl(self, path: str | os.PathLike[str]) -> int:
        """Load a JSON-lines file all-or-nothing: every line is validated before one transaction."""
        rows = read_jsonl(path)
        if rows:
            self._retry(lambda: self._import_txn(rows), "import")
        self._cache.clear()
        return len(rows)

    def close(self) -> None:
        """Release connections."""
        with self._lock:
            if self._reader is not None:
                _close_quietly(self._reader)
                self._reader = None
        self._engine.dispose()

    def __enter__(self) -> LongTermMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LongTermMemory({redact(self.url)!r}, capacity={self.capacity})"

    # ---- internals ---------------------------------------------------------------------

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        return with_retries(fn, what=f"long-term memory {what}", url=self.url)

    def _open_schema(self) -> int:
        with write_txn(self._engine, RECORDS_TABLE) as conn:
            return ensure_schema(conn)

    def _after_fork(self) -> None:
        """In a forked child, drop the parent's connections without closing them (they are the parent's)."""
        if os.getpid() != self._pid:
            self._pid = os.getpid()
            self._reader = None
            self._lock = threading.Lock()
            self._engine.dispose(close=False)

    def _read(self, fn: Callable[[Connection], T], what: str) -> T:
        self._after_fork()

        def attempt() -> T:
            with self._engine.connect() as conn:
                return fn(conn)

        return self._retry(attempt, what)

    def _write(self, fn: Callable[[Connection], T], what: str, k: Key | None) -> T:
        """Run fn in a write transaction; after commit, drop the written/evicted keys from the cache."""
        self._after_fork()
        evicted: list[Key] = []

        def attempt() -> T:
            evicted.clear()
            with write_txn(self._engine, RECORDS_TABLE) as conn:
                conn.info["sedma_evicted"] = evicted
                try:
                    return fn(conn)
                finally:
                    conn.info.pop("sedma_evicted", None)

        try:
            return self._retry(attempt, what)
        finally:
            if k is not None:
                self._cache.invalidate(k)
            for e in evicted:
                self._cache.invalidate(e)

    def _upsert(self, conn: Connection, k: Key, text: str, score: float, *, force: bool) -> Record | None:
        now, pk, st = time.time(), _pk_params(k), self._sql
        cur = st.head.run(conn, **pk).first()
        if cur is not None and not force and score < cur[0]:
            return None
        uses, created = (0, now) if cur is None else (int(cur[1]), float(cur[2]))
        merit = self.eviction.merit(score, uses, now)
        bonus = self.eviction.use_bonus(uses)
        if cur is None:
            row = dict(pk, value=text, score=score, uses=0, created_at=now, updated_at=now, touched_at=now)
            st.insert.run(conn, **row, use_bonus=bonus, merit=merit)
            self._evict(conn, keep=k)
        else:
            new = {"new_value": text, "new_score": score, "new_updated_at": now, "new_touched_at": now}
            st.update.run(conn, **pk, **new, new_use_bonus=bonus, new_merit=merit)
        return Record(k[0], k[1], k[2], json.loads(text), score, uses, created, now)

    def _use(self, conn: Connection, k: Key) -> bool:
        pk = _pk_params(k)
        cur = self._sql.head.run(conn, **pk).first()
        if cur is None:
            return False
        now, uses = time.time(), int(cur[1]) + 1
        bonus, merit = self.eviction.use_bonus(uses), self.eviction.merit(float(cur[0]), uses, now)
        self._sql.use.run(conn, **pk, new_uses=uses, new_touched_at=now, new_use_bonus=bonus, new_merit=merit)
        return True

    def _evict(self, conn: Connection, *, keep: Key) -> None:
        """Delete the lowest-merit records beyond capacity, never ``keep`` (the record just written)."""
        excess = int(self._sql.count.run(conn).scalar_one()) - self.capacity
        if excess <= 0:
            return
        keep_params = {"keep_layer": keep[0], "keep_kind": keep[1], "keep_key": keep[2]}
        victims: list[Key] = [
            (r[0], r[1], r[2]) for r in self._sql.victims.run(conn, **keep_params, n=excess)
        ]
        for v in victims:
            self._sql.delete.run(conn, **_pk_params(v))
        conn.info.get("sedma_evicted", []).extend(victims)

    def _import_txn(self, rows: list[ImportRow]) -> None:
        self._after_fork()
        with write_txn(self._engine, RECORDS_TABLE) as conn:
            for row in rows:
                self._import_one(conn, row)
            self._evict(conn, keep=(rows[-1].layer, rows[-1].kind, rows[-1].key))

    def _import_one(self, conn: Connection, row: ImportRow) -> None:
        pk, now = _pk_params((row.layer, row.kind, row.key)), time.time()
        cur = self._sql.head.run(conn, **pk).first()
        uses = row.uses if row.uses is not None else (0 if cur is None else int(cur[1]))
        created = row.created_at if row.created_at is not None else (now if cur is None else float(cur[2]))
        updated = row.updated_at if row.updated_at is not None else now
        fields = {
            "value": row.value_json,
            "score": row.score,
            "uses": uses,
            "created_at": created,
            "updated_at": updated,
            "touched_at": updated,
            "use_bonus": self.eviction.use_bonus(uses),
            "merit": self.eviction.merit(row.score, uses, updated),
        }
        if cur is None:
            self._sql.insert.run(conn, **pk, **fields)
        else:
            self._sql.replace.run(conn, **pk, **{f"new_{n}": v for n, v in fields.items()})

    def _fetch(self, k: Key) -> Sequence[Any] | None:
        self._after_fork()
        get = self._sql.get
        # SQLite's qmark order is (layer, kind, key): pass the key tuple itself on the hot path.
        params: Any = k if get.order == ("layer", "kind", "key") else get.params(_pk_params(k))
        dbapi = self._engine.dialect.loaded_dbapi
        with self._lock:
            try:
                cur = self._reader_conn().cursor()
                try:
                    cur.execute(get.sql, params)
                    row: Sequence[Any] | None = cur.fetchone()
                finally:
                    cur.close()
                return row
            except dbapi.Error as exc:
                lost = False
                if not is_sqlite(self._engine) and self._reader is not None:
                    lost = self._engine.dialect.is_disconnect(exc, self._reader.driver_connection, None)
                    _close_quietly(self._reader)  # a broken PG connection is replaced on retry
                    self._reader = None
                raise DBAPIError.instance(
                    get.sql, params, exc, dbapi.Error, connection_invalidated=lost
                ) from exc

    def _reader_conn(self) -> Any:
        if self._reader is None:
            conn = self._engine.raw_connection()
            if not is_sqlite(self._engine):
                driver: Any = conn.driver_connection
                driver.autocommit = True  # never idle in a transaction between look-ups
            self._reader = conn
        return self._reader


def _checked(layer: str, kind: str, key: str, value: Any, score: float) -> tuple[Key, str, float]:
    k = (check_name("layer", layer), check_name("kind", kind), check_name("key", key))
    return k, encode_value(layer, kind, key, value), check_score(score, where=f"score of {k}")


def _pk_params(k: Key) -> dict[str, str]:
    return {"layer": k[0], "kind": k[1], "key": k[2]}


def _filters(layer: str | None, kind: str | None, key_prefix: str) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if layer is not None:
        out.append(records.c.layer == layer)
    if kind is not None:
        out.append(records.c.kind == kind)
    if key_prefix:
        # substr, not LIKE: SQLite's LIKE ignores ASCII case and both treat % and _ as wildcards.
        out.append(func.substr(records.c.key, 1, len(key_prefix)) == key_prefix)
    return out


def _to_record(row: Sequence[Any]) -> Record:
    try:
        value = json.loads(row[3])
    except (TypeError, ValueError) as exc:
        raise StorageError(f"record {tuple(row[:3])} holds invalid JSON ({exc})") from None
    return Record(row[0], row[1], row[2], value, float(row[4]), int(row[5]), float(row[6]), float(row[7]))


def _check_int(name: str, v: object, *, minimum: int, error: type[Exception] = ConfigError) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise error(f"{name} must be an integer >= {minimum}, got {v!r}")


def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection must not mask the original error
        conn.close()
