#!/usr/bin/env bash
# EASPO (docs/methods.md#easpo): stepwise emotional preference optimisation of Grad-TTS on ESD.
# Stage 3 trains the EASPM preference model beside the evaluators and [ours] a reward emotion
# classifier (emotion_clf, not the evaluator); stage 5 trains EASPO and the two ablations of
# issue 6: k = 2 candidates, and continuation from the winner; and [ours] the variant
# emotion_clf, whose candidates are finished by the ODE and judged by the reward classifier
# (conf/easpo_emotion_clf*.yaml). The earlier variant baseneg, judged by an EASPM that stage 5
# first trains with the base's outputs as negatives (conf/easpm_baseneg*.yaml), runs with
# --method_variants "k2 winner baseneg emotion_clf" (it adds about 6 min on two cores).
set -euo pipefail
exec ./tts_rl.sh --method easpo --reward_models "easpm emotion_clf" \
  --method_variants "k2 winner emotion_clf" \
  --evaluators "eval_asr eval_emotion eval_speaker" "$@"
