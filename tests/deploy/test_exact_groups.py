from __future__ import annotations

import numpy as np
import pytest

from sedma.deploy.baselines import first_fit_decreasing
from sedma.deploy.exact_groups import exact_search, group_candidates, packs, subproblem, uniform_links
from sedma.deploy.generator import random_cluster, random_workflow
from sedma.deploy.multilevel import node_groups
from sedma.deploy.objective import build_problem, feasible, objective
from sedma.errors import InputError

from ._cases import all_placements, random_problem, zoned_problem


def _zoned(seed: int) -> tuple[int, int, float, bool]:
    rng = np.random.default_rng(seed)
    return int(rng.integers(3, 8)), int(rng.integers(2, 6)), float(rng.uniform(0.5, 0.95)), seed % 3 == 0


@pytest.mark.parametrize("seed", range(12))
def test_group_bound_is_below_every_placement_of_its_assignment(seed: int) -> None:
    n, m, load, bias = _zoned(seed)
    pb = zoned_problem(n, m, seed, load=load, bias=bias)
    groups = node_groups(pb)
    cand = group_candidates(pb, groups, np.inf)
    lb = {tuple(s): v for s, v in zip(cand.assign.tolist(), cand.lb.tolist(), strict=True)}
    placements, values, ok = all_placements(pb)
    for p, v in zip(placements[ok], values[ok], strict=True):
        s = tuple(groups[p].tolist())
        assert s in lb, "a feasible placement's group assignment was dropped"
        assert lb[s] <= v + 1e-9
    assert cand.rest == np.inf


@pytest.mark.parametrize("seed", range(24))
def test_exact_search_optimum_equals_brute_force(seed: int) -> None:
    n, m, load, bias = _zoned(seed)
    # every 4th: no alike links between groups, so the plain branch and bound answers
    pb = (
        random_problem(n, m, seed, load=load)
        if seed % 4 == 0
        else zoned_problem(n, m, seed, load=load, bias=bias)
    )
    placements, values, ok = all_placements(pb)
    if not ok.any():
        with pytest.raises(InputError, match="no feasible"):
            exact_search(pb, None, time_limit=30)
        return
    worst = placements[ok][np.argmax(values[ok])]  # the search has to find everything itself
    res = exact_search(pb, worst, time_limit=30)
    assert res.optimal and feasible(pb, res.placement)
    assert res.value == pytest.approx(values[ok].min(), rel=1e-9, abs=1e-9)
    assert res.bound == pytest.approx(res.value)
    assert objective(pb, res.placement) == pytest.approx(res.value)


def test_exact_search_proves_the_generator_20x6_instance() -> None:
    cl = random_cluster(6, seed=2)
    pb = build_problem(random_workflow(20, cl, seed=2), cl)
    start = first_fit_decreasing(pb)
    assert start is not None
    res = exact_search(pb, start, time_limit=60)
    # 17.8436 is what the plain branch and bound proved in 42 s (docs/deploy.md).
    assert res.optimal and res.value == pytest.approx(17.8436, abs=1e-4)
    assert feasible(pb, res.placement)


@pytest.mark.parametrize("seed", [1, 2, 5])
def test_timeout_keeps_a_valid_bound_and_a_feasible_incumbent(seed: int) -> None:
    pb = zoned_problem(7, 4, seed, load=0.8)
    placements, values, ok = all_placements(pb)
    res = exact_search(pb, placements[ok][np.argmax(values[ok])], time_limit=1e-6)
    assert res.bound <= values[ok].min() + 1e-9 <= res.value + 1e-9
    assert feasible(pb, res.placement)


def test_uniform_links_tells_zones_from_uneven_links() -> None:
    pb = zoned_problem(4, 4, 3)
    groups = node_groups(pb)
    assert uniform_links(pb, groups)
    c = pb.netcost.copy()
    a, b = np.flatnonzero(groups == 0)[0], np.flatnonzero(groups == 1)[0]
    c[a, b] = c[b, a] = c[a, b] * 1.5
    uneven = type(pb)(**{**pb.__dict__, "netcost": c})
    assert not uniform_links(uneven, groups)


def test_subproblem_keeps_the_chosen_agents_and_nodes() -> None:
    pb = zoned_problem(5, 4, 7, bias=True)
    sub = subproblem(pb, np.array([1, 3]), np.array([0, 2]))
    assert sub.agents == (pb.agents[1], pb.agents[3]) and sub.nodes == (pb.nodes[0], pb.nodes[2])
    assert sub.traffic[0, 1] == pb.traffic[1, 3] and sub.netcost[0, 1] == pb.netcost[0, 2]
    assert sub.bias is not None and sub.bias[1, 1] == pb.bias[3, 2]  # type: ignore[index]


def test_packs_tells_whether_any_placement_fits() -> None:
    pb = zoned_problem(4, 2, 5)
    roomy = {"mem": np.ones(4), "cap_mem": np.full(2, 100.0)}  # only CPU can fail to pack
    two_nodes = type(pb)(
        **{**pb.__dict__, **roomy, "cpu": np.array([3.0, 3.0, 1.0, 1.0]), "cap_cpu": np.array([4.0, 4.0])}
    )
    assert packs(two_nodes)  # 3+1 on each node
    crowded = type(pb)(**{**two_nodes.__dict__, "cpu": np.array([3.0, 3.0, 2.0, 0.5])})
    assert not packs(crowded)  # 8.5 > 8 in all
    split = type(pb)(**{**two_nodes.__dict__, "cpu": np.array([3.0, 3.0, 1.5, 0.1])})
    assert not packs(split)  # 7.6 <= 8 in all, but 3 + 1.5 > 4: the sum alone does not tell
