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


def test_node_groups_are_the_generator_zones_and_group_problem_prices_them() -> None:
    from sedma.deploy.generator import random_cluster, random_workflow
    from sedma.deploy.multilevel import GROUP_FILL, group_problem, node_groups, spread_in_groups
    from sedma.deploy.objective import build_problem, comm_total

    cl = random_cluster(12, seed=3)
    pb = build_problem(random_workflow(40, cl, seed=3), cl)
    groups = node_groups(pb)
    # Racks of two, zones of two racks: three zones of four nodes, cheap links only inside.
    assert sorted(np.bincount(groups).tolist()) == [4, 4, 4]
    same = groups[:, None] == groups[None, :]
    assert pb.netcost[~same].min() > pb.netcost[same].max()
    gp = group_problem(pb, groups)
    # A group offers GROUP_FILL of its nodes' summed capacity (room left to bin-pack inside).
    per_group = np.bincount(groups, pb.cap_cpu)
    assert gp.m == 3 and gp.cap_cpu == pytest.approx(GROUP_FILL * per_group)
    zone = np.random.default_rng(0).integers(0, 3, pb.n)
    p = spread_in_groups(pb, groups, zone)
    assert np.array_equal(groups[p], zone)
    # Only links inside a zone differ between the two: the zone-level comm cost is exact on
    # cross-zone traffic, and inside a zone it is at most the dearest intra-zone link.
    slack = 0.5 * (pb.traffic * same[p][:, p]).sum() * pb.netcost[same].max()
    assert comm_total(gp, zone) == pytest.approx(comm_total(pb, p), abs=slack + 1e-9)
