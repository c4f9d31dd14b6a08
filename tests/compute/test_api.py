"""The public API of sedma.compute is exactly ``__all__`` and every name resolves."""

from __future__ import annotations

import sedma.compute as compute

EXPECTED = {
    "CORRECTION_MODES", "MELISO_LAMBDA", "PRESETS", "Block", "ComputeOptions", "Cost", "CrossbarConfig",
    "Device", "LambdaDecision", "MatvecReport", "PartitionPlan", "Peripherals", "ProgramStats",
    "ProgrammedMatrix", "Readout", "VerifyConfig", "choose_lambda", "decide_lambda", "get_device",
    "known_devices", "load_device", "process", "program", "smooth", "static_partition",
    "classify", "WorkloadSignature", "adaptive_partition", "search_partition", "DevicePool", "PoolDevice",
    "load_pool",
}  # fmt: skip


def test_public_names_are_pinned_and_importable() -> None:
    assert set(compute.__all__) == EXPECTED
    for name in compute.__all__:
        assert getattr(compute, name) is not None
    assert compute.CORRECTION_MODES == ("none", "first-order", "full") and compute.MELISO_LAMBDA == 1e-12
