"""Layer 2: the peer-to-peer tensor network.

``Node`` is the one library entry point; ``NodeClient`` talks to a running node as the CLI
does. Everything else lives in private-by-convention modules documented in README.md.
"""

from sedma.net.client import NodeClient
from sedma.net.dht.node import DhtConfig
from sedma.net.exchange import ExchangeConfig
from sedma.net.holepunch import NatTransport, PunchConfig
from sedma.net.identity import Identity
from sedma.net.node import Node, NodeConfig
from sedma.net.relay import RelayServer
from sedma.net.relay_limits import RelayLimits
from sedma.net.rpc import RemoteError, RpcConfig
from sedma.net.types import (
    IntegrityError,
    NetError,
    PeerError,
    PeerInfo,
    PeerLoad,
    PeerStats,
    ProtocolError,
    RequestFn,
)

__all__ = [
    "DhtConfig",
    "ExchangeConfig",
    "Identity",
    "IntegrityError",
    "NatTransport",
    "NetError",
    "Node",
    "NodeClient",
    "NodeConfig",
    "PeerError",
    "PeerInfo",
    "PeerLoad",
    "PeerStats",
    "ProtocolError",
    "PunchConfig",
    "RelayLimits",
    "RelayServer",
    "RemoteError",
    "RequestFn",
    "RpcConfig",
]
