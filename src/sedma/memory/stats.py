"""Window statistics of a short-term stream (pure numpy, no per-sample Python loop)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from sedma.memory.records import StreamStats

DEFAULT_EWMA_ALPHA = 0.1


def ewma(x: np.ndarray, alpha: float) -> float:
    """EWMA over the window, seeded with its first sample: e_i = alpha*x_i + (1-alpha)*e_{i-1}."""
    n = x.size
    decay = (1.0 - alpha) ** np.arange(n - 1, -1, -1, dtype=np.float64)
    weights = alpha * decay
    weights[0] = decay[0]  # the seed sample carries the whole remaining weight (1-alpha)^(n-1)
    return float(weights @ x)


def trend(x: np.ndarray) -> float:
    """Least-squares slope of the samples against their index (units per sample); 0 below 2 samples."""
    n = x.size
    if n < 2:
        return 0.0
    idx = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    return float(idx @ (x - x.mean()) / (idx @ idx))


def stream_stats(values: ArrayLike, *, alpha: float = DEFAULT_EWMA_ALPHA) -> StreamStats | None:
    """count/mean/var (population)/std/EWMA/min/max/p50/p95/p99/last/trend of a window; None if empty."""
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return None
    p50, p95, p99 = np.percentile(x, [50.0, 95.0, 99.0])
    var = float(x.var())
    return StreamStats(
        count=int(x.size),
        mean=float(x.mean()),
        var=var,
        std=var**0.5,
        ewma=ewma(x, alpha),
        min=float(x.min()),
        max=float(x.max()),
        p50=float(p50),
        p95=float(p95),
        p99=float(p99),
        last=float(x[-1]),
        trend=trend(x),
    )
