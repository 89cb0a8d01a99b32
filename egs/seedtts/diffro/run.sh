#!/usr/bin/env bash
# DiffRO (docs/methods.md#diffro): differentiable reward optimisation, trained on LibriTTS, tested on seed-tts-eval.
# Stage 5 is not built yet (no METHOD in local_lib/rl/diffro.py): --family names the model family.
set -euo pipefail
./tts_rl.sh --method diffro --family codec_lm --evaluators "eval_asr eval_speaker" "$@"
