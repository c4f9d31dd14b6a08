"""Energy and latency estimates from pulse and read parameters."""

from __future__ import annotations

import numpy as np
import pytest

from sedma.compute.crossbar import program
from sedma.compute.devices import Device
from sedma.compute.energy import GroupCostInput, Peripherals, mvm_cost, programming_cost
from sedma.compute.writeverify import ProgramStats


def test_programming_and_mvm_costs_follow_the_model() -> None:
    rng = np.random.default_rng(0)
    a, x = rng.random((64, 64)), rng.random(64)
    pm = program(a, device="EpiRAM", tile=32)
    prog = pm.program_cost()
    dev = pm.groups[0].device
    g_mid = dev.g_min + dev.span / 2
    v2 = (dev.pulse_v**2 + dev.pulse_v_ltd**2) / 2
    floor = pm.stats.pulses * v2 * g_mid * dev.pulse_width_s
    assert floor < prog.energy_j < floor * 1.01
    assert prog.latency_s >= 32 * pm.stats.iterations * dev.read_time_s
    plain = pm.mvm_cost(x, correction="none")
    corrected = pm.mvm_cost(x, correction="full")
    assert 0 < plain.energy_j < corrected.energy_j
    assert plain.breakdown["converters_j"] > 0 and corrected.breakdown["xtilde_program_j"] > 0
    assert corrected.latency_s > plain.latency_s > 0
    # Inputs nearer the bottom of their range drive lower voltages: less array energy.
    low = pm.mvm_cost(x**4, correction="none").breakdown["array_j"]
    assert 0 < low < plain.breakdown["array_j"]


def test_ideal_device_has_no_converter_energy() -> None:
    pm = program(np.eye(8), device="ideal", tile=8)
    assert pm.mvm_cost(np.ones(8), correction="none").breakdown["converters_j"] == 0.0


def _hand_group() -> GroupCostInput:
    # One 2 × 2 tile: Gmid = 5.5 µS, ±2 V pulses of 100 ns, 0.5 V reads of 10 ns, 4-bit converters.
    dev = Device("hand", 1e-6, 1e-5, 16, 0.0, 0.0, 0.0, pulse_v=2.0, pulse_v_ltd=-2.0,
                 pulse_width_s=100e-9, read_v=0.5, read_time_s=10e-9)  # fmt: skip
    stats = ProgramStats(cells=4, iterations=2, pulses=10, verify_reads=4, max_pulses_per_iteration=[3, 1])
    return GroupCostInput(dev, 2, 1, stats, np.array([1e-5, 2e-5]), dac_bits=4, adc_bits=4)


HAND = Peripherals(adc_fom_j=10e-15, dac_fom_j=1e-15, adc_cycle_s=1e-9, dac_settle_s=1e-9, cols_per_adc=2)


def test_programming_cost_of_a_hand_computed_tile() -> None:
    cost = programming_cost([_hand_group()], HAND)
    pulses = 10 * 4.0 * 5.5e-6 * 100e-9  # pulses · V² · Gmid · τ
    verify = 4 * (0.25 * 5.5e-6 * 10e-9 + 10e-15 * 16)  # reads · (V_read² Gmid τ_read + ADC FOM·2⁴)
    assert cost.energy_j == pytest.approx(pulses + verify, rel=1e-12)
    row_read = 2 * (10e-9 + 4 * 1e-9)  # two columns share an ADC: 2 · (τ_read + 4 SAR cycles)
    assert cost.latency_s == pytest.approx(2 * ((3 * 100e-9 + row_read) + (1 * 100e-9 + row_read)), rel=1e-12)


def test_mvm_cost_of_a_hand_computed_tile() -> None:
    g, x_sq = _hand_group(), np.array([1.0, 0.25])
    plain = mvm_cost([g], x_sq, correction="none", peripherals=HAND)
    array = 10e-9 * 0.25 * (1e-5 * 1.0 + 2e-5 * 0.25)  # τ_read · V_read² · Σ_j x̂_j² Σ_i G_ij
    converters = 2 * (10e-15 * 16 + 1e-15 * 16)  # one ADC and one DAC conversion per line
    read_s = 1e-9 + 2 * (10e-9 + 4e-9)
    assert plain.breakdown["array_j"] == pytest.approx(array, rel=1e-12)
    assert plain.breakdown["converters_j"] == pytest.approx(converters, rel=1e-12)
    assert plain.energy_j == pytest.approx(array + converters, rel=1e-12)
    assert plain.latency_s == pytest.approx(read_s, rel=1e-12)
    full = mvm_cost([g], x_sq, correction="full", peripherals=HAND)
    prog = programming_cost([g], HAND)
    # MELISO+ re-programs the 4 x̃ cells as A was programmed, then reads three products.
    assert full.breakdown["xtilde_program_j"] == pytest.approx(prog.energy_j, rel=1e-12)
    assert full.energy_j == pytest.approx(3 * (array + converters) + prog.energy_j, rel=1e-12)
    assert full.latency_s == pytest.approx(3 * read_s + prog.latency_s, rel=1e-12)
    assert full.breakdown["read_latency_s"] == pytest.approx(3 * read_s, rel=1e-12)


def test_a_512_crossbar_read_is_in_the_published_range() -> None:
    pm = program(np.random.default_rng(0).random((512, 512)), device="TaOx-HfOy", tile=512)
    read = pm.mvm_cost(np.full(512, 0.5), correction="none")
    pm.close()
    # Published analog crossbar MVMs take 0.1–10 µs (ISAAC: 100 ns per read cycle) at 1–100 fJ per MAC.
    assert 50e-9 < read.latency_s < 10e-6
    assert 0.1e-15 < read.energy_j / 512**2 < 100e-15
