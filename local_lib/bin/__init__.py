"""Command-line entry points, one per run.sh stage action (python -m local_lib.bin.<tool>)."""
