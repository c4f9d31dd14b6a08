from __future__ import annotations

import numpy as np

from sedma.deploy.baselines import first_fit_decreasing, greedy, k8s_native, k8s_scores
from sedma.deploy.objective import feasible

from ._cases import random_problem

MI = 2**20


def test_k8s_scores_least_allocated_plus_balanced_by_hand() -> None:
    # Node: 4000m, 8192Mi; used 1000m, 2048Mi; pod 1000m, 1024Mi.
    # LeastAllocated: cpu (4000-2000)*100//4000 = 50, mem (8192-3072)*100//8192 = 62 -> (50+62)//2 = 56.
    # Balanced: f = 0.5, 0.375 -> std 0.0625 -> int(93.75) = 93. Total 149.
    s = k8s_scores(
        np.array([1000]), np.array([2048 * MI]), np.array([4000]), np.array([8192 * MI]), 1000, 1024 * MI
    )
    assert s.tolist() == [149]


def test_k8s_scores_use_non_zero_defaults_for_empty_requests() -> None:
    zero = k8s_scores(np.array([0]), np.array([0]), np.array([1000]), np.array([1000 * MI]), 0, 0)
    explicit = k8s_scores(
        np.array([0]), np.array([0]), np.array([1000]), np.array([1000 * MI]), 100, 200 * MI
    )
    assert zero.tolist() == explicit.tolist()


def test_k8s_native_spreads_identical_pods_and_is_seeded() -> None:
    pb = random_problem(12, 4, seed=1)
    a, b = k8s_native(pb, seed=5), k8s_native(pb, seed=5)
    assert a is not None and b is not None and a.tolist() == b.tolist()
    assert feasible(pb, a)


def test_k8s_native_ignores_traffic() -> None:
    pb = random_problem(10, 3, seed=2)
    heavy = pb.with_bias(None)
    import dataclasses

    other = dataclasses.replace(heavy, traffic=heavy.traffic * 100.0)
    assert k8s_native(heavy, seed=0).tolist() == k8s_native(other, seed=0).tolist()  # type: ignore[union-attr]


def test_greedy_and_ffd_are_feasible() -> None:
    for seed in range(5):
        pb = random_problem(15, 4, seed=seed)
        for p in (greedy(pb), first_fit_decreasing(pb)):
            assert p is None or feasible(pb, p)
        assert first_fit_decreasing(pb) is not None
