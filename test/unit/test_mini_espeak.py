"""espeak-ng rendering: exact-length resampling, SSML-safe text, clear failures."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torchaudio

from local_lib.data.mini.espeak import (
    ESPEAK_RATE,
    EspeakError,
    Prosody,
    Voice,
    check_voices,
    synthesize,
)

VOICE = Voice("gmw/en+m3")


@pytest.mark.parametrize("rate", [16000, 24000])
def test_resampled_output_matches_torchaudio(rate):
    native = synthesize("The gate was locked.", VOICE, Prosody(), ESPEAK_RATE)
    ours = synthesize("The gate was locked.", VOICE, Prosody(), rate)
    reference = torchaudio.functional.resample(torch.from_numpy(native), ESPEAK_RATE, rate)
    assert ours.shape == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference.numpy(), atol=1e-4)


def test_markup_characters_in_text_are_spoken_not_parsed():
    plain = synthesize("Tom and Anna", VOICE, Prosody(), 16000)
    marked = synthesize("Tom & Anna <b>", VOICE, Prosody(), 16000)
    assert len(marked) > 0.8 * len(plain)


def test_prosody_is_rendered_as_ssml_attributes():
    ssml = Prosody(pitch=-5, range=20, rate=90, volume=3).ssml("Hi")
    assert 'pitch="-5%" range="+20%" rate="90%" volume="+3%">Hi</prosody>' in ssml


@pytest.mark.parametrize(
    "name, missing",
    [("gmw/no-such-voice+m3", "gmw/no-such-voice"), ("gmw/en+no-such-variant", "no-such-variant")],
)
def test_unknown_voice_or_variant_is_named(name, missing):
    check_voices([VOICE])
    with pytest.raises(EspeakError, match=f"'{missing}'.*{re.escape(repr(name))}"):
        check_voices([VOICE, Voice(name)])
