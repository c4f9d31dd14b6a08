"""Batched CID checks of received blocks: one batch at a time in a worker thread.

The multi-buffer SHA-256 (:mod:`sedma.net.sha256_lanes`) pays only when several blocks are
hashed together, so a fetch hands every received block to a :class:`BatchVerifier` instead of
hashing it on its own. A batch starts when the worker is free and either a full pass is queued
(16 blocks), or no block request is on the wire any more (nothing else will join soon), or
every block the fetch still expects is queued. Verdicts come back on the event loop, through
each block's callback, in submission order. Nothing is stored or handed on before its check.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from sedma.net import sha256_lanes
from sedma.net.cid import CID
from sedma.net.types import Blob

# True: matches its CID; False: does not; None: not judged (the batch's accept step failed).
INLINE_BYTES = 64 * 1024  # one or two blocks this small are checked on the loop (a manifest)
Verdict = Callable[[bool | None], None]
# Runs in the worker thread on the blocks that passed (store them, hand them to a sink), with
# whether each was already committed in the staging buffer.
Accept = Callable[[list[tuple[str, Blob]], list[bool]], None]


@dataclass(slots=True)
class _Check:
    cid: str
    data: Blob
    done: Verdict
    in_slot: bool  # received straight into its staging slot


class Staging(Protocol):
    """Where blocks may be checked in place: a tensor's output array (:class:`TensorAssembly`)."""

    out: npt.NDArray[np.uint8]

    def lease(self, cid: str) -> memoryview | None: ...

    def slot(self, cid: str, size: int) -> int | None: ...

    def claim(self, cid: str) -> int | None: ...

    def commit(self, cid: str) -> None: ...

    def release(self, cid: str) -> None: ...


def check_batch(
    blocks: list[tuple[str, Blob]], staging: Staging | None = None, leased: Sequence[bool] = ()
) -> tuple[list[bool], list[bool]]:
    """Whether each block hashes to its CID's sha2-256 digest, and which were checked in ``staging``.

    Equal-length blocks share SIMD passes. With ``staging``, a block received straight into its
    slot (``leased``) is hashed there, and one whose slot is still open is copied there and
    hashed in place (one copy instead of a scratch copy and a second one to the output); a
    block that fails leaves only its slot, for the caller to release.
    """
    slots: dict[int, int] = {}
    if staging is not None:
        slots = _claim(blocks, staging, leased)
        if sha256_lanes.available():
            slots.update(_stage(blocks, staging, slots))
    found: dict[int, bytes] = {}
    if slots and staging is not None:
        by_len: dict[int, list[int]] = {}
        for i in slots:
            by_len.setdefault(len(blocks[i][1]), []).append(i)
        for length, idx in by_len.items():
            digests = sha256_lanes.digests(staging.out, [slots[i] for i in idx], length)
            found.update(zip(idx, digests, strict=True))
    rest = [i for i in range(len(blocks)) if i not in found]
    found.update(zip(rest, sha256_lanes.digest_many([blocks[i][1] for i in rest]), strict=True))
    verdicts = [CID.parse(cid).digest == found[i] for i, (cid, _) in enumerate(blocks)]
    return verdicts, [i in slots for i in range(len(blocks))]


def _claim(blocks: list[tuple[str, Blob]], staging: Staging, leased: Sequence[bool]) -> dict[int, int]:
    """The blocks that arrived in their slots: index -> offset (no copy)."""
    slots: dict[int, int] = {}
    for i, in_slot in enumerate(leased):
        if in_slot and (at := staging.claim(blocks[i][0])) is not None:
            slots[i] = at
    return slots


def _stage(blocks: list[tuple[str, Blob]], staging: Staging, taken: dict[int, int]) -> dict[int, int]:
    """Copy each block whose slot is open into it (first copy of a CID only): index -> offset."""
    slots: dict[int, int] = {}
    claimed = {blocks[i][0] for i in taken}
    for i, (cid, data) in enumerate(blocks):
        if i in taken:
            continue
        at = None if cid in claimed else staging.slot(cid, len(data))
        if at is not None:
            staging.out[at : at + len(data)] = np.frombuffer(data, dtype=np.uint8)
            slots[i] = at
            claimed.add(cid)
    return slots


class BatchVerifier:
    """Queues received blocks and checks them in batches, one batch at a time, off the loop."""

    def __init__(
        self, accept: Accept, *, staging: Staging | None = None, full: int = sha256_lanes.LANES
    ) -> None:
        self.accept = accept
        self.staging = staging
        self.full = full
        self.queue: list[_Check] = []
        self.running = 0  # blocks in the batch being checked
        self._task: asyncio.Future[None] | None = None
        self.error: BaseException | None = None  # what broke an accept step (e.g. a full store)

    def __len__(self) -> int:
        """Blocks received and not yet judged (queued or being checked)."""
        return len(self.queue) + self.running

    def submit(self, cid: str, data: Blob, done: Verdict, *, in_slot: bool = False) -> None:
        """Queue a received block; ``done(ok)`` runs on the loop once it is judged.

        ``in_slot``: the bytes were received straight into the block's leased staging slot.
        """
        self.queue.append(_Check(cid, data, done, in_slot))

    def poke(self, *, on_wire: int, expected: int) -> None:
        """Start a batch if the worker is free and waiting longer cannot fill it better.

        ``on_wire``: block requests still in flight; ``expected``: blocks the fetch still
        needs that are neither queued nor being checked.
        """
        if self._task is not None or not self.queue:
            return
        if len(self.queue) >= self.full or on_wire == 0 or expected == 0:
            batch, self.queue = self.queue[: self.full * 2], self.queue[self.full * 2 :]
            self.running = len(batch)
            self._task = asyncio.ensure_future(self._run(batch))

    async def _run(self, batch: list[_Check]) -> None:
        verdicts: list[bool | None] = [None] * len(batch)
        blocks = [(c.cid, c.data) for c in batch]
        leased = [c.in_slot for c in batch]
        try:
            if len(blocks) <= 2 and sum(len(data) for _, data in blocks) <= INLINE_BYTES:
                verdicts = list(self._check_and_accept(blocks, leased))  # µs: a thread hop costs more
            else:
                verdicts = list(await asyncio.to_thread(self._check_and_accept, blocks, leased))
        except Exception as exc:  # handed to the fetch, which raises it
            self.error = exc
        finally:
            self._task, self.running = None, 0
        for check, ok in zip(batch, verdicts, strict=True):
            check.done(ok)

    def _check_and_accept(self, blocks: list[tuple[str, Blob]], leased: list[bool]) -> list[bool]:
        verdicts, in_place = check_batch(blocks, self.staging, leased)
        for (cid, _), ok, placed in zip(blocks, verdicts, in_place, strict=True):
            if placed and self.staging is not None:
                (self.staging.commit if ok else self.staging.release)(cid)
        good = [(b, placed) for b, ok, placed in zip(blocks, verdicts, in_place, strict=True) if ok]
        if good:
            self.accept([b for b, _ in good], [placed for _, placed in good])
        return verdicts

    async def drain(self, *, poke: Callable[[], None]) -> None:
        """Judge everything queued (``poke`` restarts batches as the worker frees up)."""
        while self.queue or self._task is not None:
            if self._task is None:
                poke()
            task = self._task
            if task is not None:
                await asyncio.wait([task])

    def cancel(self) -> None:
        """Drop what is queued (the fetch is over); a running batch finishes on its own."""
        self.queue.clear()
