"""Local threads and Ray actors give the same numbers for the same seed (a real Ray instance)."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator

import numpy as np
import pytest

from sedma.compute.crossbar import CrossbarConfig, program
from sedma.compute.executor import LocalExecutor, check_reachable, make_executor
from sedma.errors import BackendUnavailable, ConfigError, InputError

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


def _closed_port() -> int:
    with socket.socket() as s:  # free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("scheme", ["", "ray://"])
def test_unreachable_ray_address_is_backend_unavailable_naming_it(scheme: str) -> None:
    address = f"{scheme}127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"cannot reach Ray at {address}: .*refused"):
        check_reachable(address, timeout=5.0)
    assert time.monotonic() - start < 5.0


def test_reachable_address_passes_and_auto_is_left_to_ray() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        check_reachable(f"127.0.0.1:{server.getsockname()[1]}")
    check_reachable("auto")  # Ray resolves these itself; no connection is tried
    check_reachable("local")


def test_ray_address_with_a_port_out_of_range_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"port 99999 is not in 1\.\.65535"):
        check_reachable("127.0.0.1:99999")
