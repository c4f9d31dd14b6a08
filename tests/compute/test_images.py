"""The image workload: separable Gaussian blur as a matrix, scikit-learn's bundled photos."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from sedma.compute.images import (
    BlurSpec,
    blur_matrix,
    blur_operator,
    blur_workload,
    gaussian_band,
    sample_images,
)
from sedma.errors import InputError


def test_band_rows_sum_to_one_and_are_banded() -> None:
    g = gaussian_band(20, 1.0).toarray()
    np.testing.assert_allclose(g.sum(axis=1), 1.0)
    i, j = np.nonzero(g)
    assert np.abs(i - j).max() == 3


def test_blur_matrix_equals_separable_kron_and_keeps_flat_images_flat() -> None:
    spec = BlurSpec(height=6, width=9, sigma=1.2)
    a = blur_matrix(spec)
    gh = gaussian_band(6, 1.2).toarray()
    gw = gaussian_band(9, 1.2).toarray()
    img = np.random.default_rng(0).random((6, 9))
    np.testing.assert_allclose((a @ img.ravel()).reshape(6, 9), gh @ img @ gw.T, atol=1e-12)
    np.testing.assert_allclose(a @ np.full(54, 0.7), 0.7)


def test_blur_matches_scipy_gaussian_filter_away_from_borders() -> None:
    spec = BlurSpec(height=24, width=24, sigma=1.5)
    img = np.random.default_rng(1).random((24, 24))
    ours = (blur_operator(spec) @ img.ravel()).reshape(24, 24)
    ref = gaussian_filter(img, 1.5, truncate=3.0, mode="constant")
    # Interior pixels see the whole kernel; scipy's kernel is the same sampled Gaussian.
    np.testing.assert_allclose(ours[6:-6, 6:-6], ref[6:-6, 6:-6], rtol=1e-6)


def test_sample_images_are_grayscale_in_unit_range_and_distinct() -> None:
    imgs = sample_images(16, 24)
    assert imgs.shape == (2, 16, 24)
    assert imgs.min() >= 0.0 and imgs.max() <= 1.0
    assert np.abs(imgs[0] - imgs[1]).mean() > 0.05
    assert imgs.std() > 0.05


def test_blur_workload_columns_are_flattened_photos() -> None:
    a, x = blur_workload(BlurSpec(8, 8, 1.0))
    assert a.shape == (64, 64) and x.shape == (64, 2)
    # Blurring lowers the total variation of a photo.
    y = (a @ x).T.reshape(2, 8, 8)
    tv = lambda z: np.abs(np.diff(z, axis=-1)).sum()  # noqa: E731
    assert tv(y) < tv(x.T.reshape(2, 8, 8))


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        (BlurSpec(0, 4), "image size"),
        (BlurSpec(4, 4, sigma=0.0), "sigma"),
        (BlurSpec(4, 4, sigma=float("nan")), "sigma"),
        (BlurSpec(100, 100), "dense blur operator"),
    ],
)
def test_bad_blur_specs_raise_input_error(spec: BlurSpec, match: str) -> None:
    with pytest.raises(InputError, match=match):
        blur_matrix(spec)
