#!/usr/bin/env bash
# DiffRO (docs/methods.md#diffro): differentiable reward optimisation through soft tokens read by
# Token2Text (conf/token2text*.yaml), trained on LibriTTS, tested on seed-tts-eval. The variants:
# no MTR reward (nomtr), straight-through soft tokens (st), no KL (beta0).
set -euo pipefail
exec ./tts_rl.sh --method diffro --method_variants "nomtr st beta0" --reward_models token2text \
  --evaluators "eval_asr eval_speaker" "$@"
