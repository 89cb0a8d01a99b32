#!/usr/bin/env bash
# EASPO (METHODS.md §5): stepwise emotional preference optimisation of Grad-TTS on ESD.
set -euo pipefail
./tts_rl.sh --method easpo --evaluators "eval_asr eval_emotion eval_speaker" "$@"
