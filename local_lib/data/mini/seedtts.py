"""mini_seedtts: a seed-tts-eval style English list from held-out voices and sentences.

Each line pairs a prompt (a held-out voice reading a held-out sentence) with a target text that
no mini_libritts split contains. The target spoken by the prompt's voice is written to
`en/wavs/<utt>.wav` as the ground-truth reference, as in seed-tts-eval.
"""

from __future__ import annotations

from pathlib import Path

from local_lib.data.mini.espeak import Prosody
from local_lib.data.mini.libritts import SEEDTTS_PER_SPEAKER, libritts_sentences
from local_lib.data.mini.plan import CorpusPlan
from local_lib.data.mini.render import Utterance
from local_lib.data.mini.voices import SEEDTTS_SPEAKERS

SAMPLE_RATE = 16000


def plan_seedtts(seed: int, max_sentences: int | None = None) -> CorpusPlan:
    """`en/meta.lst` (utt|prompt_text|prompt_wav|text), prompt wavs and reference wavs.

    `max_sentences` caps the lines per speaker (a size knob for tests).
    """
    sentences = libritts_sentences(seed)
    prompts, targets = iter(sentences["seedtts_prompt"]), iter(sentences["seedtts_text"])
    plan = CorpusPlan()
    lines = []
    for speaker in SEEDTTS_SPEAKERS:
        pairs = [(next(prompts), next(targets)) for _ in range(SEEDTTS_PER_SPEAKER)]
        for i, (prompt_text, text) in enumerate(pairs[:max_sentences]):
            prompt_id = f"{speaker.id}_{2 * i:06d}"
            utt = f"{prompt_id}-{speaker.id}_{2 * i + 1:06d}"
            prompt_wav = Path("prompt-wavs", f"{prompt_id}.wav")
            lines.append(f"{utt}|{prompt_text}|{prompt_wav}|{text}\n")
            for rel, said in ((prompt_wav, prompt_text), (Path("wavs", f"{utt}.wav"), text)):
                plan.utterances.append(
                    Utterance(Path("en") / rel, said, speaker.voice, Prosody(), SAMPLE_RATE)
                )
    plan.texts[Path("en", "meta.lst")] = "".join(sorted(lines))
    return plan
