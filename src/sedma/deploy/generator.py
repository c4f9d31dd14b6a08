"""Seeded random placement instances (the benchmark's generator, documented in docs/deploy.md).

Workflow: a random DAG with ~2.3 dependency edges per agent (a random spanning tree towards
earlier agents plus extra random forward edges), data volumes log-normal around 1 GB.
Cluster: nodes of three sizes (8/32Gi, 16/64Gi, 32/128Gi), grouped two to a rack and two
racks to a zone; links: same rack 0.1 ms at 25 Gbps, same zone 0.5 ms at 10 Gbps, otherwise
2 ms at 1 Gbps. Demands are scaled so total requests are ``load`` (65%) of total capacity.
"""

from __future__ import annotations

import numpy as np

from sedma.deploy.model import Agent, Cluster, Dependency, LabelLink, Link, Node, Workflow

GI = 2.0**30
_SIZES = ((8.0, 32.0), (16.0, 64.0), (32.0, 128.0))


def random_cluster(m: int, *, seed: int = 0) -> Cluster:
    """``m`` nodes in racks of 2 and zones of 2 racks, with hierarchical links."""
    rng = np.random.default_rng(seed)
    nodes = []
    for k in range(m):
        cpu, mem = _SIZES[int(rng.integers(len(_SIZES)))]
        rack = k // 2
        labels = {"rack": f"r{rack}", "zone": f"z{rack // 2}"}
        nodes.append(Node(name=f"node-{k:02d}", cpu=cpu, memory=mem * GI, labels=labels))
    rules = (LabelLink("rack", Link(0.1, 25.0)), LabelLink("zone", Link(0.5, 10.0)))
    return Cluster(nodes=tuple(nodes), default=Link(2.0, 1.0), by_label=rules)


def random_workflow(n: int, cluster: Cluster, *, seed: int = 0, load: float = 0.65) -> Workflow:
    """A random DAG of ``n`` agents whose total demand is ``load`` of the cluster's capacity."""
    rng = np.random.default_rng(seed + 7919)
    cap_cpu = sum(nd.cpu for nd in cluster.nodes)
    cap_mem = sum(nd.memory for nd in cluster.nodes)
    max_cpu = max(nd.cpu for nd in cluster.nodes)
    max_mem = max(nd.memory for nd in cluster.nodes)
    cpu = rng.lognormal(0.0, 0.5, n)
    mem = cpu * rng.lognormal(0.0, 0.4, n)
    cpu = np.minimum(cpu * load * cap_cpu / cpu.sum(), 0.5 * max_cpu)
    mem = np.minimum(mem * load * cap_mem / mem.sum(), 0.5 * max_mem)
    deps: list[list[Dependency]] = [[] for _ in range(n)]
    edges: set[tuple[int, int]] = set()
    for i in range(1, n):
        edges.add((i, int(rng.integers(i))))
    target = round(2.3 * n)
    while len(edges) < min(target, n * (n - 1) // 2):
        i, j = sorted(int(x) for x in rng.choice(n, 2, replace=False))
        edges.add((j, i))
    for i, j in sorted(edges):
        deps[i].append(Dependency(agent=f"agent-{j:03d}", data_gb=round(float(rng.lognormal(0.0, 0.8)), 3)))
    agents = tuple(
        Agent(
            name=f"agent-{i:03d}",
            image=f"registry.local/agent-{i:03d}:1.0",
            cpu=round(float(cpu[i]), 3),
            memory=float(int(mem[i] / 2**20) * 2**20),
            depends_on=tuple(deps[i]),
        )
        for i in range(n)
    )
    return Workflow(name=f"random-{n}x{len(cluster.nodes)}-s{seed}", agents=agents)
