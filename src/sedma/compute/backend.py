"""The array-backend switch for the read kernel: numpy (default), CuPy or torch on CUDA.

``SEDMA_ARRAY_BACKEND`` = ``numpy`` | ``cupy`` | ``torch`` | ``auto`` (the first GPU backend that
imports and sees a CUDA device, else numpy). Only the heavy part of a read moves to the GPU: the
stacked tile matmuls and the per-read noise; each tile group is copied to the device once, on its
first read, and stays there for later reads.
A GPU backend is never required: asking for one that is missing raises
:class:`~sedma.errors.BackendUnavailable` naming what is missing. GPU random streams differ from
numpy's, so results are reproducible per backend, not across backends.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from sedma.errors import BackendUnavailable, ConfigError

BACKENDS = ("numpy", "cupy", "torch", "auto")
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class ArrayBackend:
    """Where tile arrays live and how the read kernel multiplies and draws noise (picklable)."""

    name: str

    @property
    def on_gpu(self) -> bool:
        return self.name != "numpy"

    @property
    def module(self) -> Any:
        return importlib.import_module(self.name)

    def put(self, arr: F32) -> Any:
        """A host array moved to the backend's device (numpy: unchanged)."""
        if self.name == "cupy":
            return self.module.asarray(arr)
        if self.name == "torch":
            return self.module.from_numpy(np.ascontiguousarray(arr)).to("cuda")
        return arr

    def get(self, arr: Any) -> F32:
        """A backend array back on the host as float32 numpy."""
        if self.name == "cupy":
            return np.asarray(self.module.asnumpy(arr), dtype=np.float32)
        if self.name == "torch":
            return np.asarray(arr.detach().cpu().numpy(), dtype=np.float32)
        return np.asarray(arr, dtype=np.float32)

    def matmul(self, a: Any, b: Any) -> Any:
        return self.module.matmul(a, b) if self.on_gpu else np.matmul(a, b)

    def noisy(self, y: Any, var: Any, sigma: float, seed: int) -> Any:
        """y + σ·sqrt(var)·z on the device, z from a generator seeded per read."""
        if self.name == "cupy":
            z = self.module.random.default_rng(seed).standard_normal(var.shape, dtype=np.float32)
            return y + np.float32(sigma) * self.module.sqrt(var) * z
        gen = self.module.Generator(device="cuda")
        gen.manual_seed(seed)
        z = self.module.randn(var.shape, generator=gen, device="cuda", dtype=self.module.float32)
        return y + sigma * self.module.sqrt(var) * z


def _cupy() -> ArrayBackend:
    try:
        import cupy
    except ImportError as exc:
        raise BackendUnavailable("array backend 'cupy' requested but CuPy is not installed") from exc
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise BackendUnavailable("array backend 'cupy': no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as exc:
        raise BackendUnavailable(f"array backend 'cupy': CUDA unavailable ({exc})") from exc
    return ArrayBackend("cupy")


def _torch() -> ArrayBackend:
    try:
        import torch
    except ImportError as exc:
        raise BackendUnavailable("array backend 'torch' requested but torch is not installed") from exc
    if not torch.cuda.is_available():
        raise BackendUnavailable("array backend 'torch': no CUDA device")
    return ArrayBackend("torch")


def get_backend(name: str | None = None) -> ArrayBackend:
    """The backend named (or SEDMA_ARRAY_BACKEND, default numpy); ``auto`` falls back to numpy."""
    choice = (name or os.environ.get("SEDMA_ARRAY_BACKEND") or "numpy").lower()
    if choice not in BACKENDS:
        raise ConfigError(f"SEDMA_ARRAY_BACKEND must be one of {BACKENDS}, got {choice!r}")
    if choice == "cupy":
        return _cupy()
    if choice == "torch":
        return _torch()
    if choice == "auto":
        for make in (_cupy, _torch):
            try:
                return make()
            except BackendUnavailable:
                continue
    return ArrayBackend("numpy")
