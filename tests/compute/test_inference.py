"""Analog inference: the digits MLP, digital vs crossbar accuracy per material."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sedma.compute.inference import (
    DigitsData,
    DigitsMLP,
    InferConfig,
    accuracy,
    digits_data,
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
    assert 0.0 <= data.x_test.min() and data.x_test.max() <= 1.0
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
