#!/usr/bin/env bash
# W3AR (docs/methods.md#w3ar): word-level rewards from ASR cross-attention on LibriTTS.
set -euo pipefail
./tts_rl.sh --method w3ar --reward_models reward_asr --evaluators "eval_asr eval_speaker" "$@"
