"""Replication: place r copies of a tensor's blocks on peers chosen by Eq. 7.

Pull model: the publisher asks each chosen holder (``bs.fetch``) to fetch the blocks from it
(and from holders already done), so every copy is verified against its CIDs by the holder
itself and a lying publisher cannot plant bad data. A holder that fails or refuses is replaced
by the next candidate in Eq. 7 order, until r holders succeed or the candidates run out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sedma.errors import ConfigError
from sedma.net.exchange import provider_entry
from sedma.net.selection import STRATEGIES, Weights, rank
from sedma.net.types import PeerError, PeerInfo, PeerStats, RequestFn

MAX_BATCH = 1024  # CIDs per bs.fetch (a holder's want-list bound)


@dataclass(frozen=True, slots=True)
class ReplicationConfig:
    """How many copies, chosen how, and how long a holder may take per batch."""

    replicas: int = 3
    strategy: str = "adaptive"
    timeout_s: float = 60.0

    def validate(self) -> ReplicationConfig:
        if self.replicas < 0:
            raise ConfigError(f"replicas must be >= 0, got {self.replicas}")
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"replication strategy {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if not self.timeout_s > 0:
            raise ConfigError(f"replication timeout_s must be > 0, got {self.timeout_s}")
        return self


@dataclass(slots=True)
class ReplicationResult:
    """Holders that stored every block, and the candidates that failed (with why)."""

    holders: list[PeerInfo] = field(default_factory=list)
    failed: dict[bytes, str] = field(default_factory=dict)


def order_candidates(
    candidates: Sequence[PeerStats],
    *,
    exclude: frozenset[bytes],
    strategy: str = "adaptive",
    weights: Weights | None = None,
    rng: np.random.Generator | None = None,
) -> list[PeerInfo]:
    """Candidates in the order they should be asked (Eq. 7 for ``adaptive``), self excluded."""
    pool = [c for c in candidates if c.peer.peer_id not in exclude]
    return [pool[i].peer for i in rank(pool, strategy=strategy, weights=weights, rng=rng)]


async def replicate(
    cids: Sequence[str],
    *,
    source: PeerInfo,
    candidates: Sequence[PeerStats],
    request: RequestFn,
    config: ReplicationConfig | None = None,
    weights: Weights | None = None,
    rng: np.random.Generator | None = None,
) -> ReplicationResult:
    """Ask the best r candidates (never ``source``) to fetch and pin ``cids``; replace failures."""
    cfg = (config or ReplicationConfig()).validate()
    queue = order_candidates(
        candidates, exclude=frozenset({source.peer_id}), strategy=cfg.strategy, weights=weights, rng=rng
    )
    result = ReplicationResult()
    unique = list(dict.fromkeys(cids))
    while len(result.holders) < cfg.replicas and queue:
        wave = [queue.pop(0) for _ in range(min(cfg.replicas - len(result.holders), len(queue)))]
        providers = [source, *result.holders][:8]
        errors = await asyncio.gather(*(_place(unique, h, providers, request, cfg) for h in wave))
        for holder, error in zip(wave, errors, strict=True):
            if error is None:
                result.holders.append(holder)
            else:
                result.failed[holder.peer_id] = error
    return result


async def _place(
    cids: list[str], holder: PeerInfo, providers: list[PeerInfo], request: RequestFn, cfg: ReplicationConfig
) -> str | None:
    """One holder fetches every batch; returns None on success or the reason it failed."""
    entries = [provider_entry(p) for p in providers]
    try:
        for start in range(0, len(cids), MAX_BATCH):
            batch = cids[start : start + MAX_BATCH]
            body = {"cids": batch, "providers": entries}
            reply = await asyncio.wait_for(request(holder, "bs.fetch", body), cfg.timeout_s)
            if reply.get("stored") != len(batch):
                return f"stored {reply.get('stored')!r} of {len(batch)} blocks"
    except TimeoutError:
        return f"timed out after {cfg.timeout_s}s"
    except PeerError as exc:
        return str(exc)
    return None
