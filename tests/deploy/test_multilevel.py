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


@pytest.mark.parametrize("seed", range(6))
def test_node_groups_are_the_connected_components_of_cheap_links(seed: int) -> None:
    from sedma.deploy.multilevel import GROUP_RATIO, node_groups

    rng = np.random.default_rng(seed)
    pb = random_problem(4, int(rng.integers(2, 30)), seed=seed)
    m = pb.m
    cheap = np.triu(rng.random((m, m)) < 0.08, 1)
    netcost = np.where(cheap | cheap.T, 0.5 * GROUP_RATIO, 1.0)
    np.fill_diagonal(netcost, 0.0)
    groups = node_groups(type(pb)(**{**pb.__dict__, "netcost": netcost}))
    # Breadth-first search from every node: same group exactly when reachable over cheap links.
    for a in range(m):
        seen, todo = {a}, [a]
        while todo:
            k = todo.pop()
            for j in np.flatnonzero(netcost[k] <= GROUP_RATIO):
                if int(j) not in seen:
                    seen.add(int(j))
                    todo.append(int(j))
        assert set(np.flatnonzero(groups == groups[a]).tolist()) == seen


def test_coarsening_never_continues_from_min_clusters_or_fewer() -> None:
    from sedma.deploy.multilevel import MIN_CLUSTERS, multilevel_start

    pb = random_problem(120, 3, seed=2)  # 2 clusters per node alone would allow 6
    sizes: list[int] = []  # problem sizes as solved: coarsest first, then each finer level

    def solve(problem, starts, seconds):  # type: ignore[no-untyped-def]
        sizes.append(problem.n)
        return starts[0]

    p = multilevel_start(
        pb, rng=np.random.default_rng(0), budget=0.1, solve=solve, start=lambda q: np.zeros(q.n, np.int64)
    )
    assert p is not None and len(p) == pb.n and sizes[-1] == pb.n and len(sizes) > 2
    # Every level that was coarsened further had more than MIN_CLUSTERS clusters.
    assert all(n > MIN_CLUSTERS for n in sizes[1:])
