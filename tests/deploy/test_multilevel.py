from __future__ import annotations

import numpy as np
import pytest

from sedma.deploy.multilevel import coarsen, heavy_edge_matching

from ._cases import random_problem


@pytest.mark.parametrize("seed", range(4))
def test_coarse_objective_equals_projected_fine_objective(seed: int) -> None:
    from sedma.deploy.objective import objective

    pb = random_problem(30, 5, seed=seed)
    rng = np.random.default_rng(seed)
    cluster = heavy_edge_matching(pb, rng)
    coarse = coarsen(pb, cluster)
    assert coarse.n < pb.n and coarse.cpu.sum() == pytest.approx(pb.cpu.sum())
    for _ in range(5):
        pc = rng.integers(0, pb.m, coarse.n)
        assert objective(coarse, pc) == pytest.approx(objective(pb, pc[cluster]))


def test_matching_pairs_only_talking_agents_and_respects_kept_placement() -> None:
    pb = random_problem(40, 4, seed=9)
    rng = np.random.default_rng(0)
    keep = rng.integers(0, pb.m, pb.n)
    cluster = heavy_edge_matching(pb, rng, keep)
    for c in np.unique(cluster):
        members = np.flatnonzero(cluster == c)
        assert len(members) <= 2
        if len(members) == 2:
            i, j = members
            assert pb.traffic[i, j] > 0 and keep[i] == keep[j]
