"""Network-namespace lab for the NAT tests: namespaces, veth pairs, nftables masquerade.

Everything created here lives only inside namespaces this module creates (addresses in
10.200.x.0/24), is named ``sedma-<pid>-<token>-<role>`` so runs never collide, and is torn
down in ``finally`` and again at exit (``atexit``) even when a test fails half way. Namespaces
left behind by a dead run (its pid no longer alive) are swept when a new lab starts.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

_NAME_RE = re.compile(r"^sedma-(\d+)-[0-9a-f]+-[a-z0-9]+$")
_LIVE_LABS: list[NetnsLab] = []


def netns_unavailable_reason() -> str | None:
    """Why the netns tests cannot run here (None when they can): root, ip, nft, netns support."""
    if os.geteuid() != 0:
        return "network namespaces need root (euid != 0)"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"'{tool}' not found (Debian packages iproute2 / nftables)"
    probe = f"sedma-{os.getpid()}-probe{secrets.token_hex(2)}-p"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"'ip netns add' failed: {made.stderr.strip()}"
    checks = (
        ("veth pairs", ["ip", "link", "add", "sdmp0", "type", "veth", "peer", "name", "sdmp1"]),
        ("bridges", ["ip", "link", "add", "sdmpb", "type", "bridge"]),
        (
            "nftables NAT",
            ["nft", "add table ip nat; add chain ip nat p { type nat hook postrouting priority 100; }"],
        ),
        ("nftables masquerade", ["nft", "add rule ip nat p masquerade"]),
    )
    try:
        for what, argv in checks:
            done = _run(["ip", "netns", "exec", probe, *argv], check=False)
            if done.returncode != 0:
                return f"{what} unavailable in a network namespace: {done.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _run(
    argv: Sequence[str], *, check: bool = True, timeout: float = 20.0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_ns_processes(name: str) -> None:
    """A namespace outlives ``ip netns del`` while processes run in it, so end them first."""
    pids = _run(["ip", "netns", "pids", name], check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


def _delete_ns(name: str) -> None:
    _kill_ns_processes(name)
    _run(["ip", "netns", "del", name], check=False)


def sweep_stale_namespaces() -> list[str]:
    """Delete namespaces of earlier runs whose creating process is gone; return their names."""
    swept = []
    for entry in _run(["ip", "netns", "list"], check=False).stdout.splitlines():
        name = entry.split()[0] if entry.strip() else ""
        match = _NAME_RE.match(name)
        if match and not _pid_alive(int(match.group(1))):
            _delete_ns(name)
            swept.append(name)
    return swept


@dataclass
class NetnsLab:
    """Owns a set of namespaces and the processes started in them; ``close`` undoes it all."""

    token: str = field(default_factory=lambda: secrets.token_hex(3))
    namespaces: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _veths: int = 0

    def __post_init__(self) -> None:
        sweep_stale_namespaces()
        _LIVE_LABS.append(self)
        _cleanup_on_sigterm()

    def ns(self, role: str) -> str:
        """Create namespace ``sedma-<pid>-<token>-<role>`` with loopback up; return its name."""
        name = f"sedma-{os.getpid()}-{self.token}-{role}"
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        self.exec(name, ["ip", "link", "set", "lo", "up"])
        return name

    def exec(self, ns: str, argv: Sequence[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a short command inside ``ns`` and wait for it."""
        return _run(["ip", "netns", "exec", ns, *argv], check=check)

    def veth(
        self, ns_a: str, addr_a: str | None, ns_b: str, addr_b: str | None, *, prefix: int = 24
    ) -> tuple[str, str]:
        """Join two namespaces with a veth pair (an address of None: none, e.g. a bridge port)."""
        self._veths += 1
        # Interface names are capped at 15 bytes, so they carry the token, not the ns names.
        if_a, if_b = f"v{self.token}{self._veths}a", f"v{self.token}{self._veths}b"
        _run(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        for ns, ifname, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            if addr is not None:
                self.exec(ns, ["ip", "addr", "add", f"{addr}/{prefix}", "dev", ifname])
            self.exec(ns, ["ip", "link", "set", ifname, "up"])
        return if_a, if_b

    def default_route(self, ns: str, via: str) -> None:
        self.exec(ns, ["ip", "route", "add", "default", "via", via])

    def masquerade(self, router: str, out_ifname: str, *, random_ports: bool = False) -> None:
        """Make ``router`` a NAT box: forward, masquerade what leaves by ``out_ifname``, and
        silently drop unsolicited inbound connections to itself, as home routers do.

        ``random_ports`` gives a symmetric NAT (a fresh random port per destination), where
        hole punching must fail and traffic must stay on the relay.
        """
        # /proc/sys/net is per namespace; writing it needs no procps (sysctl) on the machine.
        self.exec(router, ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
        action = "masquerade random" if random_ports else "masquerade"
        rules = (
            "table ip nat {\n"
            "  chain postrouting {\n"
            "    type nat hook postrouting priority 100; policy accept;\n"
            f'    oifname "{out_ifname}" {action}\n'
            "  }\n"
            "}\n"
            "table ip filter {\n"
            "  chain input {\n"
            "    type filter hook input priority 0; policy accept;\n"
            f'    iifname "{out_ifname}" ct state new drop\n'
            "  }\n"
            "}\n"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", router, "nft", "-f", "-"], input=rules, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"nft -f failed in {router}: {done.stderr.strip()}")

    def spawn(self, ns: str, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a long-running process inside ``ns``; it is killed on ``close``."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(  # type: ignore[call-overload]
            ["ip", "netns", "exec", ns, *argv], **kwargs
        )
        self.processes.append(proc)
        return proc

    def python(self, ns: str, args: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start this interpreter (the project's venv) inside ``ns``."""
        env = dict(os.environ)
        src = str(Path(__file__).resolve().parents[2] / "src")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
        return self.spawn(ns, [sys.executable, *args], env=env, **kwargs)

    def close(self) -> None:
        """Kill our processes, then delete our namespaces (their veths go with them)."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)
        self.processes.clear()
        for name in reversed(self.namespaces):
            _delete_ns(name)
        self.namespaces.clear()
        with contextlib.suppress(ValueError):
            _LIVE_LABS.remove(self)

    def __enter__(self) -> NetnsLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@atexit.register
def _close_all_labs() -> None:
    for lab in list(_LIVE_LABS):
        lab.close()


def _on_sigterm(signum: int, frame: object) -> None:
    _close_all_labs()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)  # then die of SIGTERM as the sender expects


def _cleanup_on_sigterm() -> None:
    """atexit does not run on SIGTERM; clean up then, unless someone else handles it."""
    main = threading.current_thread() is threading.main_thread()
    if main and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


@dataclass(frozen=True)
class NatSite:
    """One private network behind a NAT router: the host namespace and the router's public side."""

    host_ns: str
    host_ip: str
    router_ns: str
    public_ip: str  # the source address the public side sees after masquerade


@dataclass(frozen=True)
class NatTopology:
    """ns ``pub`` (relay and a public peer) on a bridged "internet", NAT sites behind routers."""

    pub_ns: str
    pub_ip: str
    sites: tuple[NatSite, ...]


def build_nat_topology(lab: NetnsLab, *, sites: int = 1, random_ports: bool = False) -> NatTopology:
    """pub 10.200.0.1/24 on a bridge; router i at 10.200.0.(10+i) there and 10.200.(i+1).1 inside;
    NAT host i at 10.200.(i+1).2, default route via its router, masqueraded on the way out.

    Nothing on the public side routes into any 10.200.(i+1).0/24: only the NAT makes it work.
    """
    pub = lab.ns("pub")
    bridge = f"b{lab.token}"
    lab.exec(pub, ["ip", "link", "add", bridge, "type", "bridge"])
    lab.exec(pub, ["ip", "addr", "add", "10.200.0.1/24", "dev", bridge])
    lab.exec(pub, ["ip", "link", "set", bridge, "up"])
    made = []
    for i in range(sites):
        router, host = lab.ns(f"router{i}"), lab.ns(f"nat{i}")
        public_ip, inside = f"10.200.0.{10 + i}", f"10.200.{i + 1}"
        pub_port, router_out = lab.veth(pub, None, router, public_ip)
        lab.exec(pub, ["ip", "link", "set", pub_port, "master", bridge])
        lab.veth(router, f"{inside}.1", host, f"{inside}.2")
        lab.default_route(host, f"{inside}.1")
        lab.masquerade(router, router_out, random_ports=random_ports)
        made.append(NatSite(host, f"{inside}.2", router, public_ip))
    return NatTopology(pub_ns=pub, pub_ip="10.200.0.1", sites=tuple(made))


@contextlib.contextmanager
def nat_lab(*, sites: int = 1, random_ports: bool = False) -> Iterator[tuple[NetnsLab, NatTopology]]:
    """A lab with the NAT topology built; everything is removed on exit, whatever happened."""
    lab = NetnsLab()
    try:
        yield lab, build_nat_topology(lab, sites=sites, random_ports=random_ports)
    finally:
        lab.close()


class LineWatcher:
    """Collects a child's stdout lines on a thread so waits can time out and logs survive."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._done = False
        threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True).start()

    def _pump(self, stream: IO[bytes]) -> None:
        for raw in stream:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def wait_for(self, prefix: str, *, timeout: float = 20.0) -> str:
        """Block until a line starts with ``prefix``; return the rest of that line."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if line.startswith(prefix):
                        return line[len(prefix) :].strip()
                left = deadline - time.monotonic()
                if self._done or left <= 0:
                    tail = "\n".join(self.lines[-20:])
                    why = f"exited ({self.proc.poll()})" if self._done else f"timed out after {timeout} s"
                    raise RuntimeError(f"no line {prefix!r}: process {why}; output:\n{tail}")
                self._cond.wait(left)
