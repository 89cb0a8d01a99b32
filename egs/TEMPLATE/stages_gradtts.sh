# Stages of the gradtts model family, sourced by tts_rl.sh (which has parsed the options and
# defined log, run_stage, score_system and logged_curve_keys). It sets family_stages, the stages
# it builds beyond the common ones, base_model, stage3_model_args, prompted_by_speaker and
# given_base_model, and defines family_needs and family_stage<N> for its part of stage N. <tag> is tts_rl.sh's ${tag_suffix}.
#
#   4  base Grad-TTS (local_lib.bin.train_gradtts)            -> exp/tts_base<tag>/model.pt
#   5  the method for each of ${method_systems}, side by side -> exp/tts_<system><tag>/model.pt
#      after the EASPM of each variant that has its own [ours]  -> exp/easpm_<variant><tag>/model.pt
#   6  synthesis of every test set by base and each system   -> exp/tts_<system><tag>/synth/<set>
#   7  scoring: base, then each system paired against base    -> .../synth/<set>/RESULTS.md
#   8  emotion contour plot + report of each test set        -> exp/report<tag>[_<set>]/REPORT.md
family_stages="4 5 6 7 8"
base_model=model.pt
stage3_model_args=()
# Grad-TTS synthesises from text and a speaker id: no utterance needs another as its prompt.
prompted_by_speaker=false

# family_needs: the inputs of this family's stages that earlier stages write (run_state.sh).
family_needs() {
  local system
  check_variant_reward_models
  # A given base (--pretrained tts_base=DIR) is linked, not trained.
  [ -n "${given_base}" ] || needs 4 2 "dump/${train_set}/feats.scp" "dump/${dev_set}/feats.scp"
  needs 5 2 "dump/${train_set}/feats.scp"
  needs 5 3 exp/easpm/model.pt
  [ -z "$(variant_scorers)" ] || needs 5 2 "dump/${dev_set}/feats.scp"
  needs 6 4 "exp/tts_base${tag_suffix}/model.pt"
  for system in ${method_systems}; do needs 6 5 "exp/tts_${system}${tag_suffix}/model.pt"; done
}

# given_base_model DIR: DIR/model.pt of --pretrained tts_base=DIR (another tag's exp/tts_base)
# as an absolute path; an error when there is none.
given_base_model() {
  [ -f "$1/model.pt" ] || {
    echo "$0: --pretrained tts_base=$1: no Grad-TTS base model $1/model.pt (e.g. exp/tts_base)" >&2
    return 1
  }
  readlink -f "$1/model.pt"
}

# [ours] A method variant V whose recipe has conf/easpm_V${S}.yaml is judged by an EASPM of its
# own, which needs the base: stage 5 first trains it (local_lib.bin.train_easpm --base-model, e.g.
# base negatives) into exp/easpm_V<tag>/ (the tag, as it is made from that tag's base), and the
# variant's EASPO reads it there. [ours] A variant V named like one of stage 3's reward models
# (--reward_models, e.g. the emotion classifier emotion_clf) is judged by exp/V; every other
# system reads stage 3's exp/easpm.
# variant_scorers: the names easpm_V of those EASPMs, one a line.
variant_scorers() {
  local system variant
  for system in ${source_systems}; do
    variant=${system#"${method}"_}
    if [ "${system}" != "${method}" ] && [ -f "conf/easpm_${variant}${config_suffix}.yaml" ]; then
      echo "easpm_${variant}"
    fi
  done
}

# system_scorer SYSTEM: the EASPM model that method system SYSTEM is judged by.
system_scorer() {
  local variant=${1#"${method}"_}
  if [ "$1" != "${method}" ] && [ -f "conf/easpm_${variant}${config_suffix}.yaml" ]; then
    echo "exp/easpm_${variant}${tag_suffix}/model.pt"
  elif [ "$1" != "${method}" ] && [[ " ${reward_models} " == *" ${variant} "* ]]; then
    echo "exp/${variant}/model.pt"
  else
    echo exp/easpm/model.pt
  fi
}

# check_variant_reward_models: a variant named like a stage-3 reward model (it has a
# conf/V${S}.yaml) is judged by that model, so when stage 5 runs --reward_models must name it;
# without this check such a variant would be judged by exp/easpm without a word.
check_variant_reward_models() {
  local system variant
  run_stage 5 || return 0
  for system in ${source_systems}; do
    variant=${system#"${method}"_}
    [ "${system}" != "${method}" ] && [ -f "conf/${variant}${config_suffix}.yaml" ] || continue
    [[ " ${reward_models} " == *" ${variant} "* ]] && continue
    echo "$0: method variant ${variant} is judged by the stage-3 reward model ${variant}" \
      "(conf/${variant}${config_suffix}.yaml), which --reward_models (${reward_models}) does" \
      "not name; add it there (trained in stage 3, or given with --pretrained ${variant}=FILE)" >&2
    exit 1
  done
}

# gradtts_out_dir NAME: where stages 4-5 train NAME (base, a method system or a variant's EASPM).
gradtts_out_dir() {
  case "$1" in
    easpm_*) echo "exp/$1${tag_suffix}" ;;
    *) echo "exp/tts_$1${tag_suffix}" ;;
  esac
}

# The base model's config, read when a stage runs: tts_rl.sh resolves --config_suffix auto only
# after sourcing this file.
gradtts_config() { echo "conf/gradtts${config_suffix}.yaml"; }

# Trains each named system with <tool> as parallel jobs and fails naming the logs when any
# failed; a system done from the same inputs is skipped, one whose checkpoints were made from
# other inputs is refused (run_state.sh).
gradtts_train_systems() {
  local stage=$1 tool=$2; shift 2
  local pids=() systems=() system out args
  for system in "$@"; do
    out=$(gradtts_out_dir "${system}")
    args=("${tool}" $(gradtts_train_args "${system}") --seed "$(system_seed "${system}")"
      --train-dir "data/${train_set}")
    stage_is_done "${stage}" "${out}/.done" --output "${out}/model.pt" -- "${args[@]}" && continue
    stage_begin "${out}/.done" --resume-dir "${out}/checkpoints" -- "${args[@]}"
    ${cuda_cmd} --gpu "${ngpu}" "${out}/log/train.log" utils/launch.sh --nproc "${nproc}" -- \
      "local_lib.bin.${args[0]}" "${args[@]:1}" --out-dir "${out}" &
    pids+=($!); systems+=("${system}")
  done
  local i failed=""
  for i in "${!pids[@]}"; do
    out=$(gradtts_out_dir "${systems[$i]}")
    if wait "${pids[$i]}"; then stage_finish "${out}/.done"; else failed+=" ${out}/log/train.log"; fi
  done
  [ -z "${failed}" ] || { echo "$0: stage ${stage} failed, see${failed}" >&2; exit 1; }
}

# The tool-specific options of one system: the base trains from data, a method from the base
# and its EASPM, a variant's EASPM from data and the base.
gradtts_train_args() {
  case "$1" in
    base)
      echo "--config $(gradtts_config) --valid-dir data/${dev_set} --feats-dir dump/${train_set}" \
        "--valid-feats-dir dump/${dev_set}" ;;
    easpm_*)
      echo "--config conf/$1${config_suffix}.yaml --base-model exp/tts_base${tag_suffix}/model.pt" \
        "--valid-dir data/${dev_set}" ;;
    *)  # a method system; S_seed<s> trains with S's config and EASPM (tts_rl.sh --train_seeds)
      echo "--config conf/$(system_source "$1")${config_suffix}.yaml" \
        "--base-model exp/tts_base${tag_suffix}/model.pt" \
        "--easpm $(system_scorer "$(system_source "$1")") --feats-dir dump/${train_set}" ;;
  esac
}

family_stage4() { gradtts_train_systems 4 train_gradtts base; }

family_stage5() {
  local scorers
  scorers=$(variant_scorers)
  # shellcheck disable=SC2086
  [ -z "${scorers}" ] || gradtts_train_systems 5 train_easpm ${scorers}
  # shellcheck disable=SC2086
  gradtts_train_systems 5 "train_${method}" ${method_systems}
}

family_stage6() {
  local system model out j inputs
  for system in base ${method_systems}; do
    model="exp/tts_${system}${tag_suffix}/model.pt"
    for dset in ${test_sets}; do
      out="exp/tts_${system}${tag_suffix}/synth/${dset}"
      inputs=("$(gradtts_config)" "${model}" "data/${dset}" "${feats_config}")
      stage_is_done 6 "${out}/.done" --output "${out}/wav.scp" -- "${inputs[@]}" && continue
      stage_begin "${out}/.done" -- "${inputs[@]}"
      log "stage 6: ${system} synthesises ${dset} (nj=${nj})"
      ${train_cmd} JOB=1:"${nj}" "${out}/log/synth.JOB.log" python -m local_lib.bin.synth_gradtts \
        --config "$(gradtts_config)" --model "${model}" --data-dir "data/${dset}" \
        --out-dir "${out}" --feats-config "${feats_config}" --seed "${seed}" --nj "${nj}" --job JOB
      if [ "${nj}" -gt 1 ]; then
        for j in $(seq "${nj}"); do cat "${out}/wav.${j}.scp"; done | sort > "${out}/wav.scp"
      fi
      stage_finish "${out}/.done"
    done
  done
}

family_stage7() {
  local system pids failed base
  for dset in ${test_sets}; do
    base="exp/tts_base${tag_suffix}/synth/${dset}"
    score_system --wav-scp "${base}/wav.scp" "${base}" "Grad-TTS base"
    # Every method system against the same base, paired by utterance; scored side by side.
    pids=()
    for system in ${method_systems}; do
      score_system --wav-scp "exp/tts_${system}${tag_suffix}/synth/${dset}/wav.scp" \
        "exp/tts_${system}${tag_suffix}/synth/${dset}" "${system}" "${base}" base &
      pids+=($!)
    done
    failed=0
    for pid in "${pids[@]}"; do wait "${pid}" || failed=1; done
    [ "${failed}" -eq 0 ] || { echo "$0: stage 7 failed, see exp/tts_*${tag_suffix}/synth/${dset}/log/score.log" >&2; exit 1; }
  done
}

# Every test set gets its own report (report_dir in tts_rl.sh).
family_stage8() {
  local dset
  for dset in ${test_sets}; do gradtts_report "${dset}"; done
}

# gradtts_report SET: the emotion contour plot (emotion_contours in tts_rl.sh) and the report of
# test set SET.
gradtts_report() {
  local system dset=$1 systems=() curves=() metrics=() pairs=() figures=() keys
  local report base="exp/tts_base${tag_suffix}/synth/$1"
  report=$(report_dir report "${dset}")
  if [[ " ${natural_sets} " == *" ${dset} "* ]]; then
    systems+=("natural=exp/natural/${dset}" "resynth=exp/resynth/${dset}")
  fi
  systems+=("base=${base}")
  for system in ${method_systems}; do
    systems+=("${system}=exp/tts_${system}${tag_suffix}/synth/${dset}")
    metrics+=("exp/tts_${system}${tag_suffix}/metrics.jsonl")
    curves+=("${system}=${metrics[-1]}")
    # each variant against the method itself, seed by seed: S_seed<s> against method_seed<s>
    [ "$(system_source "${system}")" = "${method}" ] ||
      pairs+=("${system}:$(seeded_name "${method}" "$(system_seed "${system}")")")
  done
  keys=$(logged_curve_keys "${metrics[@]}")
  emotion_contours "${dset}" "${report}" base "${method}"
  [ ! -f exp/easpm/preference_accuracy_vs_t.png ] || figures+=(exp/easpm/preference_accuracy_vs_t.png)
  ${train_cmd} "${report}/log/report.log" python -m local_lib.bin.report --out-dir "${report}" \
    --title "${method} on ${dset}: Grad-TTS base vs ${method_systems}" \
    --system "${systems[@]}" --baseline base ${pairs[@]:+--pair "${pairs[@]}"} \
    --curves "${curves[@]}" ${keys:+--curve-keys "${keys}"} --scatter emo_sim emo_correct f0_rmse_hz \
    ${figures[@]:+--figure "${figures[@]}"} $(seed_mean_opts ${method_systems})
  log "stage 8: ${report}/REPORT.md"
}
