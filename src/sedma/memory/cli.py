"""``sedma memory``: inspect, export, import and clear the dual memory (a thin layer over the library)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from sedma._output import console, emit_json, print_table
from sedma.errors import InputError
from sedma.memory.ltm import LongTermMemory
from sedma.memory.stm import ShortTermMemory

JSON_OPTION = click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")
VALUE_WIDTH = 60


@click.group()
def memory() -> None:
    """Inspect, export and import the dual memory.

    Long-term memory: $SEDMA_LTM_URL, else $SEDMA_HOME/memory.db (SQLite).
    Short-term memory: $SEDMA_STM_URL (Redis), else in-process (empty in a fresh process).
    """


@memory.command()
@JSON_OPTION
def stats(as_json: bool) -> None:
    """Counts per layer/kind, capacity, backends, streams."""
    with LongTermMemory() as ltm:
        ltm_stats = ltm.stats()
    with ShortTermMemory() as stm:
        streams = _stream_rows(stm)
        stm_stats = {"backend": stm.backend, "window": stm.window, "streams": streams}
    if as_json:
        emit_json({"ltm": ltm_stats, "stm": stm_stats})
        return
    where = escape(str(ltm_stats.get("path", ltm_stats["url"])))
    console.print(
        f"[bold]long-term[/bold] {ltm_stats['backend']} at {where}: "
        f"{ltm_stats['count']} / {ltm_stats['capacity']} records, schema v{ltm_stats['schema_version']}"
    )
    groups = [
        (escape(g["layer"]), escape(g["kind"]), g["count"], g["mean_score"]) for g in ltm_stats["groups"]
    ]
    if groups:
        print_table("long-term records", ["layer", "kind", "records", "mean score"], groups)
    console.print(f"[bold]short-term[/bold] {stm.backend}, window {stm.window}: {len(streams)} streams")
    if streams:
        cols = ["stream", "count", "mean", "p95", "last", "trend"]
        rows = [[escape(s["stream"]), *(s[c] for c in cols[1:])] for s in streams]
        print_table("short-term streams", cols, rows)


@memory.command()
@click.option("--layer", "-l", default=None, help="Only this layer (compute, net, deploy, run).")
@click.option("--kind", "-k", default=None, help="Only this kind (lambda, partition, peer, placement, ...).")
@click.option("--prefix", default="", help="Only keys starting with this text.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0), help="At most this many.")
@JSON_OPTION
def show(layer: str | None, kind: str | None, prefix: str, limit: int, as_json: bool) -> None:
    """List long-term records (filter by --layer, --kind, --prefix)."""
    with LongTermMemory() as ltm:
        recs = ltm.query(layer, kind, prefix)
    if as_json:
        emit_json({"count": len(recs), "records": [r.to_json() for r in recs[:limit]]})
        return
    rows = [
        (escape(r.layer), escape(r.kind), escape(r.key), r.score, r.uses, escape(_short(r.value)))
        for r in recs[:limit]
    ]
    print_table(f"long-term records ({len(recs)})", ["layer", "kind", "key", "score", "uses", "value"], rows)
    if len(recs) > limit:
        console.print(f"... {len(recs) - limit} more (use --limit or --json)")


@memory.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@JSON_OPTION
def export_cmd(file: Path, as_json: bool) -> None:
    """Write every long-term record to FILE as JSON lines."""
    with LongTermMemory() as ltm:
        n = ltm.export_jsonl(file)
    _done(as_json, {"exported": n, "file": str(file)}, f"exported {n} records to {file}")


@memory.command(name="import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@JSON_OPTION
def import_cmd(file: Path, as_json: bool) -> None:
    """Load JSON-lines records from FILE, all or nothing."""
    with LongTermMemory() as ltm:
        n = ltm.import_jsonl(file)
        total = ltm.count()
    _done(
        as_json, {"imported": n, "file": str(file), "count": total}, f"imported {n} records ({total} stored)"
    )


@memory.command()
@click.option("--yes", is_flag=True, help="Really delete every record and stream.")
@JSON_OPTION
def clear(yes: bool, as_json: bool) -> None:
    """Delete every record and stream (asks for --yes)."""
    if not yes:
        raise InputError("'sedma memory clear' deletes every record: pass --yes to confirm")
    with LongTermMemory() as ltm:
        n = ltm.count()
        ltm.clear()
    with ShortTermMemory() as stm:
        streams = len(stm.streams())
        stm.clear()
    _done(as_json, {"cleared": n, "streams_cleared": streams}, f"cleared {n} records and {streams} streams")


@memory.command()
def demo() -> None:
    """A short tour: remember and recall patterns, watch a stream's statistics (temporary store)."""
    from sedma.memory.demo import run_demo

    run_demo(console)


def _stream_rows(stm: ShortTermMemory) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in stm.streams():
        s = stm.stats(name)
        if s is not None:
            rows.append({"stream": name, **s.to_json()})
    return rows


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _done(as_json: bool, payload: dict[str, Any], message: str) -> None:
    if as_json:
        emit_json(payload)
    else:
        console.print(escape(message))
