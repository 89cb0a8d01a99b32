#!/usr/bin/env bash
# HPRO (METHODS.md §4): hierarchical progressive reward optimisation of the codec LM on ESD.
set -euo pipefail
./tts_rl.sh --method hpro --evaluators "eval_asr eval_emotion eval_speaker" "$@"
