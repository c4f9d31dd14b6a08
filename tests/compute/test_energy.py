"""Energy and latency estimates from pulse and read parameters."""

from __future__ import annotations

import numpy as np

from sedma.compute.crossbar import program


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
