"""DualMemory: the one façade the three layers use, with the paper's ltm/stm ablation switches."""

from __future__ import annotations

import os
from typing import Any

from sedma.memory.ltm import DEFAULT_CACHE_SIZE, DEFAULT_CAPACITY, LongTermMemory
from sedma.memory.records import Record, StreamStats
from sedma.memory.stm import DEFAULT_WINDOW, ShortTermMemory
from sedma.memory.urls import resolve_ltm_url


class DualMemory:
    """Long-term patterns (LTM) plus short-term workload statistics (STM); either may be switched off."""

    def __init__(self, ltm: LongTermMemory | None, stm: ShortTermMemory | None) -> None:
        self.ltm = ltm
        self.stm = stm

    @classmethod
    def open(
        cls,
        *,
        home: str | os.PathLike[str] | None = None,
        ltm: bool = True,
        stm: bool = True,
        ltm_url: str | None = None,
        stm_url: str | None = None,
        capacity: int = DEFAULT_CAPACITY,
        window: int = DEFAULT_WINDOW,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ) -> DualMemory:
        """Open both memories from arguments, then SEDMA_LTM_URL / SEDMA_STM_URL / SEDMA_HOME defaults."""
        long_term = (
            LongTermMemory(resolve_ltm_url(ltm_url, home=home), capacity=capacity, cache_size=cache_size)
            if ltm
            else None
        )
        try:
            short_term = ShortTermMemory(stm_url, window=window) if stm else None
        except BaseException:
            if long_term is not None:
                long_term.close()
            raise
        return cls(long_term, short_term)

    # ---- long-term ---------------------------------------------------------------------

    def recall(self, layer: str, kind: str, key: str) -> Any:
        """The remembered value, or None (absent, or LTM switched off)."""
        rec = self.ltm.get(layer, kind, key) if self.ltm is not None else None
        return rec.value if rec is not None else None

    def recall_record(self, layer: str, kind: str, key: str) -> Record | None:
        """The whole remembered record, or None."""
        return self.ltm.get(layer, kind, key) if self.ltm is not None else None

    def remember(
        self, layer: str, kind: str, key: str, value: Any, *, score: float = 0.0, force: bool = False
    ) -> bool:
        """Upsert-if-better-score (or overwrite with force=True); True if written, False when LTM is off."""
        if self.ltm is None:
            return False
        if force:
            self.ltm.put(layer, kind, key, value, score=score)
            return True
        return self.ltm.upsert_if_better(layer, kind, key, value, score)

    def used(self, layer: str, kind: str, key: str) -> bool:
        """Count one use of a remembered pattern; False when absent or LTM is off."""
        return self.ltm.use(layer, kind, key) if self.ltm is not None else False

    # ---- short-term --------------------------------------------------------------------

    def observe(self, stream: str, value: float) -> None:
        """Append one sample to a stream (no-op when STM is off)."""
        if self.stm is not None:
            self.stm.append(stream, value)

    def recent(self, stream: str) -> StreamStats | None:
        """Statistics of a stream's window, or None (empty, or STM switched off)."""
        return self.stm.stats(stream) if self.stm is not None else None

    # ---- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        """Close both memories."""
        if self.ltm is not None:
            self.ltm.close()
        if self.stm is not None:
            self.stm.close()

    def __enter__(self) -> DualMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"DualMemory(ltm={self.ltm!r}, stm={self.stm!r})"
