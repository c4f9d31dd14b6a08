"""Analog inference: the digits MLP, digital vs crossbar accuracy per material."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sedma.compute.inference import (
    DigitsData,
    DigitsMLP,
    InferConfig,
    accuracy,
    analog_logits,
    digits_data,
    load_digits_arrays,
    program_mlp,
    resolve_device,
    resolve_materials,
    run_inference,
    stratified_split,
    train_digits_mlp,
)
from sedma.errors import InputError, StorageError

CONFIG = InferConfig()


@pytest.fixture(scope="module")
def model_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("infer-home")


@pytest.fixture(scope="module")
def data() -> DigitsData:
    return digits_data(CONFIG)


@pytest.fixture(scope="module")
def mlp(model_home: Path, data: DigitsData) -> DigitsMLP:
    return train_digits_mlp(CONFIG, data=data, home=model_home)


def test_digits_split_is_stratified_scaled_and_fixed(data: DigitsData) -> None:
    assert data.x_test.shape == (64, 360) and data.y_test.shape == (360,)
    assert data.x_train.shape[1] + data.x_test.shape[1] == 1797
    assert data.x_test.min() >= 0.0 and data.x_test.max() <= 1.0
    assert np.bincount(data.y_test).min() >= 35
    np.testing.assert_array_equal(digits_data(CONFIG).y_test, data.y_test)


def test_digital_accuracy_is_above_90_percent(mlp: DigitsMLP, data: DigitsData) -> None:
    assert mlp.w1.shape == (64, 64) and mlp.w2.shape == (10, 64)
    assert accuracy(mlp.logits(data.x_test), data.y_test) > 0.90
    assert (mlp.w1 < 0).any() and (mlp.w1 > 0).any()  # signed weights: differential pairs are exercised


def test_trained_weights_are_cached_and_reused(mlp: DigitsMLP, model_home: Path) -> None:
    files = list((model_home / "compute").glob("digits-mlp-*.npz"))
    assert len(files) == 1
    again = train_digits_mlp(CONFIG, home=model_home)
    np.testing.assert_array_equal(again.w1, mlp.w1)
    files[0].write_bytes(b"not an npz")
    with pytest.raises(StorageError, match="unreadable"):
        train_digits_mlp(CONFIG, home=model_home)
    files[0].unlink()


def test_cache_follows_sedma_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mlp: DigitsMLP) -> None:
    monkeypatch.setenv("SEDMA_HOME", str(tmp_path / "h"))
    small = InferConfig(hidden=8, max_iter=50)
    trained = train_digits_mlp(small)
    assert trained.w1.shape == (8, 64)
    assert len(list((tmp_path / "h" / "compute").glob("*.npz"))) == 1


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (InferConfig(hidden=0), "hidden"),
        (InferConfig(test_size=0.9), "test_size"),
        (InferConfig(trials=0), "trials"),
        (InferConfig(tile=1), "tile"),
    ],
)
def test_bad_configs_raise_input_error(config: InferConfig, match: str) -> None:
    with pytest.raises(InputError, match=match):
        train_digits_mlp(config)


def test_own_split_matches_sklearn_sizes_and_keeps_class_shares() -> None:
    y = np.repeat(np.arange(10), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180])
    train, test = stratified_split(y, 0.2, seed=0)
    assert test.size == 360 and train.size == 1437
    assert np.intersect1d(train, test).size == 0
    np.testing.assert_allclose(np.bincount(y[test]) / 360, np.bincount(y) / y.size, atol=0.01)
    assert not np.array_equal(stratified_split(y, 0.2, seed=1)[1], test)


def test_bundled_digits_are_sklearns_load_digits() -> None:
    from sklearn.datasets import load_digits

    x, y = load_digits_arrays()
    ref = load_digits()
    np.testing.assert_array_equal(x, ref.data)
    np.testing.assert_array_equal(y, ref.target)


@pytest.fixture(scope="module")
def table(model_home: Path, mlp: DigitsMLP) -> dict[str, Any]:
    return run_inference(resolve_materials(["all"]), InferConfig(trials=2), home=model_home)


def test_ideal_crossbars_reproduce_the_digital_model(
    table: dict[str, Any], mlp: DigitsMLP, data: DigitsData
) -> None:
    row = table["materials"]["ideal"]
    assert row["raw"] == row["corrected"] == row["digital"] == table["digital"]
    layers = program_mlp(mlp, resolve_device("ideal"), tile=16, seed=0)  # 4x4 tiles: shapes that tile
    try:
        z = analog_logits(mlp, layers, data.x_test, "none")
    finally:
        for layer in layers:
            layer.close()
    np.testing.assert_allclose(z, mlp.logits(data.x_test), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("material", ["Ag-aSi", "AlOx-HfO2", "EpiRAM", "TaOx-HfOy"])
def test_correction_lowers_the_logit_error_on_every_noisy_material(
    table: dict[str, Any], material: str
) -> None:
    row = table["materials"][material]
    assert row["raw_error"] > 0.01  # the material really perturbs the layers
    assert row["corrected_error"] < 0.8 * row["raw_error"]
    assert row["corrected"] > 0.9 and row["digital"] > 0.9


@pytest.mark.parametrize("material", ["Ag-aSi", "AlOx-HfO2", "TaOx-HfOy"])
def test_correction_recovers_accuracy_where_raw_reads_lose_it(table: dict[str, Any], material: str) -> None:
    row = table["materials"][material]
    assert row["corrected"] > row["raw"]


def test_epiram_accuracy_is_unchanged_by_correction(table: dict[str, Any]) -> None:
    # Measured, not wished: EpiRAM's raw reads lose under a point, and although the correction
    # cuts the logit error by about a third, its accuracy stays within a point of raw (seeds
    # 0–3 ranged from 0.3 above to 0.6 below). Reported in docs/compute-inference.md.
    row = table["materials"]["EpiRAM"]
    assert row["digital"] - row["raw"] < 0.015
    assert abs(row["corrected"] - row["raw"]) <= 0.01


def test_table_reports_the_contract_keys(table: dict[str, Any]) -> None:
    assert table["test_samples"] == 360 and table["trials"] == 2
    for row in table["materials"].values():
        assert {"digital", "raw", "corrected"} <= set(row)
        assert len(row["raw_trials"]) == 2


def test_materials_resolve_presets_all_and_files(tmp_path: Path) -> None:
    assert [d.name for d in resolve_materials(["EpiRAM", "all"])][:2] == ["EpiRAM", "Ag-aSi"]
    with pytest.raises(InputError, match="unknown material 'nope'"):
        resolve_materials(["nope"])
    with pytest.raises(InputError, match="at least one"):
        resolve_materials([])
    dev = tmp_path / "mine.yaml"
    dev.write_text(
        "g_min: 1e-6\ng_max: 1e-5\nlevels: 64\nnl_ltp: 1\nnl_ltd: -1\nsigma_c2c: 0.02\n"
        "sigma_d2d: 0.01\nread_noise: 0.005\npulse_v: 1\npulse_width_s: 1e-7\n"
    )
    assert resolve_device(str(dev)).name == "mine"
    with pytest.raises(InputError, match="above the maximum"):
        program_mlp(
            DigitsMLP(np.ones((2, 64)), np.zeros(2), np.ones((10, 2)), np.zeros(10)),
            resolve_device("EpiRAM"),
            tile=4096,
            seed=0,
        )
