#!/usr/bin/env bash
# W3AR (docs/methods.md#w3ar): word-level rewards from ASR cross-attention on LibriTTS. The reward
# ASR is the ESPnet encoder-decoder (conf/reward_asr*.yaml); the ablations train as variants.
set -euo pipefail
exec ./tts_rl.sh --method w3ar --method_variants "nopurity nomono nogroup" --reward_models reward_asr \
  --evaluators "eval_asr eval_speaker" "$@"
