"""SEDMA: Self-Evolving Distributed Memory Architecture.

Three layers — RRAM crossbar compute (:mod:`sedma.compute`), a peer-to-peer tensor
network (:mod:`sedma.net`) and Kubernetes placement (:mod:`sedma.deploy`) — share one
dual memory (:mod:`sedma.memory`) and learn from their own history.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
