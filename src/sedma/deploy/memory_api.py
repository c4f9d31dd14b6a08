"""The slice of ``sedma.memory.DualMemory`` this layer uses, as a structural type."""

from __future__ import annotations

from typing import Any, Protocol


class Memory(Protocol):
    """recall/remember in LTM, observe/recent in STM (DualMemory satisfies this)."""

    def recall(self, layer: str, kind: str, key: str) -> Any: ...

    def remember(
        self, layer: str, kind: str, key: str, value: Any, *, score: float = 0.0, force: bool = False
    ) -> bool: ...

    def observe(self, stream: str, value: float) -> None: ...

    def recent(self, stream: str) -> Any: ...
