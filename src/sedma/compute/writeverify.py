"""Closed-loop write-and-verify over many cells at once, with the NeuroSim nonlinear pulse model.

Conductances are normalised: g = (G − Gmin)/(Gmax − Gmin) ∈ [0, 1]. One potentiation pulse moves
a cell along G(p) = B(1 − e^(−p/A)) + Gmin (REFERENCES.md, NeuroSim), normalised here to
g(p) = (1 − e^(−p/A))/(1 − e^(−L/A)) with L levels; depression follows the mirrored curve from
g = 1. We fit A = L/|NL| (NL = 0 is linear; a larger |NL| bends the curve harder), one reading of
the NeuroSim nonlinearity label. Each cell's curve is scaled by a fixed device-to-device factor
d ~ 1 + σ_d2d·N(0, 1); every write of k pulses adds cycle-to-cycle noise N(0, σ_c2c)·√k, clipped
to the cell's range. The controller knows only the nominal curve: it converts the verified error
into a pulse count (at least one pulse for a cell outside tolerance), applies it, reads back,
and repeats for up to ``max_iterations`` (21, as MELISO+) or until the active residual stops
moving. Work per iteration is over the still-active cells only, kept in compact arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from sedma.compute import kernels
from sedma.compute.devices import Device
from sedma.compute.sampling import NormalSource
from sedma.errors import InputError

F32 = npt.NDArray[np.float32]
_NO_PROGRESS = 0.995  # the active residual must fall below this fraction of its best to count as moving


@dataclass(frozen=True, slots=True)
class VerifyConfig:
    """Write-and-verify controls: tolerance (fraction of Gmax − Gmin), iteration cap, patience."""

    tolerance: float = 0.02
    max_iterations: int = 21
    patience: int = 3

    def validate(self) -> None:
        if not 0.0 < self.tolerance < 1.0:
            raise InputError(f"write-verify tolerance must be in (0, 1), got {self.tolerance}")
        if self.max_iterations < 1:
            raise InputError(f"max_iterations must be >= 1, got {self.max_iterations}")
        if self.patience < 1:
            raise InputError(f"patience must be >= 1, got {self.patience}")


@dataclass(slots=True)
class ProgramStats:
    """What programming cost: cells, iterations (max over cells), pulses, verify reads."""

    cells: int = 0
    iterations: int = 0
    pulses: int = 0
    verify_reads: int = 0
    unconverged: int = 0
    # Per iteration: the largest pulse train applied (sets the row-parallel write latency).
    max_pulses_per_iteration: list[int] = field(default_factory=list)

    def merge(self, other: ProgramStats) -> None:
        self.cells += other.cells
        self.iterations = max(self.iterations, other.iterations)
        self.pulses += other.pulses
        self.verify_reads += other.verify_reads
        self.unconverged += other.unconverged
        a, b = self.max_pulses_per_iteration, other.max_pulses_per_iteration
        merged = [max(x, y) for x, y in zip(a, b, strict=False)]
        self.max_pulses_per_iteration = merged + (a[len(b) :] if len(a) > len(b) else b[len(a) :])


class PulseCurve:
    """The nominal LTP/LTD branches of one device in normalised conductance.

    Along a branch, u = g (LTP, from Gmin) or u = 1 − g (LTD, from Gmax) after P pulses is
    u = (1 − e^(−P/A))/c with c = 1 − e^(−L/A). From any u, k more pulses give
    u' = (1 − (1 − u·c)·e^(−k/A))/c: one exponential per write, no logarithm. Per-cell branch
    constants are blended arithmetically (x₀ + s·(x₁ − x₀), s = 1 on LTD), which is several times
    cheaper than ``np.where`` over scalars.
    """

    def __init__(self, dev: Device):
        self.levels = float(dev.levels)
        # |NL| below 1e-3 is indistinguishable from linear and keeps float32 arithmetic well conditioned.
        a = np.array([dev.levels / max(abs(dev.nl_ltp), 1e-3), dev.levels / max(abs(dev.nl_ltd), 1e-3)])
        c = -np.expm1(-dev.levels / a)
        self.a = a.astype(np.float32)
        self.c = c.astype(np.float32)
        self.ac = (a * c).astype(np.float32)
        self.inv_a = (1.0 / a).astype(np.float32)

    @staticmethod
    def branch(down: F32, values: F32) -> F32:
        """Per-cell value of a per-branch constant; ``down`` is 1.0 on LTD cells, 0.0 on LTP."""
        out: F32 = down * (values[1] - values[0])
        out += values[0]
        return out

    @staticmethod
    def along(g: F32, down: F32) -> F32:
        """The branch coordinate u: g on LTP cells, 1 − g on LTD cells."""
        out: F32 = g * (np.float32(1.0) - np.float32(2.0) * down)
        out += down
        return out

    def _rounded(self, k: F32) -> F32:
        """Whole pulses, at least one and at most the level count (clipped against scalars: cheap)."""
        np.rint(k, out=k)
        np.maximum(k, np.float32(1.0), out=k)
        np.minimum(k, np.float32(self.levels), out=k)
        return k

    def first_write(self, target: F32) -> F32:
        """Pulses from Gmin to ``target`` on the nominal LTP curve (open-loop first write)."""
        k = np.minimum(target, np.float32(1.0))
        np.maximum(k, np.float32(0.0), out=k)
        k *= -self.c[0]
        np.log1p(k, out=k)
        k *= -self.a[0]
        return self._rounded(k)

    def pulses(self, g: F32, target: F32, down: F32, c: F32) -> F32:
        """The controller's estimate: error over the nominal step size at the current conductance."""
        step = self.along(g, down)
        step *= c
        np.subtract(np.float32(1.0), step, out=step)
        np.maximum(step, np.float32(1e-6), out=step)
        k = np.subtract(target, g)
        np.abs(k, out=k)
        k *= self.branch(down, self.ac)
        k /= step
        return self._rounded(k)

    def apply(self, g: F32, d: F32, k: F32, down: F32, c: F32) -> F32:
        """The cell's own response to k pulses: its branch scaled by its device-to-device factor.

        With v = 1 − u·c the distance to the branch's asymptote, k pulses give v' = v·e^(−k/A).
        """
        v = self.along(g / d, down)
        v *= c
        np.subtract(np.float32(1.0), v, out=v)
        decay = self.branch(down, self.inv_a)
        decay *= -k
        np.exp(decay, out=decay)
        v *= decay
        np.subtract(np.float32(1.0), v, out=v)
        v /= c
        out = self.along(v, down)
        out *= d
        return out


def _pulse(
    curve: PulseCurve,
    g: F32,
    target: F32,
    d: F32,
    sigma: float,
    rng: np.random.Generator | NormalSource,
    first: bool,
) -> tuple[F32, F32]:
    """One write of k pulses to every active cell, then C2C noise N(0, σ)·√k, clipped to range."""
    if kernels.AVAILABLE and not first:
        return _pulse_compiled(curve, g, target, d, sigma, rng)
    if first:
        # From Gmin every cell is on the LTP branch at u = 0: apply() reduces to (1 − e^(−k/A))·d/c.
        k = curve.first_write(target)
        moved = k * -curve.inv_a[0]
        np.exp(moved, out=moved)
        np.subtract(np.float32(1.0), moved, out=moved)
        moved *= d / curve.c[0]
    else:
        down = np.less(target, g).astype(np.float32)
        c = curve.branch(down, curve.c)
        k = curve.pulses(g, target, down, c)
        moved = curve.apply(g, d, k, down, c)
    if sigma > 0.0:
        normals = rng if isinstance(rng, NormalSource) else NormalSource(rng)
        noise = np.sqrt(k)
        noise *= np.float32(sigma)
        noise *= normals.normal(noise.shape)
        moved += noise
    np.minimum(moved, d, out=moved)
    np.maximum(moved, np.float32(0.0), out=moved)
    return moved, k


def _pulse_compiled(
    curve: PulseCurve, g: F32, target: F32, d: F32, sigma: float, rng: np.random.Generator | NormalSource
) -> tuple[F32, F32]:
    """:func:`_pulse` (not the first write) in two compiled passes around numpy's vectorised exp.

    The same float32 operations in the same order as the numpy passes: the same cells result.
    """
    n = g.shape[0]
    k, v, decay = (np.empty(n, dtype=np.float32) for _ in range(3))
    consts = np.array([*curve.c, *curve.ac, *curve.inv_a, curve.levels], dtype=np.float32)
    _before_exp(g, target, d, consts, k, v, decay)
    np.exp(decay, out=decay)
    normals = rng if isinstance(rng, NormalSource) else NormalSource(rng)
    z = normals.normal((n,)) if sigma > 0.0 else decay
    _after_exp(g, target, d, consts, k, v, decay, z, np.float32(sigma))
    return v, k


def _before_exp(g: F32, tgt: F32, d: F32, cs: F32, k: F32, v: F32, decay: F32) -> None:  # pragma: no cover
    """Pulse count k (the controller, nominal curve), v = 1 − u·c at g/d and the decay exponent."""
    one, two = np.float32(1.0), np.float32(2.0)
    for i in range(g.shape[0]):
        gi, ti = g[i], tgt[i]
        down = np.float32(1.0) if ti < gi else np.float32(0.0)
        flip = one - two * down
        c = down * (cs[1] - cs[0]) + cs[0]
        step = max(one - (gi * flip + down) * c, np.float32(1e-6))
        ki = abs(ti - gi) * (down * (cs[3] - cs[2]) + cs[2]) / step
        ki = min(max(np.float32(np.rint(ki)), one), cs[6])
        k[i] = ki
        v[i] = one - ((gi / d[i]) * flip + down) * c
        decay[i] = (down * (cs[5] - cs[4]) + cs[4]) * -ki


def _after_exp(
    g: F32, tgt: F32, d: F32, cs: F32, k: F32, v: F32, e: F32, z: F32, sigma: np.float32
) -> None:  # pragma: no cover - compiled
    """v ← the cell's conductance after the write: its branch, d2d scale, C2C noise σ√k·z, clipped."""
    one, two, zero = np.float32(1.0), np.float32(2.0), np.float32(0.0)
    for i in range(g.shape[0]):
        down = np.float32(1.0) if tgt[i] < g[i] else np.float32(0.0)
        c = down * (cs[1] - cs[0]) + cs[0]
        u = (one - v[i] * e[i]) / c
        moved = (u * (one - two * down) + down) * d[i]
        if sigma > zero:
            moved += np.sqrt(k[i]) * sigma * z[i]
        v[i] = max(min(moved, d[i]), zero)


if kernels._numba is not None:
    _before_exp = kernels._numba.njit(boundscheck=False, nogil=True, cache=True)(_before_exp)
    _after_exp = kernels._numba.njit(boundscheck=False, nogil=True, cache=True)(_after_exp)


def program_cells(
    target: F32, dev: Device, cfg: VerifyConfig, rng: np.random.Generator
) -> tuple[F32, ProgramStats]:
    """Program normalised targets in [0, 1] by closed-loop write-and-verify; cells start at Gmin."""
    n = int(target.shape[0])
    out = np.zeros(n, dtype=np.float32)
    stats = ProgramStats(cells=n)
    if dev.continuous:
        out[:] = target
        if dev.sigma_c2c > 0.0:
            out += dev.sigma_c2c * rng.standard_normal(n, dtype=np.float32)
        stats.iterations = 1
        return np.clip(out, 0.0, 1.0).astype(np.float32), stats
    idx = np.flatnonzero(target > cfg.tolerance)  # cells already at Gmin are within tolerance
    normals = NormalSource(rng)
    d = normals.normal(idx.shape) * np.float32(dev.sigma_d2d)
    d += np.float32(1.0)
    np.clip(d, np.float32(0.5), np.float32(1.5), out=d)
    _verify_loop(PulseCurve(dev), out, idx, target[idx], d, dev, cfg, normals, stats)
    return out, stats


def _verify_loop(
    curve: PulseCurve,
    out: F32,
    idx: npt.NDArray[np.intp],
    tgt: F32,
    d: F32,
    dev: Device,
    cfg: VerifyConfig,
    normals: NormalSource,
    stats: ProgramStats,
) -> None:
    """Pulse, read back, keep the cells still outside tolerance; write each back once it settles."""
    # Cell state side by side (conductance, target, d2d factor, index as int32 bits): one compaction
    # per iteration keeps them aligned.
    state = np.empty((4, idx.shape[0]), dtype=np.float32)
    state[0], state[1], state[2] = 0.0, tgt, d
    state[3].view(np.int32)[:] = idx
    best, stale = np.inf, 0
    for it in range(cfg.max_iterations):
        if state.shape[1] == 0:
            break
        g, tgt, d, _ = state
        g, k = _pulse(curve, g, tgt, d, dev.sigma_c2c, normals, it == 0)
        state[0] = g
        stats.iterations = it + 1
        stats.verify_reads += int(g.size)
        state, residual = _settle(state, out, k, cfg.tolerance, stats)
        best, stale = (residual, 0) if residual < best * _NO_PROGRESS else (best, stale + 1)
        if stale >= cfg.patience:
            break
    out[state[3].view(np.int32)] = state[0]
    stats.unconverged += int(state.shape[1])


def _settle(state: F32, out: F32, k: F32, tol: float, stats: ProgramStats) -> tuple[F32, float]:
    """Verify after a write: record every cell's read, keep the cells still outside tolerance.

    A cell pinned at its rail with the target beyond it cannot move: it stops (unconverged).
    Returns the still-active cells' state and their mean absolute error (the residual).
    """
    if kernels.AVAILABLE:
        n = state.shape[1]
        # One compiled pass: statistics, the write-back and the in-place compaction of the state.
        left, pulses, kmax, pinned, err_sum = _settle_pass(state, state[3].view(np.int32), out, k, tol)
        stats.pulses += int(pulses)
        stats.max_pulses_per_iteration.append(int(kmax) if n else 0)
        stats.unconverged += int(pinned)
        return state[:, :left], (err_sum / left if left else 0.0)
    g, tgt, d, cells = state
    idx = cells.view(np.int32)
    stats.pulses += int(k.sum(dtype=np.float64))
    stats.max_pulses_per_iteration.append(int(k.max()))
    err = np.subtract(g, tgt)
    np.abs(err, out=err)
    outside = err > np.float32(tol)
    stuck = (g >= d) & (tgt > g)
    stuck &= outside
    stats.unconverged += int(np.count_nonzero(stuck))
    out[idx] = g  # every verified read is the cell's state; settled cells are simply not revisited
    active = outside ^ stuck
    kept = state.compress(active, axis=1)
    left = kept.shape[1]
    return kept, (float(np.dot(err, active)) / left if left else 0.0)


def _settle_pass(
    state: F32, idx: npt.NDArray[np.int32], out: F32, k: F32, tol: float
) -> tuple[int, float, float, int, float]:  # pragma: no cover - compiled; pinned against numpy in tests
    """:func:`_settle`'s numpy passes in one loop; active cells move to the front of ``state``."""
    tol32 = np.float32(tol)
    left, pinned = 0, 0
    pulses, kmax, err_sum = 0.0, 0.0, 0.0
    for i in range(state.shape[1]):
        g, tgt, d, ki = state[0, i], state[1, i], state[2, i], k[i]
        pulses += ki
        kmax = max(kmax, ki)
        out[idx[i]] = g
        err = abs(g - tgt)
        outside = err > tol32
        stuck = outside & (g >= d) & (tgt > g)
        active = outside & ~stuck
        pinned += stuck
        err_sum += err if active else 0.0
        # Branch-free compaction: every cell is written at the front, only active ones advance it.
        state[0, left], state[1, left], state[2, left] = g, tgt, d
        idx[left] = idx[i]
        left += active
    return left, pulses, kmax, pinned, err_sum


if kernels._numba is not None:
    _settle_pass = kernels._numba.njit(boundscheck=False, nogil=True, cache=True)(_settle_pass)
