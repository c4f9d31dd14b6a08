"""Energy and latency estimates per programming and per MVM, from pulse and read parameters.

Model (documented in the package README):

* A write pulse of V volts for τ seconds into a cell of conductance G dissipates V²·G·τ; we use
  the cell's mid-range conductance Gmin + (Gmax − Gmin)/2 and the mean square of the LTP/LTD
  pulse voltages. Each verify read costs V_read²·G·τ_read.
* Programming is row-parallel inside a tile and all tiles work at once: a write-and-verify
  iteration of a row takes (largest pulse train of that iteration)·τ + τ_read, a tile has t rows,
  so latency = t · Σ_iterations (k_max·τ + τ_read), the slowest tile group setting the pace.
* One analog read of input x (scaled to the DAC range, voltage V_read·x_j on input line j)
  dissipates τ_read·V_read²·Σ_j x_j²·Σ_i G_ij (array) plus one DAC conversion per tile input
  and one ADC conversion per tile output, each FOM·2^bits (Walden figure of merit).
  Latency = DAC settle + τ_read + bits·(SAR cycle), tiles in parallel.
* First-order correction (MELISO+) re-programs the x̃ copies for every vector: m·n cells at the
  pulses per cell measured when A was programmed, and two more row-wise reads.
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
    """Converter figures: Walden FOM (J per conversion step) and timing; SAR, one cycle per bit."""

    adc_fom_j: float = 10e-15
    dac_fom_j: float = 1e-15
    adc_cycle_s: float = 1e-9
    dac_settle_s: float = 1e-9

    def validate(self) -> None:
        for name in ("adc_fom_j", "dac_fom_j", "adc_cycle_s", "dac_settle_s"):
            if getattr(self, name) < 0:
                raise InputError(f"peripheral {name} must be >= 0, got {getattr(self, name)}")


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


def _write_energy(dev: Device, pulses: float, reads: float) -> float:
    g = _mid_g(dev)
    return pulses * _pulse_v2(dev) * g * dev.pulse_width_s + reads * dev.read_v**2 * g * dev.read_time_s


def _write_latency(dev: Device, tile: int, stats: ProgramStats) -> float:
    per_iter = np.asarray(stats.max_pulses_per_iteration, dtype=float) * dev.pulse_width_s + dev.read_time_s
    return float(tile * per_iter.sum())


def programming_cost(groups: Sequence[GroupCostInput]) -> Cost:
    """Energy of every pulse and verify read; latency of the slowest tile group."""
    energy = sum(_write_energy(g.device, g.stats.pulses, g.stats.verify_reads) for g in groups)
    latency = max((_write_latency(g.device, g.tile, g.stats) for g in groups), default=0.0)
    return Cost(energy, latency, {"pulses": float(sum(g.stats.pulses for g in groups))})


def _converters(g: GroupCostInput, p: Peripherals) -> float:
    lines = g.blocks * g.tile
    adc = lines * p.adc_fom_j * (1 << g.adc_bits) if g.adc_bits else 0.0
    dac = lines * p.dac_fom_j * (1 << g.dac_bits) if g.dac_bits else 0.0
    return adc + dac


def _read_latency(g: GroupCostInput, p: Peripherals) -> float:
    return (p.dac_settle_s if g.dac_bits else 0.0) + g.device.read_time_s + g.adc_bits * p.adc_cycle_s


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
    latency = max((_read_latency(g, p) for g in groups), default=0.0)
    parts = {"array_j": array, "converters_j": conv, "xtilde_program_j": 0.0, "xtilde_program_s": 0.0}
    if correction != "none":
        # MELISO+ programs the x̃ copies for every vector, then reads two row-wise products.
        for g in groups:
            cells = g.blocks * g.tile * g.tile
            per_cell = g.stats.pulses / max(g.stats.cells, 1)
            reads = g.stats.verify_reads / max(g.stats.cells, 1)
            parts["xtilde_program_j"] += _write_energy(g.device, cells * per_cell, cells * reads)
            latency_x = _write_latency(g.device, g.tile, g.stats)
            parts["xtilde_program_s"] = max(parts["xtilde_program_s"], latency_x)
        parts["array_j"] *= 3.0
    energy = parts["array_j"] + conv + parts["xtilde_program_j"]
    return Cost(energy, latency + parts["xtilde_program_s"], parts)
