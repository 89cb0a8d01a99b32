#!/usr/bin/env bash
# DiffRO (docs/methods.md#diffro): differentiable reward optimisation, trained on LibriTTS, tested on seed-tts-eval.
set -euo pipefail
./tts_rl.sh --method diffro --evaluators "eval_asr eval_speaker" "$@"
