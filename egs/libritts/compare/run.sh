#!/usr/bin/env bash
# Every codec-LM method from one base, under one stage-5 CPU-seconds budget, scored on one test
# set (README.md). Stages 1-4 run once, training every method's reward model; then tts_rl.sh runs
# stages 4-8 per method under --tag <method>, linking the one base (exp/tts_<method>_<method>,
# its reward model's view beside the evaluators'); stage 8 ends with exp/report_compare.
# Options: --stage, --stop_stage, --methods "grpo w3ar diffro dpo", --test_set (the one
# compared), --seed; every other option goes to each tts_rl.sh run (--nj, --config_suffix, ...).
set -euo pipefail

stage=1
stop_stage=8
methods="grpo w3ar diffro dpo"
test_set=test
seed=0
# The reward model each method trains with (stage 3): GRPO's and DPO's ASR reward reads the CTC
# ASR, W3AR's the attention encoder-decoder, DiffRO's the Token2Text model.
declare -A reward_of=([grpo]=reward_ctc [w3ar]=reward_asr [diffro]=token2text [dpo]=reward_ctc)

pass=()
while [ $# -gt 0 ]; do
  opt=${1%%=*} value=${1#*=}
  [[ "$1" == *=* ]] || { [ $# -ge 2 ] || { echo "$0: $1 needs a value" >&2; exit 1; }; value=$2; shift; }
  shift
  case "${opt}" in
    --stage) stage=${value} ;;
    --stop_stage | --stop-stage) stop_stage=${value} ;;
    --methods) methods=${value} ;;
    --test_set) test_set=${value} ;;
    --seed) seed=${value} ;;
    --method | --method_variants | --method_config | --reward_models | --tag | --test_sets)
      echo "$0: ${opt} is set by this recipe per method (see README.md)" >&2; exit 1 ;;
    --train_seeds)
      echo "$0: --train_seeds: local_lib.bin.compare_methods compares one training seed per method" >&2; exit 1 ;;
    *) pass+=("${opt}" "${value}") ;;
  esac
done
for m in ${methods}; do
  [ -n "${reward_of[${m}]:-}" ] || { echo "$0: --methods: ${m} is not compared here (known: ${!reward_of[*]})" >&2; exit 1; }
done
rewards=$(for m in ${methods}; do echo "${reward_of[${m}]}"; done | sort -u | tr '\n' ' ')
common=(--seed "${seed}" --test_sets "${test_set}" "${pass[@]}")

# Stages 1-4 once (--method only picks the codec-LM family; its stage 5 is not run here).
if [ "${stage}" -le 4 ]; then
  ./tts_rl.sh --method grpo --reward_models "${rewards% }" --stage "${stage}" \
    --stop_stage $(( stop_stage < 4 ? stop_stage : 4 )) "${common[@]}"
fi
# Stages 4-8 per method, each under its own tag so its base is scored by its own reward model.
# Then stages 6-7 score each checkpoint before the last one (every save_every of its config),
# exported as the base of tag <method>_at<step>, for the plot of WER against CPU seconds.
. ./path.sh
for m in ${methods}; do
  [ "${stop_stage}" -ge 5 ] || break
  ./tts_rl.sh --method "${m}" --method_config "${m}_compare" --reward_models "${reward_of[${m}]}" \
    --tag "${m}" --pretrained tts_base=exp/tts_base/model --stage $(( stage > 4 ? stage : 4 )) \
    --stop_stage "${stop_stage}" "${common[@]}"
  [ "${stop_stage}" -ge 7 ] && [ "${stage}" -le 7 ] || continue
  checkpoints=(exp/tts_${m}_${m}/checkpoints/checkpoint_*.pt)
  for ckpt in "${checkpoints[@]:0:${#checkpoints[@]}-1}"; do
    step=$(( 10#$(basename "${ckpt}" .pt | cut -d_ -f2) ))
    [ "exp/tts_base_${m}_at${step}/model/config.json" -nt "${ckpt}" ] ||
      python -m local_lib.bin.export_checkpoint --base-dir exp/tts_base/model --checkpoint "${ckpt}" \
        --out-dir "exp/tts_base_${m}_at${step}/model"
    ./tts_rl.sh --method "${m}" --reward_models "" --tag "${m}_at${step}" \
      --stage 6 --stop_stage 7 "${common[@]}"
  done
done
if [ "${stop_stage}" -ge 8 ]; then
  runs=()
  for m in ${methods}; do
    runs+=(--method "${m}=exp/tts_${m}_${m},exp/tts_base_${m}")
    for dir in exp/tts_base_${m}_at*; do
      [ ! -d "${dir}" ] || runs+=(--checkpoint "${m}=${dir#exp/tts_base_${m}_at},${dir}")
    done
  done
  python -m local_lib.bin.compare_methods --out-dir exp/report_compare --set "${test_set}" \
    --seed "${seed}" "${runs[@]}"
fi
