"""Which asyncio event loop the layer's processes run on: uvloop when installed, else asyncio.

Every request of a look-up is a handful of loop wake-ups and one ``send``/``recv`` pair; on
loopback that per-message overhead is what a 64-peer look-up costs, and uvloop's loop (libuv,
written in C) halves it. It is optional: without it, or with ``SEDMA_UVLOOP=0``, the standard
asyncio loop runs, with the same behaviour.
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
    if factory is None:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)
