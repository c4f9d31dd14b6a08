"""BitSwap-like block exchange: want-lists, parallel fetch from several providers, verification.

Protocol (methods a node registers; bodies are msgpack maps, block bytes travel as the frame's
raw payload, one block per response so a frame never nears the wire's size limit):

- ``bs.want``  {"cids": [...], "cancel": [...]} -> {"have": [bool, ...]}: adds the cids to the
  caller's want-list and says which blocks we hold; ``cancel`` removes entries. A want-list is
  bounded (``max_wantlist`` entries per peer, entries expire after ``want_ttl_s``); a request
  that would pass the bound is refused with ``WantlistFull``.
- ``bs.block`` {"cid": c} -> {"cid": c, "data": bytes | None}: one block (None: not held).
  At most ``max_serve_inflight`` of these are served at once per peer; more are refused (busy).
- ``bs.fetch`` {"cids": [...], "providers": [[id, host, port], ...]} -> {"stored": n}: asks us
  to fetch and pin blocks from the providers (replication's pull model).

Client side, every provider gets ``max_inflight`` lanes pulling from one shared queue, so faster
providers serve more blocks. Each block is verified against its CID before it is stored or
returned; a mismatch discards the block, penalises the provider (callback) and bans it for the
rest of the fetch; a dead or timed-out provider's blocks go back to the queue for the others.
Received blocks are checked in batches (:mod:`sedma.net.verify`, multi-buffer SHA-256) while the
lanes keep receiving; ``store_later`` (``get_tensor``) writes the verified blocks to the store
after the fetch returns instead of on its critical path (:meth:`BlockExchange.flush` waits).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sedma.errors import ConfigError, InputError, SedmaError
from sedma.net.cid import validate_cid
from sedma.net.sha256_lanes import LANES, MIN_BATCH, load_in_background
from sedma.net.store import BlockStore
from sedma.net.types import Blob, PeerError, PeerInfo, ProtocolError, RequestFn
from sedma.net.verify import BatchVerifier, Staging
from sedma.net.wire import RECEIVE_INTO, Lease

log = logging.getLogger(__name__)

METHODS = ("bs.want", "bs.block", "bs.fetch")
PenaltyFn = Callable[[PeerInfo, str], None]
# Called with every block of a fetch once it is verified (in a worker thread for fetched ones).
BlockSink = Callable[[str, Blob], None]


class WantlistFull(ProtocolError):
    """A peer asked for more wants than its bounded want-list holds."""

    code = "wantlist_full"


class Busy(PeerError):
    """Too many block requests from one peer are being served already."""

    code = "busy"


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """Flow-control bounds and timeouts of the block exchange."""

    max_inflight: int = 4  # concurrent block requests per provider (client side)
    max_serve_inflight: int = 16  # concurrent block requests served per peer
    max_wantlist: int = 1024  # entries per peer's want-list
    want_ttl_s: float = 120.0
    request_timeout_s: float = 10.0
    max_fetch_providers: int = 8  # providers a bs.fetch may name

    def validate(self) -> ExchangeConfig:
        if min(self.max_inflight, self.max_serve_inflight, self.max_wantlist, self.max_fetch_providers) < 1:
            raise ConfigError("exchange bounds (max_inflight, max_serve_inflight, max_wantlist) must be >= 1")
        if not (self.want_ttl_s > 0 and self.request_timeout_s > 0):
            raise ConfigError("exchange want_ttl_s and request_timeout_s must be > 0")
        return self


@dataclass(slots=True)
class ProviderOutcome:
    """What one provider did during a fetch (recorded for Eq. 8–9 and peer profiles)."""

    peer: PeerInfo
    blocks: int = 0
    nbytes: int = 0
    seconds: float = 0.0
    failed: str | None = None  # "dead", "integrity", or None
    served: set[str] = field(default_factory=set)
    announced: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Fetch:
    """Shared state of one fetch: pending work, who lacks what, results, a wake-up signal.

    Endgame (as BitSwap's): once nothing is pending, an idle lane may ask its provider for a
    block still in flight elsewhere, so one slow provider cannot hold the last block hostage;
    the first verified copy wins and the fetch returns without waiting for the others.
    """

    pending: list[str]
    verifier: BatchVerifier
    results: dict[str, Blob] = field(default_factory=dict)
    judging: set[str] = field(default_factory=set)  # received, in the verifier
    on_wire: int = 0  # bs.block requests in flight
    leases: dict[str, Lease] = field(default_factory=dict)  # slots the network receives into
    no_lease: set[str] = field(default_factory=set)  # revoked once: copies go through the verifier
    inflight: dict[str, set[bytes]] = field(default_factory=dict)  # cid -> providers asked now
    lacks: dict[bytes, set[str]] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)  # cid -> first request time
    durations: list[float] = field(default_factory=list)  # seconds each block took
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # replaced on every signal
    complete: asyncio.Event = field(default_factory=asyncio.Event)

    def take(self, peer_id: bytes) -> str | None:
        lacking = self.lacks.get(peer_id, set())
        for i, cid in enumerate(self.pending):
            if cid not in lacking:
                self.inflight.setdefault(cid, set()).add(peer_id)
                self.started.setdefault(cid, time.monotonic())
                return self.pending.pop(i)
        return self._duplicate(peer_id, lacking)

    def _duplicate(self, peer_id: bytes, lacking: set[str]) -> str | None:
        """Endgame: a block in flight elsewhere for much longer than blocks usually take."""
        patience = self.patience()
        if patience is None:
            return None
        now = time.monotonic()
        for cid, askers in self.inflight.items():
            if cid in self.judging:
                continue  # its bytes are here, being checked
            if peer_id not in askers and cid not in lacking and now - self.started[cid] > patience:
                askers.add(peer_id)
                self.revoke(cid)  # two copies may now arrive: neither may write the slot directly
                return cid
        return None

    def lease(self, cid: str) -> Lease | None:
        """The block's slot in the consumer's buffer for the network to receive into, if free."""
        staging = self.verifier.staging
        if staging is None or cid in self.no_lease or cid in self.leases:
            return None
        view = staging.lease(cid)
        if view is None:
            return None
        self.leases[cid] = lease = Lease(view)
        return lease

    def unlease(self, cid: str, lease: Lease) -> None:
        """The bytes did not arrive in the slot: give it back (unless it was revoked already)."""
        if self.leases.get(cid) is lease:
            del self.leases[cid]
            if self.verifier.staging is not None:
                self.verifier.staging.release(cid)

    def revoke(self, cid: str) -> None:
        lease = self.leases.pop(cid, None)
        self.no_lease.add(cid)
        if lease is not None:
            lease.revoked = True  # the decoder moves what arrived so far to scratch
            if self.verifier.staging is not None:
                self.verifier.staging.release(cid)

    def patience(self) -> float | None:
        """How long a block may be in flight before another provider is asked too."""
        if not self.durations:
            return None
        return 2.0 * statistics.median(self.durations) + 0.005

    def signal(self) -> None:
        """Wake every lane waiting for a change (events, not a Condition: cancel-safe, lock-free)."""
        event, self.changed = self.changed, asyncio.Event()
        event.set()

    async def wait_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout)

    def received(self, cid: str) -> None:
        """The block's bytes arrived (network time recorded); its check is pending."""
        self.judging.add(cid)
        self.durations.append(time.monotonic() - self.started.get(cid, time.monotonic()))

    def poke(self) -> None:
        """Let the verifier start a batch if waiting cannot fill it better."""
        expected = len(self.pending) + sum(c not in self.judging for c in self.inflight)
        self.verifier.poke(on_wire=self.on_wire, expected=expected)

    def settle(self, cid: str, data: Blob | None, peer_id: bytes, *, failed: bool) -> None:
        askers = self.inflight.get(cid, set())
        askers.discard(peer_id)
        self.judging.discard(cid)
        self.leases.pop(cid, None)  # judged: the verifier committed or released the slot
        if data is not None:
            self.results.setdefault(cid, data)
            self.inflight.pop(cid, None)
        else:
            if not failed:
                self.lacks.setdefault(peer_id, set()).add(cid)
            if not askers and cid not in self.results:
                self.inflight.pop(cid, None)
                self.started.pop(cid, None)
                self.pending.append(cid)
        if not self.pending and not self.inflight:
            self.complete.set()
        self.signal()


class BlockExchange:
    """Fetches blocks from providers and serves ours (client and server of the protocol)."""

    def __init__(
        self,
        store: BlockStore,
        *,
        request: RequestFn,
        config: ExchangeConfig | None = None,
        on_penalty: PenaltyFn | None = None,
        on_outcome: Callable[[list[ProviderOutcome]], None] | None = None,
        on_stored: Callable[[list[str]], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.request = request
        self.config = (config or ExchangeConfig()).validate()
        self.on_penalty = on_penalty
        self.on_outcome = on_outcome
        self.on_stored = on_stored
        self._wants: dict[bytes, dict[str, float]] = {}
        self._serving: dict[bytes, int] = {}
        self._background: set[asyncio.Future[None]] = set()
        self._writes: set[asyncio.Future[None]] = set()

    # == client ==================================================================================
    async def fetch(
        self,
        cids: Iterable[str],
        providers: Sequence[PeerInfo],
        *,
        on_block: BlockSink | None = None,
        store_later: bool = False,
        staging: Staging | None = None,
    ) -> dict[str, Blob]:
        """Every block of ``cids``, verified, from the store or the providers; PeerError if any is missing.

        ``on_block`` sees each block as soon as it is verified (and stored, unless
        ``store_later``: then the blocks are written after the fetch returns), so a consumer
        can use it while the others are still on their way; a block checked in place in
        ``staging`` (the consumer's own buffer) is committed there instead.
        """
        wanted = list(dict.fromkeys(validate_cid(c) for c in cids))
        local: dict[str, Blob] = {c: d for c in wanted if (d := self.store.get(c)) is not None}
        if on_block is not None:
            for cid, data in local.items():
                on_block(cid, data)
        to_store: list[tuple[str, Blob]] = []
        accept = functools.partial(self._accept, on_block, to_store if store_later else None)
        state = _Fetch([c for c in wanted if c not in local], BatchVerifier(accept, staging=staging))
        if len(state.pending) >= MIN_BATCH:
            load_in_background()  # the multi-buffer kernel, for this fetch's later batches or the next
        if state.pending:
            await self._run(state, list(dict.fromkeys(providers)))
        if to_store:
            self._store_in_background(to_store)
        if state.verifier.error is not None:
            raise state.verifier.error
        if missing := [c for c in wanted if c not in local and c not in state.results]:
            raise PeerError(f"{len(missing)} of {len(wanted)} blocks found at no provider, e.g. {missing[0]}")
        return {c: local[c] if c in local else state.results[c] for c in wanted}

    async def _run(self, state: _Fetch, providers: list[PeerInfo]) -> None:
        outcomes = [ProviderOutcome(p) for p in providers]
        workers = [asyncio.ensure_future(self._provider(state, o)) for o in outcomes]
        finished = asyncio.ensure_future(state.complete.wait())
        try:
            await asyncio.wait([*workers, finished], return_when=asyncio.FIRST_COMPLETED)
            while not finished.done() and not all(w.done() for w in workers):
                await asyncio.wait([*workers, finished], return_when=asyncio.FIRST_COMPLETED)
            await state.verifier.drain(poke=state.poke)  # blocks received before their sender failed
        finally:
            state.verifier.cancel()
            for cid in list(state.leases):  # cancelled lanes: no late bytes into those slots
                state.revoke(cid)
            # Every block is in (or every provider is done): stop endgame duplicates still in flight.
            for task in [*workers, finished]:
                task.cancel()
            await asyncio.gather(*workers, finished, return_exceptions=True)
        await self._cancel_leftovers(outcomes)
        if self.on_outcome is not None:
            self.on_outcome(outcomes)

    async def _cancel_leftovers(self, outcomes: list[ProviderOutcome]) -> None:
        """Withdraw what we announced but did not get from each live provider (bounded wait)."""
        tasks = [
            asyncio.ensure_future(self._cancel_wants(o.peer, [c for c in o.announced if c not in o.served]))
            for o in outcomes
            if o.failed is None and o.announced
        ]
        if tasks:
            # A slow provider's cancel may finish in the background; its entries also expire.
            _, late = await asyncio.wait(tasks, timeout=0.25)
            self._background.update(late)
            for task in late:
                task.add_done_callback(self._background.discard)

    async def _provider(self, state: _Fetch, out: ProviderOutcome) -> None:
        started = time.perf_counter()
        try:
            out.announced = await self._announce(state, out.peer)
            await asyncio.gather(*(self._lane(state, out) for _ in range(self.config.max_inflight)))
        except PeerError:
            out.failed = out.failed or "dead"
        finally:
            out.seconds = time.perf_counter() - started
            state.signal()

    async def _announce(self, state: _Fetch, peer: PeerInfo) -> list[str]:
        """Send our want-list to the provider and note what it lacks (want-have)."""
        batch = state.pending[: self.config.max_wantlist]
        reply = await self._call(peer, "bs.want", {"cids": batch})
        have = reply.get("have")
        if not isinstance(have, list) or len(have) != len(batch):
            raise PeerError(f"peer {peer.addr} answered bs.want with a malformed have-list")
        state.lacks[peer.peer_id] = {c for c, h in zip(batch, have, strict=True) if h is not True}
        return batch

    async def _lane(self, state: _Fetch, out: ProviderOutcome) -> None:
        while out.failed is None:
            cid = state.take(out.peer.peer_id)
            if cid is None:
                if not await self._wait(state, out):
                    return
                continue
            state.on_wire += 1
            lease = state.lease(cid)
            try:
                data = await self._get_block(cid, out, lease)
            finally:
                state.on_wire -= 1
            in_slot = lease is not None and data is lease.view and state.leases.get(cid) is lease
            if lease is not None and not in_slot:
                state.unlease(cid, lease)
            if data is None:
                state.settle(cid, None, out.peer.peer_id, failed=out.failed is not None)
            else:
                state.received(cid)
                judged = functools.partial(self._judged, state, out, cid, data)
                state.verifier.submit(cid, data, judged, in_slot=in_slot)
            state.poke()
            while len(state.verifier) >= 2 * LANES and out.failed is None:
                await state.wait_change(0.05)  # checks fall behind: hold received bytes bounded

    def _judged(self, state: _Fetch, out: ProviderOutcome, cid: str, data: Blob, ok: bool | None) -> None:
        """A received block's verdict (on the loop): count it, or penalise its sender."""
        if ok:
            out.blocks += 1
            out.nbytes += len(data)
            out.served.add(cid)
            state.settle(cid, data, out.peer.peer_id, failed=False)
        else:
            if ok is False:
                self._penalise(out, f"sent bytes not matching {cid}")
            else:
                out.failed = out.failed or "error"
            state.settle(cid, None, out.peer.peer_id, failed=True)
        state.poke()

    @staticmethod
    async def _wait(state: _Fetch, out: ProviderOutcome) -> bool:
        # Blocks in flight elsewhere may come back (their provider died) or outstay the endgame
        # patience: wait for a change, or long enough to look again.
        if not state.inflight:
            return False
        await state.wait_change(max(state.patience() or 0.0, 0.02))
        return out.failed is None

    async def _get_block(self, cid: str, out: ProviderOutcome, lease: Lease | None) -> Blob | None:
        """One block's bytes from the provider (not yet checked); None when absent or on failure.

        With a ``lease`` the payload is received straight into the consumer's slot for it.
        """
        deadline = time.monotonic() + self.config.request_timeout_s
        while True:
            token = RECEIVE_INTO.set(lease)
            try:
                reply = await self._call(out.peer, "bs.block", {"cid": cid})
                break
            except Busy:
                if time.monotonic() > deadline:
                    out.failed = "dead"
                    return None
                await asyncio.sleep(0.005)  # the provider is serving us at its bound: back off
            except PeerError:
                out.failed = "dead"
                return None
            finally:
                RECEIVE_INTO.reset(token)
        data = reply.get("data")
        if data is None:
            return None
        if not isinstance(data, bytes | bytearray | memoryview):
            self._penalise(out, f"sent a {type(data).__name__} for block {cid}")
            return None
        return data

    def _accept(
        self,
        sink: BlockSink | None,
        to_store: list[tuple[str, Blob]] | None,
        blocks: list[tuple[str, Blob]],
        committed: list[bool],
    ) -> None:
        """Verified blocks (in the verifier's thread): into the store now or later, then the sink."""
        for (cid, data), done in zip(blocks, committed, strict=True):
            if to_store is None:
                self.store.put(cid, data, verify=False)
            else:
                to_store.append((cid, data))
            if sink is not None and not done:
                sink(cid, data)

    def _store_in_background(self, blocks: list[tuple[str, Blob]]) -> None:
        task = asyncio.ensure_future(asyncio.to_thread(self._store_all, blocks))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    def _store_all(self, blocks: list[tuple[str, Blob]]) -> None:
        try:
            for cid, data in blocks:
                self.store.put(cid, data, verify=False)  # verified when it arrived
        except SedmaError as exc:  # the fetch has returned: nobody to raise to
            log.warning("could not store %d fetched blocks: %s", len(blocks), exc)

    async def flush(self) -> None:
        """Wait until blocks fetched with ``store_later`` are in the store."""
        while self._writes:
            await asyncio.wait(list(self._writes))

    def _penalise(self, out: ProviderOutcome, reason: str) -> None:
        first = out.failed != "integrity"  # its other lanes may catch it too: penalise once
        out.failed = "integrity"
        if first and self.on_penalty is not None:
            self.on_penalty(out.peer, reason)

    async def _cancel_wants(self, peer: PeerInfo, cids: list[str]) -> None:
        if cids:
            with contextlib.suppress(PeerError):  # best effort: entries expire anyway
                await self._call(peer, "bs.want", {"cids": [], "cancel": cids})

    async def _call(self, peer: PeerInfo, method: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self.request(peer, method, body), self.config.request_timeout_s)
        except TimeoutError:
            raise PeerError(f"{method} to {peer.addr} timed out") from None
        except PeerError as exc:
            if getattr(exc, "code", None) == "busy":
                raise Busy(str(exc)) from None
            raise
        except (OSError, SedmaError) as exc:
            raise PeerError(f"{method} to {peer.addr} failed: {exc}") from None

    # == server ==================================================================================
    def handlers(self) -> dict[str, Callable[[bytes, dict[str, Any]], Awaitable[dict[str, Any]]]]:
        """method -> handler(caller peer id, body), for the node to register."""
        return {
            "bs.want": self.serve_want,
            "bs.block": self.serve_block,
            "bs.fetch": self.serve_fetch,
        }

    async def handle(self, method: str, body: dict[str, Any], *, peer_id: bytes = b"") -> dict[str, Any]:
        """Dispatch one inbound request of the exchange protocol."""
        handler = self.handlers().get(method)
        if handler is None:
            raise ProtocolError(f"unknown block-exchange method {method!r}")
        return await handler(peer_id, body)

    async def serve_want(self, peer_id: bytes, body: dict[str, Any]) -> dict[str, Any]:
        """bs.want: add to (or cancel from) the caller's bounded want-list; answer have-flags."""
        cids = _cid_list(body.get("cids", []), "cids", self.config.max_wantlist)
        cancel = _cid_list(body.get("cancel", []), "cancel", self.config.max_wantlist)
        wants = self._live_wants(peer_id)
        for cid in cancel:
            wants.pop(cid, None)
        fresh = [c for c in cids if c not in wants]
        if len(wants) + len(fresh) > self.config.max_wantlist:
            bound = self.config.max_wantlist
            raise WantlistFull(f"want-list of {len(wants)} + {len(fresh)} entries passes the bound {bound}")
        expiry = time.monotonic() + self.config.want_ttl_s
        wants.update(dict.fromkeys(cids, expiry))
        if not wants:
            self._wants.pop(peer_id, None)
        return {"have": [self.store.has(c) for c in cids]}

    async def serve_block(self, peer_id: bytes, body: dict[str, Any]) -> dict[str, Any]:
        """bs.block: one block's bytes (None when not held), bounded per caller."""
        cid = validate_cid(body.get("cid"), field="bs.block cid")
        if self._serving.get(peer_id, 0) >= self.config.max_serve_inflight:
            raise Busy(f"already serving {self.config.max_serve_inflight} blocks to this peer")
        self._serving[peer_id] = self._serving.get(peer_id, 0) + 1
        try:
            # A published block is answered from memory; a disk read goes off the event loop
            # (it must not stall every other connection).
            data = self.store.get_hot(cid) or await asyncio.to_thread(self.store.get, cid)
        finally:
            self._serving[peer_id] -= 1
            if not self._serving[peer_id]:
                del self._serving[peer_id]
        if peer_id in self._wants:
            self._wants[peer_id].pop(cid, None)
        return {"cid": cid, "data": data}

    async def serve_fetch(self, peer_id: bytes, body: dict[str, Any]) -> dict[str, Any]:
        """bs.fetch: fetch and pin blocks from the named providers (replication, pull model)."""
        cids = _cid_list(body.get("cids"), "cids", self.config.max_wantlist)
        providers = _provider_list(body.get("providers"), self.config.max_fetch_providers)
        blocks = await self.fetch(cids, providers)
        self.store.pin(blocks)
        if self.on_stored is not None:
            await self.on_stored(list(blocks))
        return {"stored": len(blocks)}

    def _live_wants(self, peer_id: bytes) -> dict[str, float]:
        now = time.monotonic()
        wants = self._wants.setdefault(peer_id, {})
        for cid in [c for c, t in wants.items() if t < now]:
            del wants[cid]
        return wants

    def wantlist(self, peer_id: bytes) -> list[str]:
        """The live want-list a peer has registered with us."""
        return list(self._live_wants(peer_id))


def _cid_list(raw: object, field: str, bound: int) -> list[str]:
    if not isinstance(raw, list):
        raise InputError(f"{field}: expected a list of CIDs, got {type(raw).__name__}")
    if len(raw) > bound:
        raise WantlistFull(f"{field}: {len(raw)} CIDs passes the bound {bound}")
    return [validate_cid(c, field=field) for c in raw]


def _provider_list(raw: object, bound: int) -> list[PeerInfo]:
    if not isinstance(raw, list) or not 0 < len(raw) <= bound:
        raise InputError(f"providers: expected 1..{bound} [peer_id, host, port] entries")
    out = []
    for item in raw:
        ok = isinstance(item, list | tuple) and len(item) == 3
        if not ok or not (isinstance(item[0], bytes) and isinstance(item[1], str) and type(item[2]) is int):
            raise InputError(f"providers: bad entry {item!r:.80}, want [peer_id bytes, host, port]")
        out.append(PeerInfo(item[0], item[1], item[2]))
    return out


def provider_entry(peer: PeerInfo) -> list[Any]:
    """Wire form of a provider inside bs.fetch."""
    return [peer.peer_id, peer.host, peer.port]
