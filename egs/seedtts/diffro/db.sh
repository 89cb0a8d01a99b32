# Corpus roots (training on LibriTTS, testing on seed-tts-eval). Empty: the mini corpora.
LIBRITTS=
SEEDTTS=
