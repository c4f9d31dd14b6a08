"""A separate process driving LongTermMemory for the multi-process and SIGKILL tests.

usage: _ltm_worker.py mixed URL NAME N GO -- when file GO exists: put N own keys, read the others',
                                             use a shared key N times
       _ltm_worker.py kill  URL DIR       -- commit single puts and 200-record batches forever, acking each
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from sedma.memory import LongTermMemory


def mixed(url: str, name: str, n: int, go: Path) -> None:
    ltm = LongTermMemory(url, cache_size=0)
    while not go.exists():  # start all workers together for real contention
        time.sleep(0.005)
    for i in range(n):
        ltm.put("run", "w", f"{name}/{i}", {"i": i, "by": name}, score=float(i))
        ltm.use("run", "shared", "counter")
        for other in ("w0", "w1", "w2", "w3"):
            ltm.get("run", "w", f"{other}/{i // 2}")
    ltm.close()


def kill(url: str, workdir: str) -> None:
    ltm = LongTermMemory(url)
    for b in range(10_000):
        ltm.put("run", "single", f"s{b}", b, score=1.0)
        print(f"single s{b}", flush=True)
        path = Path(workdir) / f"batch{b % 2}.jsonl"
        rows = [{"layer": "run", "kind": "batch", "key": f"b{b}/{i}", "value": i} for i in range(200)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        ltm.import_jsonl(path)
        print(f"batch b{b}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "mixed":
        mixed(sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
    else:
        kill(sys.argv[2], sys.argv[3])
