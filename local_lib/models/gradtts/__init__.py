"""Grad-TTS (Popov et al., 2021): score-based diffusion TTS on log-mels, plus its reverse-step
transition densities used by EASPO."""

from local_lib.models.gradtts.bundle import GradTTSBundle, load_gradtts
from local_lib.models.gradtts.config import GradTTSConfig
from local_lib.models.gradtts.model import GradTTS
from local_lib.models.gradtts.sampler import prior_sample, reverse_diffusion, reverse_step
from local_lib.models.gradtts.sde import (
    NoiseSchedule,
    log_ratio,
    step_time,
    transition_logprob,
    transition_mean,
)
from local_lib.models.gradtts.text_encoder import EncoderOutput

__all__ = [
    "EncoderOutput",
    "GradTTS",
    "GradTTSBundle",
    "GradTTSConfig",
    "NoiseSchedule",
    "load_gradtts",
    "log_ratio",
    "prior_sample",
    "reverse_diffusion",
    "reverse_step",
    "step_time",
    "transition_logprob",
    "transition_mean",
]
