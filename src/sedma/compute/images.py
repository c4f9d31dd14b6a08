"""The image workload: a Gaussian-blur operator as a matrix, applied to scikit-learn's photos.

The operator on an ``h × w`` image flattened row-major is ``kron(G_h, G_w)`` (the Gaussian
kernel is separable), each ``G`` a banded ``n × n`` matrix whose rows are the sampled 1-D
Gaussian truncated at 3σ and renormalised at the borders (so a constant image stays constant).
It is built sparse and densified only for modest sizes, since the crossbars take dense blocks.
The photos are the two bundled with scikit-learn (``china.jpg``, ``flower.jpg``): no downloads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from sedma.errors import InputError

# Dense operators above this many rows would cost > 128 MiB as float64: refuse, use the sparse form.
MAX_DENSE_DIM = 4096

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BlurSpec:
    """An ``height × width`` image blurred by a Gaussian of standard deviation ``sigma`` pixels."""

    height: int = 32
    width: int = 32
    sigma: float = 1.5

    def validate(self) -> None:
        if self.height < 1 or self.width < 1:
            raise InputError(f"image size {self.height}x{self.width} must be at least 1x1")
        if not math.isfinite(self.sigma) or self.sigma <= 0:
            raise InputError(f"blur sigma must be a positive number, got {self.sigma}")


def gaussian_band(n: int, sigma: float) -> sp.csr_matrix:
    """The 1-D blur as a banded ``n × n`` matrix: rows are a 3σ-truncated, renormalised Gaussian."""
    radius = max(1, math.ceil(3.0 * sigma))
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    band = sp.diags(
        [np.full(n - abs(int(k)), w) for k, w in zip(offsets, weights, strict=True) if abs(k) < n],
        [int(k) for k in offsets if abs(k) < n],
        shape=(n, n),
        format="csr",
    )
    # Rows near the border lose part of the kernel; renormalising keeps flat images flat.
    scale = 1.0 / np.asarray(band.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(scale) @ band)


def blur_operator(spec: BlurSpec) -> sp.csr_matrix:
    """The separable 2-D blur ``kron(G_h, G_w)`` acting on row-major flattened images (sparse)."""
    spec.validate()
    op = sp.kron(gaussian_band(spec.height, spec.sigma), gaussian_band(spec.width, spec.sigma))
    return sp.csr_matrix(op)


def blur_matrix(spec: BlurSpec) -> FloatArray:
    """The blur operator as a dense ``hw × hw`` matrix, for crossbar programming of modest sizes."""
    spec.validate()
    n = spec.height * spec.width
    if n > MAX_DENSE_DIM:
        raise InputError(
            f"a dense blur operator for {spec.height}x{spec.width} images has {n} rows "
            f"(> {MAX_DENSE_DIM}); use blur_operator() for the sparse form"
        )
    return np.asarray(blur_operator(spec).toarray(), dtype=np.float64)


def _area_matrix(out: int, size: int) -> FloatArray:
    """An ``out × size`` matrix averaging equal-width bins of input pixels (area resampling)."""
    bins = np.minimum((np.arange(size) * out) // size, out - 1)
    r = np.zeros((out, size))
    r[bins, np.arange(size)] = 1.0
    avg: FloatArray = r / r.sum(axis=1, keepdims=True)
    return avg


def _crop_to_aspect(img: FloatArray, height: int, width: int) -> FloatArray:
    h, w = img.shape
    if w * height > h * width:
        keep = max(1, round(h * width / height))
        c0 = (w - keep) // 2
        return img[:, c0 : c0 + keep]
    keep = max(1, round(w * height / width))
    r0 = (h - keep) // 2
    return img[r0 : r0 + keep, :]


def sample_images(height: int = 32, width: int = 32) -> FloatArray:
    """scikit-learn's bundled photos as grayscale ``(2, height, width)`` floats in [0, 1]."""
    from sklearn.datasets import load_sample_images

    BlurSpec(height, width).validate()
    photos = load_sample_images().images
    out = np.empty((len(photos), height, width))
    for k, rgb in enumerate(photos):
        # ITU-R BT.601 luma: the usual grayscale weights for sRGB photos.
        gray = np.asarray(rgb, dtype=np.float64) @ np.array([0.299, 0.587, 0.114]) / 255.0
        gray = _crop_to_aspect(gray, height, width)
        if gray.shape[0] < height or gray.shape[1] < width:
            raise InputError(f"sample photos are smaller than the requested {height}x{width}")
        out[k] = _area_matrix(height, gray.shape[0]) @ gray @ _area_matrix(width, gray.shape[1]).T
    return out


def blur_workload(spec: BlurSpec | None = None) -> tuple[FloatArray, FloatArray]:
    """The image workload: dense blur matrix A and the photos as columns X, shape ``(hw, 2)``."""
    spec = spec or BlurSpec()
    a = blur_matrix(spec)
    x = sample_images(spec.height, spec.width).reshape(-1, spec.height * spec.width).T
    return a, np.ascontiguousarray(x)
