"""Energy and latency estimates per programming and per MVM, from pulse and read parameters.

NeuroSim-style model (Chen et al., IEEE TCAD 2018; Peng et al., IEDM 2019), documented with its
sources in the package README; every conductance in siemens, every time in seconds:

* Write pulse of V volts for τ seconds into a cell of conductance G: V²·G·τ, with G at
  mid-range Gmin + (Gmax − Gmin)/2 and V² the mean of the LTP/LTD pulse voltages squared.
* Verify read of a cell: V_read²·G·τ_read in the array plus one ADC conversion (FOM·2^bits,
  Walden figure of merit), as a verify read is a sensed read.
* A row read: all columns at once, but ``cols_per_adc`` columns share one ADC through a
  multiplexer (NeuroSim's default 8), so it takes cols_per_adc·(τ_read + bits·t_SAR).
* Programming is row-by-row inside a tile (one word line selected), all tiles at once: a
  write-and-verify iteration of a row takes (largest pulse train of that iteration)·τ + one row
  read, so latency = t · Σ_iterations (k_max·τ + row read), the slowest group setting the pace.
* One MVM, inputs x̂ ∈ [0, 1] as read voltages V_read·x̂_j on the rows: array energy
  τ_read·V_read²·Σ_j x̂_j²·Σ_i G_ij (actual programmed conductances), one DAC conversion per
  tile row and one ADC conversion per tile column; latency = DAC settle + one row read (all
  rows driven at once), tiles in parallel.
* First-order correction (MELISO+) re-programs the x̃ copies for every vector: m·n cells at the
  pulses and verify reads per cell measured when A was programmed, at A's programming latency;
  and reads two more row-wise products. Reported apart (``xtilde_program_j``/``_s``) beside
  the read itself (``read_latency_s``), since it dominates whenever correction is on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sedma.compute.devices import Device
from sedma.compute.writeverify import ProgramStats
from sedma.errors import InputError


@dataclass(frozen=True, slots=True)
class Peripherals:
    """Converters: Walden FOM (J per conversion step), SAR cycle per bit, columns per shared ADC."""

    adc_fom_j: float = 10e-15
    dac_fom_j: float = 1e-15
    adc_cycle_s: float = 1e-9
    dac_settle_s: float = 1e-9
    cols_per_adc: int = 8

    def validate(self) -> None:
        for name in ("adc_fom_j", "dac_fom_j", "adc_cycle_s", "dac_settle_s"):
            if getattr(self, name) < 0:
                raise InputError(f"peripheral {name} must be >= 0, got {getattr(self, name)}")
        if self.cols_per_adc < 1:
            raise InputError(f"peripheral cols_per_adc must be >= 1, got {self.cols_per_adc}")

    def adc_j(self, bits: int) -> float:
        """Energy of one conversion: FOM·2^bits (0 for an ideal, 0-bit converter)."""
        return self.adc_fom_j * (1 << bits) if bits else 0.0

    def dac_j(self, bits: int) -> float:
        return self.dac_fom_j * (1 << bits) if bits else 0.0

    def row_read_s(self, dev: Device, adc_bits: int) -> float:
        """One read of all columns of a row: the ADC-sharing columns are converted in turn."""
        return self.cols_per_adc * (dev.read_time_s + adc_bits * self.adc_cycle_s)


@dataclass(frozen=True, slots=True)
class GroupCostInput:
    """What the cost model needs of one tile group (plain data)."""

    device: Device
    tile: int
    blocks: int
    stats: ProgramStats
    colg: npt.NDArray[np.float64]  # (n,) Σ_i (G⁺ + G⁻) per input column, siemens
    dac_bits: int
    adc_bits: int


@dataclass(frozen=True, slots=True)
class Cost:
    energy_j: float
    latency_s: float
    breakdown: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {"energy_j": self.energy_j, "latency_s": self.latency_s, **self.breakdown}


def _mid_g(dev: Device) -> float:
    return dev.g_min + 0.5 * dev.span


def _pulse_v2(dev: Device) -> float:
    return 0.5 * (dev.pulse_v**2 + dev.pulse_v_ltd**2)


def _write_energy(g: GroupCostInput, pulses: float, reads: float, p: Peripherals) -> float:
    """Pulses and verify reads (array read plus one ADC conversion each)."""
    dev, mid = g.device, _mid_g(g.device)
    verify = dev.read_v**2 * mid * dev.read_time_s + p.adc_j(g.adc_bits)
    return pulses * _pulse_v2(dev) * mid * dev.pulse_width_s + reads * verify


def _write_latency(g: GroupCostInput, p: Peripherals) -> float:
    k_max = np.asarray(g.stats.max_pulses_per_iteration, dtype=float)
    per_iter = k_max * g.device.pulse_width_s + p.row_read_s(g.device, g.adc_bits)
    return float(g.tile * per_iter.sum())


def programming_cost(groups: Sequence[GroupCostInput], peripherals: Peripherals | None = None) -> Cost:
    """Energy of every pulse and verify read; latency of the slowest tile group."""
    p = peripherals or Peripherals()
    energy = sum(_write_energy(g, g.stats.pulses, g.stats.verify_reads, p) for g in groups)
    latency = max((_write_latency(g, p) for g in groups), default=0.0)
    return Cost(energy, latency, {"pulses": float(sum(g.stats.pulses for g in groups))})


def _converters(g: GroupCostInput, p: Peripherals) -> float:
    lines = g.blocks * g.tile
    return lines * (p.adc_j(g.adc_bits) + p.dac_j(g.dac_bits))


def _read_latency(g: GroupCostInput, p: Peripherals) -> float:
    return (p.dac_settle_s if g.dac_bits else 0.0) + p.row_read_s(g.device, g.adc_bits)


def _xtilde(groups: Sequence[GroupCostInput], p: Peripherals) -> tuple[float, float]:
    """MELISO+ re-programs the x̃ copies (every cell of every tile) for each vector."""
    energy = latency = 0.0
    for g in groups:
        cells = g.blocks * g.tile * g.tile
        per_cell = g.stats.pulses / max(g.stats.cells, 1)
        reads = g.stats.verify_reads / max(g.stats.cells, 1)
        energy += _write_energy(g, cells * per_cell, cells * reads, p)
        latency = max(latency, _write_latency(g, p))
    return energy, latency


def mvm_cost(
    groups: Sequence[GroupCostInput],
    x_sq: npt.NDArray[np.float64],
    *,
    correction: str,
    peripherals: Peripherals | None = None,
) -> Cost:
    """Energy and latency of one MVM; ``x_sq`` is the mean over vectors of x̂∘x̂ (scaled inputs)."""
    p = peripherals or Peripherals()
    array = sum(g.device.read_time_s * g.device.read_v**2 * float(g.colg @ x_sq) for g in groups)
    conv = sum(_converters(g, p) for g in groups)
    read_s = max((_read_latency(g, p) for g in groups), default=0.0)
    xt_j, xt_s = _xtilde(groups, p) if correction != "none" else (0.0, 0.0)
    if correction != "none":
        # Two more row-wise products (A x̃ and Ã x̃) beside Ã x, read one after the other.
        array, conv, read_s = 3.0 * array, 3.0 * conv, 3.0 * read_s
    parts = {"array_j": array, "converters_j": conv, "read_latency_s": read_s,
             "xtilde_program_j": xt_j, "xtilde_program_s": xt_s}  # fmt: skip
    return Cost(array + conv + xt_j, read_s + xt_s, parts)
