"""Scoring of synthesised speech with evaluators that are never rewards."""
