"""Batched numba alignment kernels, each with a plain NumPy reference."""
