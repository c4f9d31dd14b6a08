"""Workload classification (Algorithm 1, lines 1–2): a cheap signature of A that keys LTM.

The signature is computed from a sample of adjacent row pairs and a window of columns, so its
cost does not grow with the whole matrix. Smoothness is measured as a *roughness ratio*: the
mean absolute first difference of the sampled values divided by the same statistic after a
random permutation of those values. The ratio is ≈ 1 for any i.i.d. matrix (uniform, Gaussian,
sparse random) whatever its scale or sparsity, and ≪ 1 for operators whose neighbouring entries
are alike (blur, convolution, finite-difference kernels). The λ regulariser of Eq. 5 smooths the
*output* y, and y_{i+1} − y_i = (a_{i+1} − a_i)·x, so the class ``smooth`` is decided by the
roughness between adjacent rows; the roughness along rows is reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from sedma.errors import InputError

# Below this roughness ratio adjacent rows are "alike": the output of A x is smooth.
SMOOTH_RATIO = 0.5
# Below this fraction of non-zero entries the matrix is classed sparse.
SPARSE_DENSITY = 0.1


@dataclass(frozen=True, slots=True)
class ClassifyConfig:
    """How much of A the signature reads: row pairs sampled and columns per row."""

    sample_pairs: int = 64
    max_cols: int = 2048
    seed: int = 0

    def validate(self) -> None:
        if self.sample_pairs < 1:
            raise InputError(f"sample_pairs must be >= 1, got {self.sample_pairs}")
        if self.max_cols < 2:
            raise InputError(f"max_cols must be >= 2, got {self.max_cols}")


@dataclass(frozen=True, slots=True)
class WorkloadSignature:
    """Shape class, sparsity, value range and smoothness of a matrix (Algorithm 1, line 1)."""

    shape: tuple[int, int]
    shape_class: tuple[int, int]
    density: float
    value_min: float
    value_max: float
    row_variation: float
    row_roughness: float
    output_roughness: float
    # Image width when A acts on row-major images (its row-to-row jumps recur every w rows).
    row_width: int | None = None

    @property
    def smooth(self) -> bool:
        return self.output_roughness < SMOOTH_RATIO

    @property
    def kind(self) -> str:
        """``smooth`` when neighbouring rows are alike (λ of Eq. 5 can help), else ``rough``."""
        return "smooth" if self.smooth else "rough"

    @property
    def sparsity(self) -> str:
        return "sparse" if self.density < SPARSE_DENSITY else "dense"

    @property
    def signed(self) -> bool:
        return self.value_min < 0.0

    @property
    def type_key(self) -> str:
        """LTM key prefix, e.g. ``smooth/dense-1024x1024`` (Algorithm 1, line 2)."""
        m, n = self.shape_class
        return f"{self.kind}/{self.sparsity}-{m}x{n}"

    def key(self, material: str) -> str:
        """The LTM key of this workload on ``material``: ``<type_key>/<material>``."""
        return f"{self.type_key}/{material}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "shape": list(self.shape),
            "shape_class": list(self.shape_class),
            "type_key": self.type_key,
            "kind": self.kind,
            "density": self.density,
            "value_min": self.value_min,
            "value_max": self.value_max,
            "row_variation": self.row_variation,
            "row_roughness": self.row_roughness,
            "output_roughness": self.output_roughness,
            "row_width": self.row_width,
        }


def shape_bucket(dim: int) -> int:
    """The power of two at or above ``dim``: matrices of one bucket share LTM patterns."""
    return 1 << max(0, int(dim - 1).bit_length())


def _check_matrix(a: Any) -> Any:
    if sp.issparse(a):
        # Sparse operators (e.g. images.blur_operator) are sampled row-wise without densifying.
        if np.iscomplexobj(a.dtype.type(0)) or not np.issubdtype(a.dtype, np.number):
            raise InputError(f"matrix dtype {a.dtype} is not real numeric")
        if a.shape[0] < 1 or a.shape[1] < 1:
            raise InputError(f"matrix shape {a.shape} is empty")
        return sp.csr_array(a)
    arr = np.asarray(a)
    if arr.ndim != 2:
        raise InputError(f"matrix must be 2-D, got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise InputError(f"matrix shape {arr.shape} is empty")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InputError(f"matrix dtype {arr.dtype} is not numeric")
    if np.iscomplexobj(arr):
        raise InputError(f"matrix dtype {arr.dtype} is complex; crossbars hold real values")
    return arr


def _rows(arr: Any, idx: npt.NDArray[np.int64], cols: slice) -> npt.NDArray[np.float64]:
    picked = arr[idx][:, cols]
    return np.asarray(picked.toarray() if sp.issparse(picked) else picked, dtype=np.float64)


def _sample(arr: Any, cfg: ClassifyConfig) -> tuple[npt.NDArray[np.float64], ...]:
    """Adjacent row pairs (top, bottom) over one random column window: O(pairs × max_cols)."""
    m, n = arr.shape
    rng = np.random.default_rng(cfg.seed)
    pairs = min(cfg.sample_pairs, max(m - 1, 1))
    top = rng.choice(max(m - 1, 1), size=pairs, replace=False)
    width = min(n, cfg.max_cols)
    c0 = int(rng.integers(0, n - width + 1))
    cols = slice(c0, c0 + width)
    upper = _rows(arr, top, cols)
    lower = _rows(arr, np.minimum(top + 1, m - 1), cols)
    return upper, lower, rng.permutation(upper.ravel())


def _ratio(diff: float, baseline: float) -> float:
    # An all-constant sample has no variation at all: perfectly smooth.
    return float(diff / baseline) if baseline > 0.0 else 0.0


def _jump_norms(arr: Any, rows: int) -> npt.NDArray[np.float64]:
    """‖a_{i+1} − a_i‖ for the first ``rows`` rows (dense or scipy.sparse)."""
    if sp.issparse(arr):
        block = sp.csr_matrix(arr[:rows])
        d = block[1:] - block[:-1]
        return np.sqrt(np.asarray(d.multiply(d).sum(axis=1), dtype=np.float64).ravel())
    block = np.asarray(arr[:rows], dtype=np.float32)
    norms: npt.NDArray[np.float64] = np.linalg.norm(np.diff(block, axis=0), axis=1).astype(np.float64)
    return norms


def image_row_width(a: Any, *, rows: int = 1024) -> int | None:
    """Width w of the row-major images a smooth operator acts on, or None.

    Neighbouring outputs of an image blur differ little except where the flattened index wraps to
    the next image row: there ‖a_{i+1} − a_i‖ jumps (more than twice the median). The width is
    accepted only if the jumps fall exactly on every multiple of w in the first ``rows`` rows,
    at least twice, and w divides the row count.
    """
    m = a.shape[0]
    if m < 4:
        return None
    norms = _jump_norms(a, min(m, rows))
    jumps = np.flatnonzero(norms > 2.0 * np.median(norms)) + 1
    if jumps.size < 2 or m % int(jumps[0]):
        return None
    w = int(jumps[0])
    return w if w >= 2 and np.array_equal(jumps, np.arange(w, norms.size + 1, w)) else None


def classify(a: Any, *, config: ClassifyConfig | None = None) -> WorkloadSignature:
    """Signature of A (dense or scipy.sparse) from sampled rows: shape class, sparsity, range,
    roughness (Algorithm 1, line 1)."""
    cfg = config or ClassifyConfig()
    cfg.validate()
    arr = _check_matrix(a)
    upper, lower, shuffled = _sample(arr, cfg)
    if not np.isfinite(upper).all() or not np.isfinite(lower).all():
        raise InputError("matrix contains NaN or Inf")
    vmin, vmax = float(min(upper.min(), lower.min())), float(max(upper.max(), lower.max()))
    span = vmax - vmin
    along = float(np.abs(np.diff(upper, axis=1)).mean()) if upper.shape[1] > 1 else 0.0
    # Permuted values keep the distribution (scale, sparsity) but lose all neighbourhood order.
    base = float(np.abs(np.diff(shuffled)).mean()) if shuffled.size > 1 else 0.0
    across = float(np.abs(lower - upper).mean()) if arr.shape[0] > 1 else along
    m, n = arr.shape
    return WorkloadSignature(
        shape=(m, n),
        shape_class=(shape_bucket(m), shape_bucket(n)),
        density=float(np.count_nonzero(upper) / upper.size),
        value_min=vmin,
        value_max=vmax,
        row_variation=along / span if span > 0 else 0.0,
        row_roughness=_ratio(along, base),
        output_roughness=_ratio(across, base),
        row_width=image_row_width(arr) if _ratio(across, base) < SMOOTH_RATIO else None,
    )
