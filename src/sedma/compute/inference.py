"""Analog inference: a digits MLP whose linear layers run on simulated RRAM crossbars.

The model is scikit-learn's ``MLPClassifier`` (64 → hidden ReLU → 10) trained on the bundled
``load_digits`` (8×8 images, pixel values scaled to [0, 1]) with a fixed seed; its weights are
cached under ``$SEDMA_HOME/compute`` so later runs skip training. For inference each weight
matrix Wᵀ is programmed once on crossbars of the chosen material (signed weights are held as
differential pairs by the crossbar engine) and the whole test set runs as one batch per layer;
biases, ReLU and argmax stay digital, as in analog accelerators with digital periphery.
Accuracies: ``digital`` (float64 weights), ``raw`` (correction ``none``) and ``corrected``
(MELISO+ first-order correction, Algorithm 1 line 7), averaged over programming seeds.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sedma.errors import InputError, StorageError
from sedma.memory.urls import resolve_home

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CORRECTIONS = ("none", "first-order", "full")


@dataclass(frozen=True, slots=True)
class InferConfig:
    """Model size, data split, programming seeds and crossbar tile of the digits benchmark."""

    hidden: int = 64
    seed: int = 0
    test_size: float = 0.2
    trials: int = 3
    tile: int = 64
    max_iter: int = 500

    def validate(self) -> None:
        if self.hidden < 1:
            raise InputError(f"hidden layer size must be >= 1, got {self.hidden}")
        if not 0.05 <= self.test_size <= 0.5:
            raise InputError(f"test_size must be in [0.05, 0.5], got {self.test_size}")
        if self.trials < 1:
            raise InputError(f"trials must be >= 1, got {self.trials}")
        if self.tile < 2:
            raise InputError(f"tile size {self.tile} is below 2")
        if self.max_iter < 1:
            raise InputError(f"max_iter must be >= 1, got {self.max_iter}")


@dataclass(frozen=True, slots=True)
class DigitsMLP:
    """Weights of the 64 → hidden → 10 MLP as crossbar-ready matrices (outputs × inputs)."""

    w1: FloatArray
    b1: FloatArray
    w2: FloatArray
    b2: FloatArray

    def logits(self, x: FloatArray) -> FloatArray:
        """Digital forward pass on inputs as columns ``(64, B)``; returns ``(10, B)``."""
        h = np.maximum(self.w1 @ x + self.b1[:, None], 0.0)
        out: FloatArray = self.w2 @ h + self.b2[:, None]
        return out


@dataclass(frozen=True, slots=True)
class DigitsData:
    """The digits split: inputs as columns in [0, 1], integer labels."""

    x_train: FloatArray
    y_train: IntArray
    x_test: FloatArray
    y_test: IntArray


def digits_data(config: InferConfig) -> DigitsData:
    """scikit-learn's bundled digits, pixels ÷ 16, stratified split with the config's seed."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64) / 16.0
    y = np.asarray(digits.target, dtype=np.int64)
    xtr, xte, ytr, yte = train_test_split(
        x, y, test_size=config.test_size, random_state=config.seed, stratify=y
    )
    return DigitsData(np.ascontiguousarray(xtr.T), ytr, np.ascontiguousarray(xte.T), yte)


def _cache_path(config: InferConfig, home: Path | None) -> Path:
    tag = f"lbfgs-h{config.hidden}-s{config.seed}-t{config.test_size}-i{config.max_iter}"
    digest = hashlib.sha256(tag.encode()).hexdigest()[:12]
    return resolve_home(home) / "compute" / f"digits-mlp-{digest}.npz"


def _load_cached(path: Path, hidden: int) -> DigitsMLP | None:
    if not path.exists():
        return None
    try:
        with np.load(path) as z:
            mlp = DigitsMLP(z["w1"], z["b1"], z["w2"], z["b2"])
    except (OSError, KeyError, ValueError) as exc:
        raise StorageError(f"cached digits model {path} is unreadable ({exc}); delete it to retrain") from exc
    if mlp.w1.shape != (hidden, 64) or mlp.w2.shape != (10, hidden):
        raise StorageError(f"cached digits model {path} has shapes {mlp.w1.shape}, {mlp.w2.shape}; delete it")
    return mlp


def _fit(data: DigitsData, config: InferConfig) -> DigitsMLP:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    clf = MLPClassifier(
        hidden_layer_sizes=(config.hidden,),
        solver="lbfgs",  # full-batch quasi-Newton: ~1 s on 1,437 digits, deterministic for a seed
        alpha=1e-3,
        max_iter=config.max_iter,
        random_state=config.seed,
    )
    with warnings.catch_warnings():
        # The accuracy test below is what guards the model, not sklearn's loss-plateau heuristic.
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(data.x_train.T, data.y_train)
    (w1, w2), (b1, b2) = clf.coefs_, clf.intercepts_
    return DigitsMLP(np.asarray(w1.T), np.asarray(b1), np.asarray(w2.T), np.asarray(b2))


def train_digits_mlp(
    config: InferConfig | None = None, *, data: DigitsData | None = None, home: Path | None = None
) -> DigitsMLP:
    """The trained MLP: from the cache under ``home`` ($SEDMA_HOME), else fitted and cached."""
    config = config or InferConfig()
    config.validate()
    path = _cache_path(config, home)
    cached = _load_cached(path, config.hidden)
    if cached is not None:
        return cached
    mlp = _fit(data or digits_data(config), config)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, w1=mlp.w1, b1=mlp.b1, w2=mlp.w2, b2=mlp.b2)
    tmp.replace(path)  # atomic: concurrent runs never see half a file
    return mlp


def accuracy(logits: FloatArray, labels: IntArray) -> float:
    """Share of columns whose arg-max logit is the label."""
    return float((np.argmax(logits, axis=0) == labels).mean())


def as_report(material: str, digital: float, raw: float, corrected: float, **extra: Any) -> dict[str, Any]:
    """One material's row: the JSON keys ``digital``, ``raw``, ``corrected`` and details."""
    return {"material": material, "digital": digital, "raw": raw, "corrected": corrected, **extra}
