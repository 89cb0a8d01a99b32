#!/usr/bin/env bash
# HPRO (docs/methods.md#hpro): hierarchical progressive reward optimisation of the codec LM on ESD.
# Stage 5 is not built yet (no METHOD in local_lib/rl/hpro.py): --family names the model family.
set -euo pipefail
exec ./tts_rl.sh --method hpro --family codec_lm --evaluators "eval_asr eval_emotion eval_speaker" "$@"
