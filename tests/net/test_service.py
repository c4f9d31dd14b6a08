"""Service pieces: JSON log lines and the Prometheus text of live nodes."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from sedma.net import Node, NodeConfig
from sedma.net.service import metrics_text, setup_logging


def test_logs_are_one_json_object_per_line() -> None:
    root = logging.getLogger("sedma")
    saved = (root.handlers[:], root.level, root.propagate)
    stream = io.StringIO()
    try:
        setup_logging(stream=stream)
        logging.getLogger("sedma.net.test").warning("peer %s gone", "x")
    finally:
        root.handlers[:], root.level, root.propagate = saved
    doc = json.loads(stream.getvalue().splitlines()[-1])
    assert doc["level"] == "warning" and doc["msg"] == "peer x gone" and doc["logger"] == "sedma.net.test"


def test_metrics_expose_counters_per_node_in_prometheus_text() -> None:
    async def main() -> str:
        a = await Node(NodeConfig(ephemeral=True, use_memory=False)).start()
        b = await Node(NodeConfig(ephemeral=True, use_memory=False, bootstrap=(a.addr,))).start()
        import numpy as np

        cid = await a.put_tensor(np.arange(10), replicas=0)
        await b.get_tensor(cid)
        text = metrics_text([a, b])
        await b.stop()
        await a.stop()
        return text.replace(a.addr, "A").replace(b.addr, "B")

    text = asyncio.run(main())
    assert 'sedma_net_gets_total{node="B"} 1.0' in text
    assert 'sedma_net_puts_total{node="A"} 1.0' in text
    assert 'sedma_net_known_peers{node="A"} 1.0' in text
    assert "# TYPE sedma_net_bytes_in_total counter" in text


def test_metrics_include_the_nat_transport_paths_and_reservations() -> None:
    async def main() -> str:
        a = await Node(NodeConfig(ephemeral=True, use_memory=False)).start()
        text = metrics_text([a])
        await a.stop()
        return text.replace(a.addr, "A")

    text = asyncio.run(main())
    assert 'sedma_net_nat_reservations{node="A"} 0.0' in text
    assert "# TYPE sedma_net_nat_in_relay_total counter" in text
    assert 'sedma_net_nat_out_holepunch{node="A"} 0.0' in text
