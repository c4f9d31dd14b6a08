"""Event-loop choice: uvloop when installed, plain asyncio when switched off or absent."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys

import pytest

from sedma.net import loop


async def _which() -> str:
    await asyncio.sleep(0)
    return loop.loop_name()


def test_switched_off_by_the_environment_runs_plain_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    for value in ("0", "false", "OFF", " no "):
        monkeypatch.setenv(loop.ENV, value)
        assert not loop.uvloop_wanted() and loop.loop_factory() is None
        assert loop.run(_which()) == "asyncio"


def test_without_uvloop_installed_it_falls_back_to_asyncio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import now raises ImportError
    monkeypatch.setenv(loop.ENV, "1")
    assert loop.loop_factory() is None
    assert loop.run(_which()) == "asyncio"


def test_uvloop_runs_when_installed_and_wanted(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed")
    monkeypatch.delenv(loop.ENV, raising=False)
    assert loop.run(_which()) == "uvloop"
    assert loop.run(_which(), uvloop=False) == "asyncio"


def test_a_node_process_serves_on_the_chosen_loop() -> None:
    # A real `sedma swarm` process on each loop answers a look-up from this process.
    pytest.importorskip("uvloop", reason="uvloop is not installed")
    from sedma.net.node import Node, NodeConfig

    async def ask(addr: str) -> int:
        node = await Node(NodeConfig(ephemeral=True, use_memory=False, bootstrap=(addr,))).start()
        try:
            return len((await node.dht.find_node(node.identity.peer_id[-32:])).closest)
        finally:
            await node.stop()

    for value in ("1", "0"):
        cmd = [sys.executable, "-m", "sedma.cli", "swarm", "--nodes", "3"]
        env = {**os.environ, loop.ENV: value}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            assert proc.stdout is not None
            addrs = [proc.stdout.readline().strip() for _ in range(3)]
            assert loop.run(ask(addrs[0]), uvloop=value == "1") == 3
        finally:
            proc.kill()
            _, logs = proc.communicate()
        assert f"event loop: {'uvloop' if value == '1' else 'asyncio'}" in logs


async def _threshold() -> tuple[int, int, int]:
    await asyncio.sleep(0)
    return gc.get_threshold()


def test_the_collector_runs_less_often_while_a_net_loop_runs_and_is_restored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(loop.GC_ENV, raising=False)
    before = gc.get_threshold()
    during = loop.run(_threshold())
    assert during[0] >= loop.GC_GEN0 > before[0]
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    monkeypatch.setenv(loop.GC_ENV, "0")
    assert loop.run(_threshold()) == before
