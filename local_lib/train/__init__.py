"""Trainer utilities: distributed set-up, checkpoints, logging."""
