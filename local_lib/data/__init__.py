"""Kaldi data directories, audio I/O, features and corpus preparers."""
