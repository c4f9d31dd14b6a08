"""The dual memory: long-term patterns that worked, short-term statistics of the live workload."""
