"""JSON-lines export/import of long-term records: parsing and validation (pure, apart from reading)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sedma.errors import InputError
from sedma.memory.records import encode_value

REQUIRED_KEYS = ("layer", "kind", "key", "value")
OPTIONAL_KEYS = ("score", "uses", "created_at", "updated_at")


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One validated line of an import file; optional fields are None when the line omits them."""

    layer: str
    kind: str
    key: str
    value_json: str
    score: float
    uses: int | None
    created_at: float | None
    updated_at: float | None


def read_jsonl(path: str | os.PathLike[str]) -> list[ImportRow]:
    """Parse and validate a whole file; InputError names the file and line of the first bad line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"{p}: cannot read import file ({exc.strerror or exc})") from None
    rows: list[ImportRow] = []
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(parse_line(line))
        except InputError as exc:
            raise InputError(f"{p}:{lineno}: {exc}") from None
    return rows


def parse_line(line: bytes | str) -> ImportRow:
    """Validate one JSON-lines record: {"layer", "kind", "key", "value", "score"[, "uses", ...]}."""
    try:
        obj = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise InputError(f"expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise InputError(f"unknown field(s) {unknown}")
    for name in REQUIRED_KEYS:
        if name not in obj:
            raise InputError(f"missing field {name!r}")
    layer, kind, key = (_name(obj, n) for n in ("layer", "kind", "key"))
    return ImportRow(
        layer=layer,
        kind=kind,
        key=key,
        value_json=encode_value(layer, kind, key, obj["value"]),
        score=_number(obj, "score", default=0.0),
        uses=_uses(obj),
        created_at=_opt_number(obj, "created_at"),
        updated_at=_opt_number(obj, "updated_at"),
    )


def _name(obj: dict[str, Any], field: str) -> str:
    v = obj[field]
    if not isinstance(v, str) or not v or "\x00" in v:
        raise InputError(f"field {field!r} must be a non-empty string without NUL, got {v!r}")
    return v


def _number(obj: dict[str, Any], field: str, *, default: float) -> float:
    v = _opt_number(obj, field)
    return default if v is None else v


def _opt_number(obj: dict[str, Any], field: str) -> float | None:
    if field not in obj or obj[field] is None:
        return None
    v = obj[field]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise InputError(f"field {field!r} must be a finite number, got {v!r}")
    return float(v)


def _uses(obj: dict[str, Any]) -> int | None:
    if "uses" not in obj or obj["uses"] is None:
        return None
    v = obj["uses"]
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise InputError(f"field 'uses' must be an integer >= 0, got {v!r}")
    return v
