"""Layer 1: memory-guided matrix processing on simulated RRAM crossbars."""
