#!/usr/bin/env bash
# EASPO (docs/methods.md#easpo): stepwise emotional preference optimisation of Grad-TTS on ESD.
# Stage 3 trains the EASPM preference model beside the evaluators; stage 5 trains EASPO and the
# two ablations of issue 6: k = 2 candidates, and continuation from the winner; and [ours] the
# variant baseneg, judged by an EASPM that stage 5 first trains with the base's own outputs as
# the less-preferred side of a pair (conf/easpm_baseneg*.yaml).
set -euo pipefail
exec ./tts_rl.sh --method easpo --reward_models easpm --method_variants "k2 winner baseneg" \
  --evaluators "eval_asr eval_emotion eval_speaker" "$@"
