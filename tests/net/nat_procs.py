"""NAT test helpers: ``nat_peer.py`` roles as real processes (on loopback or inside a namespace
lab), and an in-process endpoint reachable only through a relay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from netns_harness import LineWatcher, NetnsLab

from sedma.net.holepunch import NatTransport, PunchConfig
from sedma.net.identity import Identity
from sedma.net.rpc import RpcEndpoint

PEER = str(Path(__file__).with_name("nat_peer.py"))
SRC = str(Path(__file__).resolve().parents[2] / "src")


async def relayed_endpoint(
    identity: Identity, relay: tuple[bytes, str, int]
) -> tuple[NatTransport, RpcEndpoint]:
    """An endpoint listening on loopback with a slot reserved on ``relay`` (hole punching off)."""
    transport = NatTransport(identity, punch=PunchConfig(enabled=False))
    server = RpcEndpoint(identity, transport)
    await server.listen()
    await transport.reserve(relay)
    return transport, server


def addr_arg(doc: dict[str, Any], host: str | None = None) -> str:
    """``PEERID_HEX:HOST:PORT`` of a READY document (optionally with another host)."""
    return f"{doc['peer_id']}:{host or doc['host']}:{doc['port']}"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH", "")) if p)
    return env


def start_local(args: list[str], procs: list[subprocess.Popen[bytes]]) -> dict[str, Any]:
    """Start a serving role on loopback; return its READY document."""
    proc = subprocess.Popen([sys.executable, PEER, *args], stdout=subprocess.PIPE, env=_env())
    procs.append(proc)
    return dict(json.loads(LineWatcher(proc).wait_for("READY")))


def dial_local(args: list[str], *, timeout: float = 30.0) -> dict[str, Any]:
    """Run the ``dial`` role on loopback to completion; return its RESULT document."""
    done = subprocess.run(
        [sys.executable, PEER, "dial", *args], capture_output=True, text=True, env=_env(), timeout=timeout
    )
    return _result(done)


def start_in(lab: NetnsLab, ns: str, args: list[str]) -> dict[str, Any]:
    """Start a serving role inside namespace ``ns``; return its READY document."""
    proc = lab.python(ns, [PEER, *args], stdout=subprocess.PIPE)
    return dict(json.loads(LineWatcher(proc).wait_for("READY")))


def dial_in(lab: NetnsLab, ns: str, args: list[str]) -> dict[str, Any]:
    """Run the ``dial`` role inside namespace ``ns``; return its RESULT document."""
    done = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, PEER, "dial", *args],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=30,
    )
    return _result(done)


def _result(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise AssertionError(
        f"dial printed no RESULT (exit {done.returncode}):\n{done.stdout}\n{done.stderr[-3000:]}"
    )
