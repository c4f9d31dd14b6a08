from __future__ import annotations

import numpy as np
import pytest

from sedma.deploy.baselines import first_fit_decreasing, greedy, k8s_native
from sedma.deploy.exact import branch_and_bound
from sedma.deploy.generator import random_cluster, random_workflow
from sedma.deploy.local_search import LocalSearchConfig, local_search
from sedma.deploy.objective import build_problem, feasible, objective

from ._cases import random_problem


@pytest.mark.parametrize("seed", range(6))
def test_local_search_feasible_and_never_worse_than_k8s_native(seed: int) -> None:
    rng = np.random.default_rng(seed)
    pb = random_problem(int(rng.integers(10, 40)), int(rng.integers(3, 9)), seed=seed, load=0.7)
    k8s = k8s_native(pb, seed=seed)
    if k8s is None:
        pytest.skip("k8s-native could not place this instance")
    p, v = local_search(pb, [k8s], LocalSearchConfig(time_limit=0.3, seed=seed))
    assert feasible(pb, p)
    assert v == pytest.approx(objective(pb, p))
    assert v <= objective(pb, k8s) + 1e-9


def test_local_search_reaches_the_exact_optimum_on_small_instances() -> None:
    hits = 0
    for seed in range(5):
        pb = random_problem(8, 3, seed=seed + 20, load=0.6)
        start = first_fit_decreasing(pb)
        assert start is not None
        opt = branch_and_bound(pb, start, time_limit=30)
        _, v = local_search(pb, [start], LocalSearchConfig(time_limit=0.2, seed=seed))
        assert v >= opt.value - 1e-9
        hits += v <= opt.value + 1e-9
    assert hits >= 4


def test_local_search_beats_k8s_native_on_generated_instance() -> None:
    cl = random_cluster(8, seed=1)
    pb = build_problem(random_workflow(40, cl, seed=1), cl)
    k8s, gr = k8s_native(pb, seed=1), greedy(pb)
    assert k8s is not None
    p, v = local_search(
        pb, [x for x in (k8s, gr) if x is not None], LocalSearchConfig(time_limit=0.5, seed=1)
    )
    assert feasible(pb, p) and v < objective(pb, k8s)


def test_stall_limit_stops_early() -> None:
    import time

    pb = random_problem(6, 2, seed=1)
    start = first_fit_decreasing(pb)
    assert start is not None
    t = time.perf_counter()
    local_search(pb, [start], LocalSearchConfig(time_limit=30, seed=0, stall_kicks=20))
    assert time.perf_counter() - t < 10


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        LocalSearchConfig(time_limit=0).validate()


def test_exact_lns_move_never_worsens_and_stays_feasible() -> None:
    from sedma.deploy.local_search import _exact_lns, _State

    rng = np.random.default_rng(3)
    for seed in range(4):
        pb = random_problem(25, 5, seed=seed, load=0.7)
        start = first_fit_decreasing(pb)
        assert start is not None
        s = _State(pb, start)
        before = objective(pb, s.p)
        _exact_lns(s, rng, 8, 0.5)
        assert feasible(pb, s.p)
        assert s.value() == pytest.approx(objective(pb, s.p))
        assert objective(pb, s.p) <= before + 1e-9


def test_zone_lns_move_keeps_agents_in_their_zone_never_worsens_and_stays_feasible() -> None:
    from sedma.deploy.local_search import _State, _zone_lns, _zones

    rng = np.random.default_rng(5)
    cl = random_cluster(12, seed=2)  # three zones of four nodes
    pb = build_problem(random_workflow(40, cl, seed=2), cl)
    zones = _zones(pb)
    assert zones is not None and sorted(np.bincount(zones).tolist()) == [4, 4, 4]
    start = greedy(pb)
    assert start is not None
    s = _State(pb, start)
    improved = False
    for _ in range(12):
        before_p, before = s.p.copy(), objective(pb, s.p)
        _zone_lns(s, rng, zones, 8, 0.5)
        assert np.array_equal(zones[s.p], zones[before_p])  # only moves inside a zone
        assert feasible(pb, s.p)
        assert s.value() == pytest.approx(objective(pb, s.p))
        assert objective(pb, s.p) <= before + 1e-9
        improved |= objective(pb, s.p) < before - 1e-9
    assert improved  # greedy leaves packing inside zones to improve


def test_zones_need_several_groups_with_a_shared_node() -> None:
    from sedma.deploy.local_search import _zones

    assert _zones(random_problem(10, 4, seed=1)) is None  # every link cost differs: no groups


def test_group_start_is_feasible_and_beats_greedy_on_zoned_cluster() -> None:
    from sedma.deploy.local_search import _group_start

    cl = random_cluster(12, seed=2)
    pb = build_problem(random_workflow(60, cl, seed=2), cl)
    p = _group_start(pb, LocalSearchConfig(seed=2), 0.4)
    gr = greedy(pb)
    assert p is not None and gr is not None
    assert feasible(pb, p) and objective(pb, p) < objective(pb, gr)


def test_group_start_needs_node_groups() -> None:
    from sedma.deploy.local_search import _group_start

    pb = random_problem(30, 4, seed=1)  # every link cost differs: no groups
    assert _group_start(pb, LocalSearchConfig(seed=1), 0.2) is None
