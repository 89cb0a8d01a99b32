#!/usr/bin/env bash
# GRPO with the WER + NLL reward (Llasa-GRPO, docs/methods.md#grpo) on LibriTTS; the reward ASR is a
# CTC model (conf/reward_ctc*.yaml), the ESPnet encoder-decoder with --reward_models reward_asr.
set -euo pipefail
exec ./tts_rl.sh --method grpo --reward_models reward_ctc --evaluators "eval_asr eval_speaker" "$@"
