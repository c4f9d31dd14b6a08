"""Which asyncio event loop the layer's processes run on: uvloop when installed, else asyncio.

Every request of a look-up is a handful of loop wake-ups and one ``send``/``recv`` pair; on
loopback that per-message overhead is what a 64-peer look-up costs, and uvloop's loop (libuv,
written in C) halves it. It is optional: without it, or with ``SEDMA_UVLOOP=0``, the standard
asyncio loop runs, with the same behaviour.

While :func:`run` runs, the cyclic garbage collector's first threshold is raised (700 →
10,000 allocations) and the objects alive at start are frozen out of its scans: every request
allocates dozens of short-lived containers, so at 700 a generation-0 pass ran every few
requests (≈ 10–15% of a look-up's CPU, measured in the bench). Reference counting still frees
almost everything at once; the collector only ever finds cycles, now a little later.
``SEDMA_NET_GC=0`` keeps the interpreter's defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import os
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
ENV = "SEDMA_UVLOOP"
OFF = ("0", "false", "no", "off")
GC_ENV = "SEDMA_NET_GC"
GC_GEN0 = 10_000  # allocations between generation-0 passes while a net loop runs (default 700)


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


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """``uvloop`` or ``asyncio``: the loop running now (or the one given)."""
    loop = loop or asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def run(coro: Coroutine[Any, Any, T], *, uvloop: bool | None = None) -> T:
    """``asyncio.run`` on the chosen loop (``uvloop=None``: installed and not switched off)."""
    factory = loop_factory(uvloop=uvloop)
    with tuned_collector():
        if factory is None:
            return asyncio.run(coro)
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)


@contextlib.contextmanager
def tuned_collector() -> Iterator[None]:
    """Fewer collector passes while the block runs (see the module text); restored after."""
    if os.environ.get(GC_ENV, "1").strip().lower() in OFF:
        yield
        return
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_GEN0), max(before[1], 20), max(before[2], 20))
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
