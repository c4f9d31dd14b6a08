"""Layer 3: deployment compiler and controller."""
