"""Why each agent sits where it sits: its traffic and what each alternative node would cost."""

from __future__ import annotations

from typing import Any

import numpy as np

from sedma.deploy.objective import loads, placement_cost_rows
from sedma.deploy.planner import Plan


def explain(plan: Plan) -> list[dict[str, Any]]:
    """Per agent: node, traffic to each neighbour, and Δ objective of moving it alone elsewhere."""
    pb, p = plan.problem, plan.array
    rows = placement_cost_rows(pb, p)  # (n, m): Eq. 12 to placed neighbours + λ·overhead
    cpu, mem = loads(pb, p)
    out = []
    for i, agent in enumerate(pb.agents):
        here = int(p[i])
        neighbours = [
            {
                "agent": pb.agents[j],
                "data_gb": float(pb.traffic[i, j]),
                "node": pb.nodes[int(p[j])],
                "cost": float(pb.traffic[i, j] * pb.netcost[here, p[j]]),
            }
            for j in np.flatnonzero(pb.traffic[i] > 0)
        ]
        fits = (cpu - np.where(np.arange(pb.m) == here, pb.cpu[i], 0.0) + pb.cpu[i] <= pb.cap_cpu + 1e-9) & (
            mem - np.where(np.arange(pb.m) == here, pb.mem[i], 0.0) + pb.mem[i] <= pb.cap_mem + 1e-9
        )
        alternatives = [
            {"node": pb.nodes[k], "delta": float(rows[i, k] - rows[i, here]), "fits": bool(fits[k])}
            for k in np.argsort(rows[i])
            if int(k) != here
        ]
        out.append(
            {
                "agent": agent,
                "node": pb.nodes[here],
                "cost_here": float(rows[i, here]),
                "comm_cost": float(rows[i, here] - pb.unary[i, here]),
                "memory_overhead": float(pb.overhead[i, here]),
                "traffic": neighbours,
                "alternatives": alternatives,
            }
        )
    return out
