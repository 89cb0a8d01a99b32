"""seed-tts-eval protocol: items from a ``utt|prompt_text|prompt_wav|text`` list.

The list is parsed by the data layer's ``read_seedtts_list`` (one parser in the project); the
audio under test is ``<wav_dir>/<utt>.wav`` and SIM is measured against the prompt wav.
"""

from pathlib import Path

from local_lib.data.corpora.seedtts import read_seedtts_list
from local_lib.eval.scoring import ScoreItem


def seedtts_items(list_path: Path, wav_dir: Path) -> list[ScoreItem]:
    """Score items for every list line; a missing generated wav is an error naming the utt."""
    items = []
    for entry in read_seedtts_list(Path(list_path)):
        wav = Path(wav_dir) / f"{entry.utt}.wav"
        if not wav.is_file():
            raise FileNotFoundError(f"{list_path}: {entry.utt}: generated audio {wav} not found")
        items.append(
            ScoreItem(utt=entry.utt, text=entry.text, wav=wav, ref_wav=Path(entry.prompt_wav))
        )
    return items
