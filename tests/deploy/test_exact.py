from __future__ import annotations

import itertools

import numpy as np
import pytest

from sedma.deploy import exact
from sedma.deploy.baselines import first_fit_decreasing
from sedma.deploy.exact import branch_and_bound, branch_order, lagrangian_bound, node_classes, pairing
from sedma.deploy.objective import Problem, feasible, objective
from sedma.errors import InputError

from ._cases import random_problem


def brute_force(pb: Problem) -> float:
    """Minimum of Eq. 11 over every feasible placement, by enumeration."""
    all_p = np.array(list(itertools.product(range(pb.m), repeat=pb.n)), dtype=np.int64)
    cpu = np.zeros((len(all_p), pb.m))
    mem = np.zeros((len(all_p), pb.m))
    for i in range(pb.n):
        np.add.at(cpu, (np.arange(len(all_p)), all_p[:, i]), pb.cpu[i])
        np.add.at(mem, (np.arange(len(all_p)), all_p[:, i]), pb.mem[i])
    ok = (cpu <= pb.cap_cpu + 1e-9).all(1) & (mem <= pb.cap_mem + 1e-9).all(1)
    c = pb.netcost[all_p[:, :, None], all_p[:, None, :]]
    vals = 0.5 * (c * pb.traffic).sum((1, 2)) + pb.unary[np.arange(pb.n), all_p].sum(1)
    return float(vals[ok].min()) if ok.any() else float("inf")


@pytest.mark.parametrize("seed", range(16))
def test_exact_optimum_equals_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(3, 8)), int(rng.integers(2, 4))
    pb = random_problem(n, m, seed=seed, load=float(rng.uniform(0.4, 0.95)))
    start = first_fit_decreasing(pb)  # may be None: then the search starts without an incumbent
    best = brute_force(pb)
    if not np.isfinite(best):
        with pytest.raises(InputError, match="no feasible"):
            branch_and_bound(pb, start, time_limit=30)
        return
    res = branch_and_bound(pb, start, time_limit=30)
    assert res.optimal and feasible(pb, res.placement)
    assert res.value == pytest.approx(best, rel=1e-9, abs=1e-9)
    assert res.bound == pytest.approx(res.value)
    assert objective(pb, res.placement) == pytest.approx(res.value)


def test_identical_nodes_share_a_class() -> None:
    pb = random_problem(4, 3, seed=0)
    c = np.array([[0, 1, 1], [1, 0, 2], [1, 2, 0]], dtype=float)
    same = Problem(**{**pb.__dict__, "netcost": c, "cap_cpu": np.full(3, 9.0), "cap_mem": np.full(3, 9e9)})
    assert node_classes(same).tolist() == [0, 1, 1]  # 1 and 2: same capacity, same cost to node 0
    c1 = np.array([[0, 1, 3], [1, 0, 2], [3, 2, 0]], dtype=float)
    assert node_classes(Problem(**{**same.__dict__, "netcost": c1})).tolist() == [0, 1, 2]
    c2 = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 0]], dtype=float)
    sym = Problem(**{**same.__dict__, "netcost": c2})
    assert node_classes(sym).tolist() == [0, 0, 0]


def test_branch_order_is_a_permutation_led_by_heaviest_talker() -> None:
    pb = random_problem(10, 3, seed=4)
    order = branch_order(pb)
    assert sorted(order.tolist()) == list(range(10))
    assert order[0] == int(np.argmax(pb.traffic.sum(1)))


def test_timeout_reports_a_valid_lower_bound() -> None:
    pb = random_problem(7, 3, seed=8)
    start = first_fit_decreasing(pb)
    assert start is not None
    res = branch_and_bound(pb, start, time_limit=1e-6)
    assert res.bound <= brute_force(pb) + 1e-9
    assert feasible(pb, res.placement)


def _lagrangian_inputs() -> dict[str, object]:
    """Six unit agents that all prefer node 0, which holds two: prices have to rise there."""
    cost = np.ones((1, 6, 3))
    cost[:, :, 0] = 0.0
    traffic = np.zeros((6, 6))
    return {
        "cost": cost,
        "d_cpu": np.ones(6),
        "d_mem": np.ones(6),
        "f_cpu": np.array([[2.0, 3.0, 3.0]]),
        "f_mem": np.array([[9.0, 9.0, 9.0]]),
        "target": np.array([10.0]),
        "mu0": (np.zeros((1, 3)), np.zeros((1, 3))),
        "pr": pairing(traffic, np.arange(6)),
        "netcost": np.ones((3, 3)) - np.eye(3),
    }


def test_lagrangian_steps_stop_at_the_deadline_with_the_first_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    args = _lagrangian_inputs()
    late, _, _ = lagrangian_bound(**args, deadline=0.0)  # type: ignore[arg-type]
    monkeypatch.setattr(exact, "LAGRANGE_ITERS", 1)
    one, _, _ = lagrangian_bound(**args)  # type: ignore[arg-type]
    monkeypatch.setattr(exact, "LAGRANGE_ITERS", 50)
    full, _, _ = lagrangian_bound(**args)  # type: ignore[arg-type]
    np.testing.assert_allclose(late, one)
    assert np.all(full >= one - 1e-12) and np.any(full > one + 1e-9)  # the steps do raise it
