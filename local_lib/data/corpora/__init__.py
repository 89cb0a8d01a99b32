"""Corpus preparers: real corpus layouts -> Kaldi data dirs (see each module's docstring)."""
