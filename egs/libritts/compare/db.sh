# Corpus root. Empty: local/data.sh builds the mini_libritts corpus with espeak-ng.
LIBRITTS=
# Where local/data.sh builds the ASR-only mini corpus (mini_asr) once for every recipe, one
# build per seed. Empty: <repository root>/downloads/mini_asr.
mini_asr_dir=
