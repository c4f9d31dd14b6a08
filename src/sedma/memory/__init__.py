"""The dual memory: long-term patterns that worked, short-term statistics of the live workload."""

from sedma.memory.dual import DualMemory
from sedma.memory.ltm import LongTermMemory
from sedma.memory.records import EvictionWeights, Record, StreamStats
from sedma.memory.stats import stream_stats
from sedma.memory.stm import ShortTermMemory

__all__ = [
    "DualMemory",
    "EvictionWeights",
    "LongTermMemory",
    "Record",
    "ShortTermMemory",
    "StreamStats",
    "stream_stats",
]
