"""Partition plans: which block of the matrix sits on which crossbar tile of which device.

A plan is plain data shared by the partitioners (:mod:`sedma.compute.partition`) and the
crossbar engine (:mod:`sedma.compute.crossbar`), which groups blocks by tile size so each
group is one stacked array and runs without a per-tile Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from sedma.errors import InputError


@dataclass(frozen=True, slots=True)
class Block:
    """A ``rows × cols`` sub-matrix at (``row0``, ``col0``) on a ``tile × tile`` crossbar of ``device``."""

    row0: int
    col0: int
    rows: int
    cols: int
    tile: int
    device: str

    @property
    def provisioned_cells(self) -> int:
        return self.tile * self.tile


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """Every block of an ``m × n`` matrix; blocks cover the matrix exactly once."""

    shape: tuple[int, int]
    blocks: tuple[Block, ...]
    strategy: str

    @property
    def tiles(self) -> int:
        return len(self.blocks)

    def cell_utilization(self) -> float:
        """Matrix cells ÷ provisioned crossbar cells (the paper's Mem. Eff.)."""
        provisioned = sum(b.provisioned_cells for b in self.blocks)
        return (self.shape[0] * self.shape[1]) / provisioned if provisioned else 0.0

    def validate(self) -> None:
        """Raise :class:`InputError` unless the blocks tile the matrix exactly once."""
        m, n = self.shape
        covered = 0
        for b in self.blocks:
            if b.rows < 1 or b.cols < 1 or b.rows > b.tile or b.cols > b.tile:
                raise InputError(f"block {b} does not fit its {b.tile}x{b.tile} tile")
            if b.row0 < 0 or b.col0 < 0 or b.row0 + b.rows > m or b.col0 + b.cols > n:
                raise InputError(f"block {b} lies outside the {m}x{n} matrix")
            covered += b.rows * b.cols
        if covered != m * n:
            raise InputError(f"plan covers {covered} cells of a {m}x{n} matrix")


def static_partition(shape: tuple[int, int], *, tile: int, device: str) -> PartitionPlan:
    """MELISO+'s virtualisation: one crossbar size everywhere, edge blocks zero-padded."""
    m, n = shape
    if m < 1 or n < 1:
        raise InputError(f"matrix shape {shape} is empty")
    if tile < 2:
        raise InputError(f"tile size {tile} is below 2")
    blocks = tuple(
        Block(r, c, min(tile, m - r), min(tile, n - c), tile, device)
        for r in range(0, m, tile)
        for c in range(0, n, tile)
    )
    return PartitionPlan(shape=(m, n), blocks=blocks, strategy="static")
