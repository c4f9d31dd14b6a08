"""Local threads and Ray actors give the same numbers for the same seed (a real Ray instance)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import numpy as np
import pytest

from sedma.compute.crossbar import CrossbarConfig, program
from sedma.compute.executor import LocalExecutor, make_executor
from sedma.errors import InputError

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[None]:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")
    ray.init(
        num_cpus=2, include_dashboard=False, _temp_dir=tmp, log_to_driver=False, _node_ip_address="127.0.0.1"
    )
    yield
    ray.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


@pytest.mark.ray
def test_local_and_ray_agree_exactly_for_a_seed(ray_instance: None) -> None:
    rng = np.random.default_rng(0)
    a, x = rng.random((150, 130)), rng.random((130, 4))
    cfg = CrossbarConfig(shards=2, probes=2)
    local = program(a, device="TaOx-HfOy", tile=64, seed=11, config=cfg, executor="local")
    remote = program(a, device="TaOx-HfOy", tile=64, seed=11, config=cfg, executor="ray")
    try:
        assert remote.executor.name == "ray" and len(remote.executor.actors) == 2
        for mode in ("none", "full"):
            np.testing.assert_array_equal(
                local.read(x, correction=mode).output, remote.read(x, correction=mode).output
            )
        np.testing.assert_array_equal(local @ x[:, 0], remote @ x[:, 0])
    finally:
        remote.close()
        local.close()


def test_unknown_executor_is_refused() -> None:
    with pytest.raises(InputError, match="executor must be one of"):
        make_executor("dask", [])
    assert isinstance(make_executor("local", []), LocalExecutor)


@pytest.mark.ray
def test_engine_on_ray_gives_the_local_result(ray_instance: None) -> None:
    from sedma.compute.engine import ComputeOptions, process

    rng = np.random.default_rng(1)
    a, x = rng.random((90, 70)), rng.random((70, 2))
    opts = {"tile": 32, "time_reads": False, "crossbar": CrossbarConfig(probes=2)}
    local = process(a, x, memory=None, options=ComputeOptions(executor="local", **opts))  # type: ignore[arg-type]
    remote = process(a, x, memory=None, options=ComputeOptions(executor="ray", **opts))  # type: ignore[arg-type]
    assert remote.options["executor"] == "ray"
    np.testing.assert_array_equal(local.y, remote.y)
    assert local.lam == remote.lam
