#!/usr/bin/env bash
# HPRO (docs/methods.md#hpro): hierarchical progressive reward optimisation of the codec LM on ESD.
set -euo pipefail
./tts_rl.sh --method hpro --evaluators "eval_asr eval_emotion eval_speaker" "$@"
