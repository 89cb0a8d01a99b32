"""Shared stage code for the TTS reward/preference post-training recipes."""
