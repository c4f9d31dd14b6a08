"""A tiny tour of the dual memory for the README's first quick-start command."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sedma.memory.dual import DualMemory
from sedma.memory.ltm import LongTermMemory
from sedma.memory.stm import ShortTermMemory
from sedma.memory.urls import DB_FILENAME, sqlite_url


def run_demo(console: Console, *, home: Path | None = None) -> None:
    """Remember and recall a few patterns, then watch a short-term stream's statistics move."""
    with (
        tempfile.TemporaryDirectory(prefix="sedma-demo-") as tmp,
        # Explicitly SQLite + in-process: the tour never touches SEDMA_LTM_URL / SEDMA_STM_URL stores.
        DualMemory(
            LongTermMemory(sqlite_url((home or Path(tmp)) / DB_FILENAME)),
            ShortTermMemory(local=True, window=20),
        ) as mem,
    ):
        assert mem.ltm is not None
        where = mem.ltm.stats().get("path", mem.ltm.url)
        console.print(f"[bold]long-term memory[/bold] (SQLite at {where})")
        mem.remember("compute", "lambda", "smooth/EpiRAM", {"lambda": 3e-3}, score=0.90)
        mem.remember("compute", "lambda", "smooth/EpiRAM", {"lambda": 9e-3}, score=0.40)  # worse: kept out
        mem.remember("net", "peer", "peer-a", {"rtt_ms": 1.8, "free_gb": 12}, score=0.75)
        mem.used("compute", "lambda", "smooth/EpiRAM")
        table = Table("layer", "kind", "key", "value", "score", "uses")
        for rec in mem.ltm.query():
            table.add_row(
                rec.layer, rec.kind, rec.key, json.dumps(rec.value), f"{rec.score:.2f}", str(rec.uses)
            )
        console.print(table)
        console.print(
            "recall compute/lambda/smooth/EpiRAM ->", mem.recall("compute", "lambda", "smooth/EpiRAM")
        )
        console.print("[bold]short-term memory[/bold] (in-process, window 20)")
        for t in range(60):
            mem.observe("compute/error/smooth/EpiRAM", 1e-3 * (1 + 0.5 * math.sin(t / 5)) + 2e-5 * t)
        stats = mem.recent("compute/error/smooth/EpiRAM")
        assert stats is not None
        console.print(
            f"compute/error/smooth/EpiRAM: n={stats.count} mean={stats.mean:.3e} std={stats.std:.1e} "
            f"ewma={stats.ewma:.3e} p95={stats.p95:.3e} trend={stats.trend:+.1e}/sample"
        )
