"""Window statistics of a short-term stream (pure numpy, no per-sample Python loop).

Windows are small (default 100), so fixed costs dominate: one sort serves min/max/percentiles,
and the EWMA weights and trend regressors depend only on (n, alpha) and are cached.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from sedma.memory.records import StreamStats

DEFAULT_EWMA_ALPHA = 0.1
_QUANTILES = np.array([0.50, 0.95, 0.99])


@lru_cache(maxsize=256)
def _ewma_weights(n: int, alpha: float) -> np.ndarray:
    decay = (1.0 - alpha) ** np.arange(n - 1, -1, -1, dtype=np.float64)
    weights = alpha * decay
    weights[0] = decay[0]  # the seed sample carries the whole remaining weight (1-alpha)^(n-1)
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=256)
def _centred_index(n: int) -> tuple[np.ndarray, float]:
    idx = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    idx.flags.writeable = False
    return idx, float(idx @ idx)


def ewma(x: np.ndarray, alpha: float) -> float:
    """EWMA over the window, seeded with its first sample: e_i = alpha*x_i + (1-alpha)*e_{i-1}."""
    return float(_ewma_weights(x.size, alpha) @ x)


def trend(x: np.ndarray) -> float:
    """Least-squares slope of the samples against their index (units per sample); 0 below 2 samples."""
    if x.size < 2:
        return 0.0
    idx, norm = _centred_index(x.size)
    return float(idx @ x / norm)  # sum(idx) == 0, so centring x is unnecessary


def quantiles(sorted_x: np.ndarray) -> np.ndarray:
    """p50/p95/p99 of sorted samples with linear interpolation (numpy's default 'linear' method)."""
    pos = _QUANTILES * (sorted_x.size - 1)
    lo = pos.astype(np.int64)
    hi = np.minimum(lo + 1, sorted_x.size - 1)
    frac = pos - lo
    result: np.ndarray = sorted_x[lo] + frac * (sorted_x[hi] - sorted_x[lo])
    return result


def stream_stats(values: ArrayLike, *, alpha: float = DEFAULT_EWMA_ALPHA) -> StreamStats | None:
    """count/mean/var (population)/std/EWMA/min/max/p50/p95/p99/last/trend of a window; None if empty."""
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        return None
    s = np.sort(x)
    p50, p95, p99 = quantiles(s).tolist()
    mean = float(x.sum() / n)
    d = x - mean
    var = float(d @ d / n)
    return StreamStats(
        count=n,
        mean=mean,
        var=var,
        std=var**0.5,
        ewma=ewma(x, alpha),
        min=float(s[0]),
        max=float(s[-1]),
        p50=p50,
        p95=p95,
        p99=p99,
        last=float(x[-1]),
        trend=trend(x),
    )
