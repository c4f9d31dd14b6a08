"""SQLite under real concurrency and crashes, and error mapping of unreachable or corrupt stores."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sedma.errors import BackendUnavailable, StorageError
from sedma.memory import LongTermMemory
from sedma.memory.urls import sqlite_url

WORKER = str(Path(__file__).with_name("_ltm_worker.py"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sqlite_file_uses_wal(tmp_path: Path) -> None:
    LongTermMemory(sqlite_url(tmp_path / "m.db")).close()
    import sqlite3

    with sqlite3.connect(tmp_path / "m.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.slow
def test_four_processes_share_one_store_without_lost_writes(ltm_url: str, tmp_path: Path) -> None:
    """Four writers/readers at once (SQLite file or PostgreSQL): no lost write, no lock error."""
    with LongTermMemory(ltm_url) as ltm:
        ltm.put("run", "shared", "counter", 0)
    n = 60 if ltm_url.startswith("sqlite") else 25  # PostgreSQL round trips cost more on 2 cores
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "mixed", ltm_url, f"w{i}", str(n), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    time.sleep(0.3)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "locked" not in err.lower()
    with LongTermMemory(ltm_url) as ltm:
        assert ltm.count() == 4 * n + 1
        assert ltm.get("run", "shared", "counter").uses == 4 * n  # type: ignore[union-attr]
        for i in range(4):
            assert ltm.get("run", "w", f"w{i}/{n - 1}").value == {"i": n - 1, "by": f"w{i}"}  # type: ignore[union-attr]


def test_a_lock_held_past_the_busy_timeout_is_waited_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own busy handler gives up after BUSY_TIMEOUT_MS; the transaction retry keeps going."""
    import sqlite3
    import threading

    from sedma.memory import engine

    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 100)
    path = tmp_path / "m.db"
    ltm = LongTermMemory(sqlite_url(path))
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.0, lambda: holder.execute("COMMIT"))
    release.start()
    t0 = time.monotonic()
    try:
        ltm.put("run", "x", "after-lock", 1)  # waits ~1 s: ten busy timeouts
    finally:
        release.join()
        holder.close()
    assert time.monotonic() - t0 >= 0.9
    assert ltm.get("run", "x", "after-lock").value == 1  # type: ignore[union-attr]
    ltm.close()


@pytest.mark.slow
def test_sigkilled_writer_leaves_every_committed_record(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "m.db")
    proc = subprocess.Popen(
        [sys.executable, WORKER, "kill", url, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked: list[str] = []
    for line in proc.stdout:
        acked.append(line.split()[1])
        if len(acked) >= 24:
            break
    time.sleep(0.05)  # let it get into the middle of the next transaction
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    acked += [line.split()[1] for line in proc.stdout.read().splitlines() if line]
    with LongTermMemory(url) as ltm:
        singles = {r.key for r in ltm.query("run", "single")}
        batches: dict[str, int] = {}
        for r in ltm.query("run", "batch"):
            batches[r.key.split("/")[0]] = batches.get(r.key.split("/")[0], 0) + 1
        for a in acked:
            assert a in singles or batches.get(a) == 200
        assert all(count == 200 for count in batches.values())  # a batch is all or nothing
        ltm.put("run", "after", "crash", 1)  # and the file is writable again
        assert ltm.get("run", "after", "crash") is not None


def test_corrupt_sqlite_file_gives_storage_error_and_is_not_touched(tmp_path: Path) -> None:
    path = tmp_path / "db" / "memory.db"
    path.parent.mkdir()
    junk = b"this is certainly not a SQLite database\n" * 200
    path.write_bytes(junk)
    with pytest.raises(StorageError, match=r"memory\.db is not a readable SEDMA database"):
        LongTermMemory(sqlite_url(path))
    assert path.read_bytes() == junk
    assert sorted(p.name for p in path.parent.iterdir()) == ["memory.db"]  # no -wal/-shm created


def test_damaged_pages_give_storage_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "memory.db"
    with LongTermMemory(sqlite_url(path)) as ltm:
        for i in range(300):
            ltm.put("x", "y", f"k{i}", {"pad": "v" * 200})
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page : len(data)] = b"\xff" * (len(data) - 2 * page)
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(StorageError):
        ltm2 = LongTermMemory(sqlite_url(path))
        ltm2.query()
    assert path.read_bytes() == before


def test_unreachable_postgres_fails_fast_with_backend_unavailable() -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/sedma"
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailable, match=r"PostgreSQL at .* is unreachable"):
        LongTermMemory(url)
    assert time.monotonic() - t0 < 10


def test_password_is_redacted_from_errors() -> None:
    url = f"postgresql+psycopg://u:s3cret@127.0.0.1:{_closed_port()}/sedma"
    with pytest.raises(BackendUnavailable) as err:
        LongTermMemory(url)
    assert "s3cret" not in str(err.value) and "***" in str(err.value)


def test_threads_share_one_instance(tmp_path: Path) -> None:
    import threading

    with LongTermMemory(sqlite_url(tmp_path / "m.db")) as ltm:
        ltm.put("run", "shared", "counter", 0)
        errors: list[BaseException] = []

        def work(t: int) -> None:
            try:
                for i in range(40):
                    ltm.put("run", "t", f"{t}/{i}", i)
                    ltm.use("run", "shared", "counter")
                    assert ltm.get("run", "t", f"{t}/{i}").value == i  # type: ignore[union-attr]
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert errors == []
        assert ltm.count() == 161 and ltm.get("run", "shared", "counter").uses == 160  # type: ignore[union-attr]


def test_forked_child_uses_its_own_connections(tmp_path: Path) -> None:
    ltm = LongTermMemory(sqlite_url(tmp_path / "m.db"), cache_size=0)
    ltm.put("run", "p", "parent", 1)
    assert ltm.get("run", "p", "parent") is not None  # the parent's reader connection is open
    pid = os.fork()
    if pid == 0:  # child: must not reuse the parent's sqlite connections
        code = 0
        try:
            ltm.put("run", "p", "child", 2)
            code = 0 if ltm.get("run", "p", "parent") is not None else 3
        except BaseException:
            code = 4
        os._exit(code)
    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("forked child did not finish in 60 s")
    assert os.waitstatus_to_exitcode(done[1]) == 0
    assert ltm.get("run", "p", "child").value == 2  # type: ignore[union-attr]
    ltm.close()


def test_unusable_home_gives_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="cannot create the memory directory"):
        LongTermMemory(sqlite_url(blocker / "sub" / "memory.db"))
