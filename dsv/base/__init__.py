"""Base layer: errors, hashing, on-disk model base, atomic file writes, locks, layout.

Nothing in here imports any other part of dsv; every other layer may import it.
"""
