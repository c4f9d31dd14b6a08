"""Workload classification: a cheap signature that separates random from smooth operators."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.sparse as sp

from sedma.compute.images import BlurSpec, blur_matrix, blur_operator, gaussian_band
from sedma.compute.workload import ClassifyConfig, classify, shape_bucket
from sedma.errors import InputError


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_uniform_random_matrices_classify_rough(seed: int) -> None:
    a = np.random.default_rng(seed).random((300, 200))
    sig = classify(a)
    assert sig.kind == "rough"
    assert 0.8 < sig.output_roughness < 1.2 and 0.8 < sig.row_roughness < 1.2
    assert sig.type_key == "rough/dense-512x256"
    assert 0.0 <= sig.value_min < sig.value_max < 1.0


def test_scale_and_sparsity_do_not_make_random_matrices_smooth() -> None:
    rng = np.random.default_rng(3)
    sparse = rng.random((256, 256)) * (rng.random((256, 256)) < 0.03) * 1e6
    sig = classify(sparse)
    assert sig.kind == "rough" and sig.sparsity == "sparse"
    assert classify(rng.normal(size=(128, 128))).signed


@pytest.mark.parametrize(("h", "w", "sigma"), [(32, 32, 1.5), (16, 48, 2.0), (24, 24, 1.0)])
def test_gaussian_blur_operators_classify_smooth(h: int, w: int, sigma: float) -> None:
    sig = classify(blur_matrix(BlurSpec(h, w, sigma)))
    assert sig.kind == "smooth"
    assert sig.output_roughness < 0.5 and sig.row_roughness < 0.5
    assert sig.type_key.startswith("smooth/")


def test_key_joins_type_key_and_material() -> None:
    sig = classify(np.ones((1000, 777)))
    assert sig.shape_class == (1024, 1024)
    assert sig.key("EpiRAM") == "smooth/dense-1024x1024/EpiRAM"
    assert sig.as_dict()["type_key"] == sig.type_key


def test_shape_bucket_is_next_power_of_two() -> None:
    assert [shape_bucket(d) for d in (1, 2, 3, 64, 65, 1000)] == [1, 2, 4, 64, 128, 1024]


def test_classify_is_deterministic_and_sublinear() -> None:
    big = np.random.default_rng(4).random((4000, 4000))
    small = big[:500, :2048]
    assert classify(big) == classify(big)
    t0 = time.perf_counter()
    classify(small)
    t_small = time.perf_counter() - t0
    t0 = time.perf_counter()
    classify(big)
    t_big = time.perf_counter() - t0
    # 15x more cells, same sample size: reading it must not cost 15x (generous for shared CI).
    assert t_big < 5 * t_small + 0.01


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.ones(5), "2-D"),
        (np.ones((0, 3)), "empty"),
        (np.array([["a", "b"]]), "not numeric"),
        (np.array([[1.0, np.nan]]), "NaN"),
        (np.ones((2, 2), dtype=complex), "complex"),
    ],
)
def test_bad_matrices_raise_input_error(bad: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        classify(bad)


def test_bad_config_raises() -> None:
    with pytest.raises(InputError, match="sample_pairs"):
        classify(np.ones((3, 3)), config=ClassifyConfig(sample_pairs=0))


def test_single_row_matrix_uses_row_roughness() -> None:
    sig = classify(np.linspace(0, 1, 50)[None, :])
    assert sig.kind == "smooth"


def test_sparse_operators_are_sampled_without_densifying() -> None:
    op = blur_operator(BlurSpec(128, 128, 2.0))  # 16384 x 16384: 2 GiB if densified
    sig = classify(op)
    assert sig.type_key == "smooth/sparse-16384x16384"
    small = blur_operator(BlurSpec(16, 16, 1.0))
    assert classify(small) == classify(small.toarray())
    with pytest.raises(InputError, match="not real numeric"):
        classify(sp.csr_matrix(np.ones((2, 2), dtype=complex)))


def test_image_row_width_is_found_only_for_row_major_image_operators() -> None:
    assert classify(blur_operator(BlurSpec(32, 32, 1.5))).row_width == 32
    assert classify(blur_operator(BlurSpec(24, 16, 2.0)).toarray()).row_width == 16
    assert classify(gaussian_band(256, 4.0)).row_width is None  # 1-D blur: no wraps
    assert classify(np.random.default_rng(0).random((300, 300))).row_width is None
