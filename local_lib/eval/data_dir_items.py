"""Score items for a Kaldi test data dir and a directory (or scp) of audio under test."""

from pathlib import Path

from local_lib.data.kaldi_dir import read_kv
from local_lib.eval.samples import takes_of
from local_lib.eval.scoring import ScoreItem


def _optional_kv(path: Path) -> dict[str, str]:
    return read_kv(path) if path.is_file() else {}


def data_dir_items(
    data_dir: Path,
    wav_dir: Path | None = None,
    wav_scp: Path | None = None,
    reference: str = "auto",
) -> list[ScoreItem]:
    """One item per utterance of ``data_dir/text`` and take of it (``local_lib.eval.samples``).

    The audio under test is ``<wav_dir>/<utt>.wav`` or the entries of ``wav_scp`` (``<utt>``
    and, when stage 6 drew several takes, ``<utt>#1``...). The reference
    audio for SIM/prosody is the prompt (``utt2prompt_wav``) or the natural recording
    (``wav.scp``): ``reference`` is ``prompt``, ``data``, ``none`` or ``auto`` (prompt when the
    data dir has prompts, else data).
    """
    data_dir = Path(data_dir)
    if (wav_dir is None) == (wav_scp is None):
        raise ValueError("give exactly one of wav_dir and wav_scp")
    text = read_kv(data_dir / "text")
    utt2spk = _optional_kv(data_dir / "utt2spk")
    utt2emo = _optional_kv(data_dir / "utt2emo")
    prompts = _optional_kv(data_dir / "utt2prompt_wav")
    natural = _optional_kv(data_dir / "wav.scp")
    if reference == "auto":
        reference = "prompt" if prompts else "data"
    ref_map = {"prompt": prompts, "data": natural, "none": {}}.get(reference)
    if ref_map is None:
        raise ValueError(f"reference must be auto, prompt, data or none, got {reference!r}")
    under_test = read_kv(Path(wav_scp)) if wav_scp is not None else {}
    takes = (
        takes_of(text, under_test, f"{wav_scp} (for {data_dir}/text)")
        if wav_scp is not None
        else {utt: [utt] for utt in text}
    )
    items = []
    for utt, sentence in text.items():
        if reference != "none" and utt not in ref_map:
            raise ValueError(f"{data_dir}: {utt}: no {reference} reference audio")
        ref = Path(ref_map[utt]) if reference != "none" else None
        for take, key in enumerate(takes[utt]):
            if wav_scp is not None:
                wav = Path(under_test[key])
            else:
                wav = Path(wav_dir) / f"{utt}.wav"
                if not wav.is_file():
                    raise FileNotFoundError(f"{wav_dir}: {utt}: {wav} not found")
            items.append(
                ScoreItem(key, sentence, wav, ref, utt2spk.get(utt), utt2emo.get(utt), take)
            )
    return items
