"""Kademlia DHT: pure routing table and look-up, signed storage, RPC handlers, orchestration."""
