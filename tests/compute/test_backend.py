"""The array-backend switch: numpy by default, GPU backends never required."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from sedma.compute.backend import ArrayBackend, get_backend
from sedma.compute.crossbar import program
from sedma.errors import BackendUnavailable, ConfigError


def test_numpy_is_the_default_and_auto_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEDMA_ARRAY_BACKEND", raising=False)
    assert get_backend().name == "numpy"
    assert get_backend("auto").name in ("numpy", "cupy", "torch")
    monkeypatch.setenv("SEDMA_ARRAY_BACKEND", "opencl")
    with pytest.raises(ConfigError, match="SEDMA_ARRAY_BACKEND must be one of"):
        get_backend()


@pytest.mark.parametrize("name", ["cupy", "torch"])
def test_missing_gpu_backend_says_what_is_missing(name: str) -> None:
    if importlib.util.find_spec(name) is not None:
        pytest.skip(f"{name} is installed; its CUDA check is exercised by the GPU path")
    with pytest.raises(BackendUnavailable, match=f"'{name}' requested but"):
        get_backend(name)


class _HostAsDevice(ArrayBackend):
    """Runs the device code path with numpy standing in for the GPU library."""

    @property
    def on_gpu(self) -> bool:
        return True

    @property
    def module(self) -> Any:
        return np

    def put(self, arr: Any) -> Any:
        return np.array(arr)

    def noisy(self, y: Any, var: Any, sigma: float, seed: int) -> Any:
        return y + sigma * np.sqrt(var) * np.random.default_rng(seed).standard_normal(var.shape)


def test_device_code_path_gives_the_host_result_on_a_noiseless_device() -> None:
    rng = np.random.default_rng(0)
    a, x = rng.random((70, 50)), rng.random((50, 3))
    host = program(a, device="ideal", tile=32)
    gpu = program(a, device="ideal", tile=32)
    for shard in gpu.executor.shards:  # type: ignore[attr-defined]
        shard.backend = _HostAsDevice("numpy")
    np.testing.assert_array_equal(host.read(x).full, gpu.read(x).full)
    noisy = program(a, device="TaOx-HfOy", tile=32)
    for shard in noisy.executor.shards:  # type: ignore[attr-defined]
        shard.backend = _HostAsDevice("numpy")
    assert np.linalg.norm(noisy @ x - a @ x) / np.linalg.norm(a @ x) < 0.01
