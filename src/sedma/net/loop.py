"""Which asyncio event loop the layer's processes run on: uvloop when installed, else asyncio.

Every request of a look-up is a handful of loop wake-ups and one ``send``/``recv`` pair; on
loopback that per-message overhead is what a 64-peer look-up costs, and uvloop's loop (libuv,
written in C) halves it. It is optional: without it, or with ``SEDMA_UVLOOP=0``, the standard
asyncio loop runs, with the same behaviour.

Serving processes (``sedma node``, ``sedma swarm``) also ask Linux for ``SCHED_BATCH``
(:func:`batch_scheduling`; ``SEDMA_SCHED_BATCH=0`` keeps the default policy): a request that
arrives then no longer preempts the process that sent it in the middle of its ``send``. A
look-up writes 20 requests in a burst; under the default policy each write could wake a swarm
process that took the core from the asker, so asker and servers switched back and forth per
request. Batch-scheduled servers run once the asker blocks and read every request that queued up
meanwhile in one loop turn: fewer context switches and ``epoll`` wake-ups on both sides.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "SEDMA_UVLOOP"
OFF = ("0", "false", "no", "off")
BATCH_ENV = "SEDMA_SCHED_BATCH"


def uvloop_wanted() -> bool:
    """False when ``$SEDMA_UVLOOP`` switches uvloop off (0/false/no/off)."""
    return os.environ.get(ENV, "1").strip().lower() not in OFF


def loop_factory(*, uvloop: bool | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's ``new_event_loop`` when wanted and installed; None means the asyncio default."""
    if not (uvloop_wanted() if uvloop is None else uvloop):
        return None
    try:
        module = importlib.import_module("uvloop")
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = module.new_event_loop
    return factory


def batch_scheduling() -> bool:
    """Put this process under ``SCHED_BATCH`` (Linux) unless ``$SEDMA_SCHED_BATCH`` is off; True when set.

    Only a serving process should: it stops preempting whoever woke it (see the module doc).
    """
    if os.environ.get(BATCH_ENV, "1").strip().lower() in OFF or not hasattr(os, "SCHED_BATCH"):
        return False
    try:
        policy = os.sched_getscheduler(0)
        if policy == os.SCHED_OTHER:  # a real-time or idle policy someone chose is left alone
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
            policy = os.SCHED_BATCH
    except OSError:
        return False
    return policy == os.SCHED_BATCH


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: the loop running now (or the one given)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(coro: Coroutine[Any, Any, T], *, uvloop: bool | None = None) -> T:
    """``asyncio.run`` on the chosen loop (``uvloop=None``: installed and not switched off)."""
    factory = loop_factory(uvloop=uvloop)
    if factory is None:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
