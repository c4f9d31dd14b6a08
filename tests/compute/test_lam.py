"""λ of Eq. 5: SURE choice, Eq. 6 combination, STM/LTM bookkeeping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sedma.compute.correction import smooth
from sedma.compute.lam import choose_lambda, combine, decide_lambda, recall_lambda, record_lambda
from sedma.errors import InputError
from sedma.memory import DualMemory


def _signals(smooth_signal: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    m, b, sigma = 512, 4, 0.01
    f = np.cumsum(rng.normal(size=(m, b)), axis=0) * 0.004 if smooth_signal else rng.random((m, b))
    return f, f + sigma * rng.normal(size=(m, b)), sigma**2


def test_lambda_is_zero_on_rough_outputs_and_positive_and_helpful_on_smooth_ones() -> None:
    _, p_rough, var = _signals(False)
    lam_rough, _ = choose_lambda(p_rough, var)
    f, p_smooth, var = _signals(True)
    lam_smooth, risks = choose_lambda(p_smooth, var)
    assert lam_rough == 0.0
    assert lam_smooth > 0.1
    assert np.linalg.norm(smooth(p_smooth, lam_smooth) - f) < 0.7 * np.linalg.norm(p_smooth - f)
    assert risks.shape[0] > 10


def test_eq6_combination() -> None:
    assert combine(None, 0.3, 0.5) == 0.3
    assert combine(1.0, 0.0, 0.25) == pytest.approx(0.25)
    with pytest.raises(InputError, match="alpha"):
        combine(1.0, 0.0, 1.5)


def test_decision_uses_short_term_statistics_and_long_term_memory(tmp_path: Path) -> None:
    mem = DualMemory.open(home=tmp_path)
    try:
        _, p, var = _signals(True)
        first = decide_lambda(p, var, memory=mem, key="smooth/x/EpiRAM", alpha=0.5)
        assert first.memory is None and first.source == "recent" and first.value == first.now
        assert mem.recent("compute/lambda/smooth/x/EpiRAM").count == 1
        assert record_lambda(mem, "smooth/x/EpiRAM", first, gain=0.4)
        assert recall_lambda(mem, "smooth/x/EpiRAM") == first.value
        _, p2, _ = _signals(False, seed=1)
        second = decide_lambda(p2, var, memory=mem, key="smooth/x/EpiRAM", alpha=0.5)
        # λ_recent is the median of the STM window, λ_t mixes it with LTM's λ (Eq. 6).
        assert second.now == 0.0 and second.memory == first.value
        assert second.value == pytest.approx(0.5 * first.value + 0.5 * second.recent)
    finally:
        mem.close()


def test_too_few_outputs_are_never_smoothed() -> None:
    _, p, var = _signals(True)
    assert choose_lambda(p[:8], var)[0] == 0.0
