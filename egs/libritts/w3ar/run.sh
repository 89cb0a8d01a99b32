#!/usr/bin/env bash
# W3AR (docs/methods.md#w3ar): word-level rewards from ASR cross-attention on LibriTTS.
# Stage 5 is not built yet (no METHOD in local_lib/rl/w3ar.py): --family names the model family.
set -euo pipefail
./tts_rl.sh --method w3ar --family codec_lm --reward_models reward_asr --evaluators "eval_asr eval_speaker" "$@"
