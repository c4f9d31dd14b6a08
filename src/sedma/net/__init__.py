"""Layer 2: the peer-to-peer tensor network."""
