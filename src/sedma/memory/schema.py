"""The LTM schema: one records table, one meta table holding the schema version, migrations."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    inspect,
    select,
)

from sedma.errors import StorageError

SCHEMA_VERSION = 1
RECORDS_TABLE = "sedma_ltm"
META_TABLE = "sedma_meta"

metadata = MetaData()

records = Table(
    RECORDS_TABLE,
    metadata,
    Column("layer", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("value", Text, nullable=False),  # compact JSON text
    Column("score", Float, nullable=False),
    Column("uses", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),  # last write of the value
    Column("touched_at", Float, nullable=False),  # last write or use: the age of the eviction formula
    Column("use_bonus", Float, nullable=False),  # alpha*ln(1+uses), kept so SQL can recompute merit
    Column("merit", Float, nullable=False),  # time-free eviction value, see EvictionWeights.merit
    PrimaryKeyConstraint("layer", "kind", "key", name="sedma_ltm_pk"),
)
Index("sedma_ltm_merit", records.c.merit)
Index("sedma_ltm_score", records.c.layer, records.c.kind, records.c.score)

meta = Table(
    META_TABLE,
    metadata,
    Column("name", Text, primary_key=True),
    Column("value", Text, nullable=False),
)

#: from_version -> function migrating the schema one step up, inside the open write transaction.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {}


def ensure_schema(conn: Connection) -> int:
    """Create missing tables, check a foreign schema, migrate older versions; returns the version."""
    existing = set(inspect(conn).get_table_names())
    if RECORDS_TABLE in existing:
        _check_columns(conn)
    metadata.create_all(conn, checkfirst=True)
    row = conn.execute(select(meta.c.value).where(meta.c.name == "schema_version")).first()
    # No version row: a fresh database (or one whose columns were just checked) is current.
    version = int(row[0]) if row is not None else SCHEMA_VERSION
    if row is None:
        conn.execute(meta.insert().values(name="schema_version", value=str(version)))
    if version > SCHEMA_VERSION:
        raise StorageError(
            f"LTM schema version {version} is newer than this SEDMA understands ({SCHEMA_VERSION}); "
            "upgrade sedma"
        )
    while version < SCHEMA_VERSION:
        step = MIGRATIONS.get(version)
        if step is None:
            raise StorageError(f"LTM schema version {version} has no migration to {version + 1}")
        step(conn)
        version += 1
        conn.execute(meta.update().where(meta.c.name == "schema_version").values(value=str(version)))
    return version


def _check_columns(conn: Connection) -> None:
    """A table named like ours but with other columns is someone else's: refuse, change nothing."""
    have = {c["name"] for c in inspect(conn).get_columns(RECORDS_TABLE)}
    missing = {c.name for c in records.columns} - have
    if missing:
        raise StorageError(
            f"table {RECORDS_TABLE!r} exists but lacks columns {sorted(missing)}: not a SEDMA memory"
        )
