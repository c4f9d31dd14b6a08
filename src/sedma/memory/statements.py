"""LTM statements built once and compiled to driver SQL per dialect: the per-call cost is the driver's."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, and_, bindparam, delete, func, not_, select
from sqlalchemy.sql import ClauseElement

from sedma.memory.schema import records

#: The columns a Record is built from, in Record's field order.
RECORD_COLS = (
    records.c.layer,
    records.c.kind,
    records.c.key,
    records.c.value,
    records.c.score,
    records.c.uses,
    records.c.created_at,
    records.c.updated_at,
)
_PK = and_(
    records.c.layer == bindparam("layer"),
    records.c.kind == bindparam("kind"),
    records.c.key == bindparam("key"),
)
_KEEP = and_(
    records.c.layer == bindparam("keep_layer"),
    records.c.kind == bindparam("keep_kind"),
    records.c.key == bindparam("keep_key"),
)
_WRITE_FIELDS = ("value", "score", "updated_at", "touched_at", "use_bonus", "merit")


@dataclass(frozen=True, slots=True)
class Prepared:
    """One statement as driver SQL plus the order of its positional parameters (None: named)."""

    sql: str
    order: tuple[str, ...] | None
    defaults: Mapping[str, Any]  # parameters the compiler added itself (SQLite's OFFSET of a LIMIT)

    def params(self, values: Mapping[str, Any]) -> Any:
        """Parameters in the driver's style: a tuple for qmark (SQLite), the dict for pyformat (psycopg)."""
        if self.order is None:
            return values
        if self.defaults:
            values = {**self.defaults, **values}
        return tuple(values[n] for n in self.order)

    def run(self, conn: Connection, **values: Any) -> Any:
        """Execute inside the connection's transaction, skipping SQLAlchemy's statement compilation.

        Typed Any: the CursorResult's rows are indexed positionally by the callers.
        """
        return conn.exec_driver_sql(self.sql, self.params(values))


def prepare(stmt: ClauseElement, dialect: Dialect) -> Prepared:
    """Compile a Core statement once for a dialect."""
    compiled = stmt.compile(dialect=dialect)
    order: list[str] | None = getattr(compiled, "positiontup", None)
    defaults = {n: v for n, v in compiled.params.items() if v is not None}
    return Prepared(str(compiled), tuple(order) if order else None, defaults)


class Statements:
    """Every statement of the LTM read/write paths, compiled for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.get = prepare(select(*RECORD_COLS).where(_PK), dialect)
        self.head = prepare(select(records.c.score, records.c.uses, records.c.created_at).where(_PK), dialect)
        self.insert = prepare(
            records.insert().values({c.name: bindparam(c.name) for c in records.columns}), dialect
        )
        self.update = prepare(
            records.update().where(_PK).values({n: bindparam(f"new_{n}") for n in _WRITE_FIELDS}), dialect
        )
        self.replace = prepare(
            records.update()
            .where(_PK)
            .values({n: bindparam(f"new_{n}") for n in (*_WRITE_FIELDS, "uses", "created_at")}),
            dialect,
        )
        self.use = prepare(
            records.update()
            .where(_PK)
            .values({n: bindparam(f"new_{n}") for n in ("uses", "touched_at", "use_bonus", "merit")}),
            dialect,
        )
        self.count = prepare(select(func.count()).select_from(records), dialect)
        self.victims = prepare(
            select(records.c.layer, records.c.kind, records.c.key)
            .where(not_(_KEEP))
            .order_by(records.c.merit, records.c.touched_at)
            .limit(bindparam("n")),
            dialect,
        )
        self.delete = prepare(delete(records).where(_PK), dialect)
