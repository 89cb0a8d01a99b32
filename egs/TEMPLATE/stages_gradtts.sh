# Stages of the gradtts model family, sourced by tts_rl.sh (which has parsed the options and
# defined log, run_stage and score_system). It sets family_stages, the stages it builds beyond
# the common ones, and defines family_stage<N> for its part of stage N.
#
#   4  base Grad-TTS (local_lib.bin.train_gradtts)            -> exp/tts_base/model.pt
#   5  the method for each of ${method_systems}, side by side -> exp/tts_<system>/model.pt
#   6  synthesis of every test set by base and each system   -> exp/tts_<system>/synth/<set>
#   7  scoring: base, then each system paired against base    -> .../synth/<set>/RESULTS.md
#   8  emotion contour plot + report                          -> exp/report/REPORT.md
family_stages="4 5 6 7 8"

# The base model's config, read when a stage runs: tts_rl.sh resolves --config_suffix auto only
# after sourcing this file.
gradtts_config() { echo "conf/gradtts${config_suffix}.yaml"; }

# Runs "$@" (a training command after the log path) for each named system as parallel jobs and
# fails naming the logs when any failed; systems with exp/tts_<system>/.done are skipped.
gradtts_train_systems() {
  local stage=$1 tool=$2; shift 2
  local pids=() systems=() system out
  for system in "$@"; do
    out="exp/tts_${system}"
    if [ -f "${out}/.done" ]; then log "stage ${stage}: ${out}/.done exists, skipping"; continue; fi
    ${cuda_cmd} --gpu "${ngpu}" "${out}/log/train.log" utils/launch.sh --nproc "${nproc}" -- \
      "local_lib.bin.${tool}" $(gradtts_train_args "${system}") --seed "${seed}" \
      --train-dir "data/${train_set}" --out-dir "${out}" &
    pids+=($!); systems+=("${system}")
  done
  local i failed=""
  for i in "${!pids[@]}"; do
    if wait "${pids[$i]}"; then touch "exp/tts_${systems[$i]}/.done"; else failed+=" exp/tts_${systems[$i]}/log/train.log"; fi
  done
  [ -z "${failed}" ] || { echo "$0: stage ${stage} failed, see${failed}" >&2; exit 1; }
}

# The tool-specific options of one system: the base trains from data, a method from the base.
gradtts_train_args() {
  if [ "$1" = base ]; then
    echo "--config $(gradtts_config) --valid-dir data/${dev_set} --feats-dir dump/${train_set}" \
      "--valid-feats-dir dump/${dev_set}"
  else
    echo "--config conf/$1${config_suffix}.yaml --base-model exp/tts_base/model.pt" \
      "--easpm exp/easpm/model.pt --feats-dir dump/${train_set}"
  fi
}

family_stage4() { gradtts_train_systems 4 train_gradtts base; }

family_stage5() {
  [ -f exp/tts_base/model.pt ] || { echo "$0: stage 5 needs exp/tts_base/model.pt (stage 4)" >&2; exit 1; }
  [ -f exp/easpm/model.pt ] || { echo "$0: stage 5 needs exp/easpm/model.pt (stage 3 with --reward_models easpm)" >&2; exit 1; }
  # shellcheck disable=SC2086
  gradtts_train_systems 5 "train_${method}" ${method_systems}
}

family_stage6() {
  local system model out j
  for system in base ${method_systems}; do
    model="exp/tts_${system}/model.pt"
    if [ ! -f "${model}" ]; then
      echo "$0: stage 6 needs ${model} (stage $([ "${system}" = base ] && echo 4 || echo 5))" >&2
      exit 1
    fi
    for dset in ${test_sets}; do
      out="exp/tts_${system}/synth/${dset}"
      if [ -f "${out}/.done" ]; then log "stage 6: ${out}/.done exists, skipping"; continue; fi
      log "stage 6: ${system} synthesises ${dset} (nj=${nj})"
      ${train_cmd} JOB=1:"${nj}" "${out}/log/synth.JOB.log" python -m local_lib.bin.synth_gradtts \
        --config "$(gradtts_config)" --model "${model}" --data-dir "data/${dset}" \
        --out-dir "${out}" --feats-config "${feats_config}" --seed "${seed}" --nj "${nj}" --job JOB
      if [ "${nj}" -gt 1 ]; then
        for j in $(seq "${nj}"); do cat "${out}/wav.${j}.scp"; done | sort > "${out}/wav.scp"
      fi
      touch "${out}/.done"
    done
  done
}

family_stage7() {
  local system pids failed
  for dset in ${test_sets}; do
    score_system --wav-scp "exp/tts_base/synth/${dset}/wav.scp" "exp/tts_base/synth/${dset}" \
      "Grad-TTS base"
    # Every method system against the same base, paired by utterance; scored side by side.
    pids=()
    for system in ${method_systems}; do
      score_system --wav-scp "exp/tts_${system}/synth/${dset}/wav.scp" \
        "exp/tts_${system}/synth/${dset}" "${system}" "exp/tts_base/synth/${dset}" base &
      pids+=($!)
    done
    failed=0
    for pid in "${pids[@]}"; do wait "${pid}" || failed=1; done
    [ "${failed}" -eq 0 ] || { echo "$0: stage 7 failed, see exp/tts_*/synth/${dset}/log/score.log" >&2; exit 1; }
  done
}

family_stage8() {
  local system dset=${test_sets%% *} systems=() curves=() pairs=() figures=()
  local contours="exp/report/emotion_contours_${dset}.png"
  local natural_opt=()
  if [[ " ${natural_sets} " == *" ${dset} "* ]]; then
    natural_opt=(--system "natural=data/${dset}/wav.scp")
    systems+=("natural=exp/natural/${dset}" "resynth=exp/resynth/${dset}")
  fi
  systems+=("base=exp/tts_base/synth/${dset}")
  for system in ${method_systems}; do
    systems+=("${system}=exp/tts_${system}/synth/${dset}")
    curves+=("${system}=exp/tts_${system}/metrics.jsonl")
    [ "${system}" = "${method}" ] || pairs+=("${system}:${method}")
  done
  ${train_cmd} exp/report/log/plot_emotion_contours.log python -m local_lib.bin.plot_emotion_contours \
    --data-dir "data/${dset}" --feats-config "${feats_config}" "${natural_opt[@]}" \
    --system "base=exp/tts_base/synth/${dset}/wav.scp" \
    --system "${method}=exp/tts_${method}/synth/${dset}/wav.scp" --out "${contours}"
  figures=("${contours}")
  [ ! -f exp/easpm/preference_accuracy_vs_t.png ] || figures+=(exp/easpm/preference_accuracy_vs_t.png)
  ${train_cmd} exp/report/log/report.log python -m local_lib.bin.report --out-dir exp/report \
    --title "${method} on ${dset}: Grad-TTS base vs ${method_systems}" \
    --system "${systems[@]}" --baseline base ${pairs[@]:+--pair "${pairs[@]}"} \
    --curves "${curves[@]}" --curve-keys "score_gap loss acc" --scatter emo_sim emo_correct f0_rmse_hz \
    --figure "${figures[@]}"
  log "stage 8: exp/report/REPORT.md"
}
