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
import importlib.util
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from sedma.compute.crossbar import CrossbarConfig, ProgrammedMatrix, program
from sedma.compute.devices import Device, get_device, known_devices, load_device
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


def load_digits_arrays() -> tuple[FloatArray, IntArray]:
    """scikit-learn's bundled digits (1,797 × 64 pixels in 0..16, labels), read without importing
    ``sklearn.datasets`` (seconds of start-up) when its CSV is where scikit-learn keeps it."""
    spec = importlib.util.find_spec("sklearn")
    roots = list(spec.submodule_search_locations or []) if spec else []
    csv = [Path(r) / "datasets" / "data" / "digits.csv.gz" for r in roots]
    if csv and csv[0].is_file():
        raw = np.loadtxt(csv[0], delimiter=",")
        return raw[:, :-1], raw[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return np.asarray(digits.data, dtype=np.float64), np.asarray(digits.target, dtype=np.int64)


def stratified_split(y: IntArray, test_size: float, seed: int) -> tuple[IntArray, IntArray]:
    """Train/test indices with each class's share kept (largest-remainder quotas), seeded."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    n_test = math.ceil(test_size * y.size)  # as scikit-learn's train_test_split rounds it
    exact = counts * n_test / y.size
    quota = np.floor(exact).astype(np.int64)
    short = n_test - int(quota.sum())
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    test = np.concatenate(
        [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota, strict=True)]
    )
    mask = np.ones(y.size, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask), np.sort(test)


def digits_data(config: InferConfig) -> DigitsData:
    """The bundled digits, pixels ÷ 16, stratified split with the config's seed; inputs as columns."""
    x, y = load_digits_arrays()
    x = x / 16.0
    train, test = stratified_split(y, config.test_size, config.seed)
    return DigitsData(np.ascontiguousarray(x[train].T), y[train], np.ascontiguousarray(x[test].T), y[test])


def _cache_path(config: InferConfig, home: Path | None) -> Path:
    tag = f"split2-lbfgs-h{config.hidden}-s{config.seed}-t{config.test_size}-i{config.max_iter}"
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
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez(tmp, w1=mlp.w1, b1=mlp.b1, w2=mlp.w2, b2=mlp.b2)
    tmp.replace(path)  # atomic: concurrent runs never see half a file
    return mlp


def accuracy(logits: FloatArray, labels: IntArray) -> float:
    """Share of columns whose arg-max logit is the label."""
    return float((np.argmax(logits, axis=0) == labels).mean())


def as_report(material: str, digital: float, raw: float, corrected: float, **extra: Any) -> dict[str, Any]:
    """One material's row: the JSON keys ``digital``, ``raw``, ``corrected`` and details."""
    return {"material": material, "digital": digital, "raw": raw, "corrected": corrected, **extra}


def resolve_device(spec: str) -> Device:
    """A preset material by name, or a user device from a ``.yaml``/``.yml``/``.json`` file."""
    if Path(spec).suffix.lower() in (".yaml", ".yml", ".json"):
        return load_device(spec)
    return get_device(spec)


def resolve_materials(specs: Sequence[str]) -> list[Device]:
    """Devices for ``--material`` values; ``all`` expands to every preset."""
    if not specs:
        raise InputError("give at least one --material (or 'all')")
    names: list[str] = []
    for spec in specs:
        names.extend(known_devices() if spec == "all" else [spec])
    return [resolve_device(name) for name in dict.fromkeys(names)]


def program_mlp(mlp: DigitsMLP, device: Device, *, tile: int, seed: int) -> tuple[ProgrammedMatrix, ...]:
    """Program both weight matrices once; absmax scaling keeps signs for the differential pairs."""
    device.check_tile(tile)
    cfg = CrossbarConfig(scaling="absmax", shards=1, threads=1)
    return tuple(
        program(w, device=device, tile=tile, config=cfg, seed=seed * 2 + k)
        for k, w in enumerate((mlp.w1, mlp.w2))
    )


def analog_logits(
    mlp: DigitsMLP, layers: Sequence[ProgrammedMatrix], x: FloatArray, correction: str
) -> FloatArray:
    """Forward pass with both linear layers read from crossbars; bias and ReLU stay digital."""
    z1 = layers[0].read(x, correction=correction).output
    h = np.maximum(z1 + mlp.b1[:, None], 0.0)
    out: FloatArray = layers[1].read(h, correction=correction).output + mlp.b2[:, None]
    return out


def _relative(z: FloatArray, ref: FloatArray) -> float:
    return float(np.linalg.norm(z - ref) / np.linalg.norm(ref))


def evaluate_device(device: Device, mlp: DigitsMLP, data: DigitsData, config: InferConfig) -> dict[str, Any]:
    """Accuracy digital / analog raw / first-order corrected on one device, mean over trials."""
    ref = mlp.logits(data.x_test)
    acc: dict[str, list[float]] = {"raw": [], "corrected": []}
    err: dict[str, list[float]] = {"raw": [], "corrected": []}
    t0 = time.perf_counter()
    for trial in range(config.trials):
        layers = program_mlp(mlp, device, tile=config.tile, seed=config.seed * 1000 + trial)
        try:
            for name, mode in (("raw", "none"), ("corrected", "first-order")):
                z = analog_logits(mlp, layers, data.x_test, mode)
                acc[name].append(accuracy(z, data.y_test))
                err[name].append(_relative(z, ref))
        finally:
            for layer in layers:
                layer.close()
    return as_report(
        device.name,
        accuracy(ref, data.y_test),
        float(np.mean(acc["raw"])),
        float(np.mean(acc["corrected"])),
        raw_trials=acc["raw"],
        corrected_trials=acc["corrected"],
        raw_error=float(np.mean(err["raw"])),
        corrected_error=float(np.mean(err["corrected"])),
        seconds=time.perf_counter() - t0,
    )


def run_inference(
    devices: Sequence[Device],
    config: InferConfig | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    home: Path | None = None,
) -> dict[str, Any]:
    """The digits table: model facts and, per material, digital / raw / corrected accuracy."""
    config = config or InferConfig()
    config.validate()
    data = digits_data(config)
    mlp = train_digits_mlp(config, data=data, home=home)
    rows: dict[str, Any] = {}
    for dev in devices:
        if progress is not None:
            progress(dev.name)
        rows[dev.name] = evaluate_device(dev, mlp, data, config)
    return {
        "test_samples": int(data.y_test.size),
        "hidden": config.hidden,
        "trials": config.trials,
        "tile": config.tile,
        "seed": config.seed,
        "digital": accuracy(mlp.logits(data.x_test), data.y_test),
        "materials": rows,
    }
