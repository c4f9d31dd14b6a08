from __future__ import annotations

from pathlib import Path

import pytest

from sedma.deploy.trigger import TriggerConfig, expected_throughput, should_recompile, update_expected
from sedma.memory import DualMemory

CFG = TriggerConfig()


@pytest.mark.parametrize(
    ("current", "expected", "util", "fires"),
    [
        (100.0, 100.0, 0.5, False),
        (81.0, 100.0, 0.5, False),
        (79.0, 100.0, 0.5, True),  # ratio < θ = 0.8
        (100.0, 100.0, 0.86, True),  # utilisation > ρ = 0.85
        (100.0, 100.0, 0.85, False),
        (None, 100.0, None, False),
        (50.0, None, 0.2, False),  # no expectation yet
    ],
)
def test_eq14(current: float | None, expected: float | None, util: float | None, fires: bool) -> None:
    assert should_recompile(current, expected, util, CFG).recompile is fires


def test_expected_throughput_lives_in_ltm(tmp_path: Path) -> None:
    mem = DualMemory.open(home=tmp_path)
    assert expected_throughput(mem, "wf") is None
    assert update_expected(mem, "wf", 100.0) == 100.0
    assert update_expected(mem, "wf", 200.0) == pytest.approx(110.0)
    assert expected_throughput(mem, "wf") == pytest.approx(110.0)
    assert update_expected(mem, "wf", 50.0, reset=True) == 50.0
    mem.close()
    again = DualMemory.open(home=tmp_path)
    assert expected_throughput(again, "wf") == 50.0  # persisted
    again.close()


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        TriggerConfig(theta=1.5).validate()
