#!/usr/bin/env bash
# GRPO with the WER + NLL reward (Llasa-GRPO, METHODS.md §1) on LibriTTS.
set -euo pipefail
./tts_rl.sh --method grpo --reward_models reward_asr --evaluators "eval_asr eval_speaker" "$@"
