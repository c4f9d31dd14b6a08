"""Small seeded instances shared by the deploy tests."""

from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import NDArray

from sedma.deploy.objective import Problem


def random_problem(n: int, m: int, seed: int, *, load: float = 0.6, density: float = 0.4) -> Problem:
    """A random instance with capacities so that total demand is ``load`` of total capacity."""
    rng = np.random.default_rng(seed)
    traffic = np.triu(rng.random((n, n)) < density, 1) * rng.uniform(0.1, 3.0, (n, n))
    traffic = traffic + traffic.T
    pos = rng.uniform(0, 10, (m, 2))
    netcost = np.linalg.norm(pos[:, None] - pos[None], axis=2) + 0.1
    np.fill_diagonal(netcost, 0.0)
    cpu = rng.uniform(0.5, 4.0, n)
    mem = rng.uniform(1.0, 8.0, n) * 2**30
    share = rng.uniform(0.5, 1.5, m)
    cap_cpu = np.maximum(share / share.sum() * cpu.sum() / load, cpu.max())
    cap_mem = np.maximum(share / share.sum() * mem.sum() / load, mem.max())
    return Problem(
        agents=tuple(f"a{i}" for i in range(n)),
        nodes=tuple(f"n{k}" for k in range(m)),
        traffic=traffic,
        netcost=netcost,
        cpu=cpu,
        mem=mem,
        cap_cpu=cap_cpu,
        cap_mem=cap_mem,
        lam=float(rng.uniform(0.0, 3.0)),
    )


def zoned_problem(n: int, m: int, seed: int, *, load: float = 0.7, bias: bool = False) -> Problem:
    """A random instance on a zone/rack hierarchy (alike links between groups, like the benchmark's
    generator) with random level costs, so node groups exist at two levels."""
    pb = random_problem(n, m, seed, load=load)
    rng = np.random.default_rng(seed + 1000)
    rack = rng.integers(0, max(1, m // 2), m)
    zone = rack % 2
    far, mid, near = sorted(rng.uniform(0.01, 3.0, 3), reverse=True)
    in_zone = np.where(rack[:, None] != rack[None, :], mid, near / 20)
    netcost = np.where(zone[:, None] != zone[None, :], far * 20, in_zone)
    np.fill_diagonal(netcost, 0.0)
    extra = rng.uniform(0.0, 0.5, (n, m)) if bias else None
    return Problem(**{**pb.__dict__, "netcost": netcost, "bias": extra})


def all_placements(pb: Problem) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.bool_]]:
    """Every placement of a small instance, its Eq. 11 value and whether it fits the capacities."""
    p = np.array(list(itertools.product(range(pb.m), repeat=pb.n)), dtype=np.int64)
    rows = np.arange(len(p))[:, None]
    cpu = np.zeros((len(p), pb.m))
    mem = np.zeros((len(p), pb.m))
    np.add.at(cpu, (rows, p), pb.cpu[None, :])
    np.add.at(mem, (rows, p), pb.mem[None, :])
    ok = (cpu <= pb.cap_cpu + 1e-9).all(1) & (mem <= pb.cap_mem + 1e-9).all(1)
    c = pb.netcost[p[:, :, None], p[:, None, :]]
    values = 0.5 * (c * pb.traffic).sum((1, 2)) + pb.unary[np.arange(pb.n), p].sum(1)
    return p, values, ok
