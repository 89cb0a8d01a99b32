"""Rendering one utterance with the espeak-ng command-line synthesiser.

espeak-ng runs as one fresh subprocess per utterance: the library (libespeak-ng through ctypes)
would save the ~10 ms start-up, but it carries state from one utterance to the next, so the
same request would not give the same bytes. Prosody goes through SSML `<prosody>` (espeak-ng's
`-m`), which is the only interface that exposes pitch *range* as well as pitch, rate and volume.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from xml.sax.saxutils import escape

import numpy as np
import soundfile
import torch
import torchaudio

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22050
INSTALL_HINT = (
    "espeak-ng is needed to synthesise the mini corpora but was not found on PATH; install it "
    "with `sudo apt-get install espeak-ng` (Debian/Ubuntu) or `brew install espeak-ng` (macOS), "
    "or give the real corpus root instead"
)


class EspeakError(RuntimeError):
    """espeak-ng is missing or failed; the message says how to fix it or which text failed."""


@dataclass(frozen=True)
class Voice:
    """A speaker's espeak-ng settings: voice+variant, base pitch (-p), speed (-s), amplitude (-a).

    The default amplitude leaves headroom so loud emotions do not clip.
    """

    name: str
    pitch: int = 50
    speed: int = 165
    amplitude: int = 60


@dataclass(frozen=True)
class Prosody:
    """Relative SSML prosody changes in percent (0 = the voice's own; rate 100 = unchanged)."""

    pitch: float = 0.0
    range: float = 0.0
    rate: float = 100.0
    volume: float = 0.0

    def ssml(self, text: str) -> str:
        """The text wrapped in a `<prosody>` element with these settings."""
        return (
            f'<speak><prosody pitch="{self.pitch:+.0f}%" range="{self.range:+.0f}%" '
            f'rate="{self.rate:.0f}%" volume="{self.volume:+.0f}%">{escape(text)}'
            "</prosody></speak>"
        )


def require_espeak() -> str:
    """Path of the espeak-ng binary, or an error saying how to install it."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise EspeakError(INSTALL_HINT)
    return path


def check_voices(voices: Iterable[Voice]) -> None:
    """Fail on a voice espeak-ng does not have; with SSML it would silently use its default."""
    files = set()
    for kind in ("", "=variant"):
        listing = subprocess.run(
            [require_espeak(), f"--voices{kind}"], capture_output=True, text=True, check=True
        ).stdout.splitlines()[1:]
        files |= {line.split()[4].removeprefix("!v/") for line in listing if len(line.split()) > 4}
    for voice in voices:
        missing = [part for part in voice.name.split("+") if part not in files]
        if missing:
            raise EspeakError(
                f"espeak-ng has no voice file {missing} for voice {voice.name!r}; "
                "see `espeak-ng --voices` and `espeak-ng --voices=variant`"
            )


def synthesize(text: str, voice: Voice, prosody: Prosody, sample_rate: int) -> np.ndarray:
    """Float32 mono samples of `text` spoken by `voice` with `prosody`, at `sample_rate`."""
    cmd = [
        require_espeak(),
        "-m",
        "-v",
        voice.name,
        "-p",
        str(voice.pitch),
        "-s",
        str(voice.speed),
        "-a",
        str(voice.amplitude),
        "--stdout",
        prosody.ssml(text),
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise EspeakError(
            f"espeak-ng failed (exit {proc.returncode}) for voice {voice.name} on {text!r}: "
            f"{proc.stderr.decode(errors='replace').strip()}"
        )
    wav, rate = soundfile.read(io.BytesIO(proc.stdout), dtype="float32")
    if wav.size == 0:
        raise EspeakError(f"espeak-ng gave no samples for voice {voice.name} on {text!r}")
    return _resample(wav, rate, sample_rate) if rate != sample_rate else wav


def _resample(wav: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Resample after zero-padding to whole seconds.

    conv1d's oneDNN kernel is rebuilt for every new input length (~3 ms, more than the
    resampling itself); with padding a handful of lengths recur. Trailing zeros leave the kept
    samples unchanged, since the resampler pads with zeros anyway.
    """
    padded = np.pad(wav, (0, -len(wav) % orig))
    out = _resampler(orig, new)(torch.from_numpy(padded)).numpy()
    return out[: -(-len(wav) * new // orig)]


@functools.cache
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """The sinc kernel costs more than applying it, so build it once per rate pair."""
    return torchaudio.transforms.Resample(orig, new)
