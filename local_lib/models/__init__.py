"""Reward models, evaluator models and TTS models."""
