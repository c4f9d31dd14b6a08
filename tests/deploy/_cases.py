"""Small seeded instances shared by the deploy tests."""

from __future__ import annotations

import numpy as np

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
