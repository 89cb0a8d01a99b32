#!/usr/bin/env bash
# HPRO (docs/methods.md#hpro): hierarchical progressive reward optimisation of the codec LM on ESD.
# Stage 3 trains the reward codec (conf/reward_codec*.yaml) beside the evaluators; stage 5 trains
# HPRO (frame -> + word -> + sentence terms) and two variants: every term summed from the first
# step (summed), and the sentence-level emotion term alone (sentence).
set -euo pipefail
exec ./tts_rl.sh --method hpro --reward_models reward_codec --method_variants "summed sentence" \
  --evaluators "eval_asr eval_emotion eval_speaker" "$@"
