# Stages of the codec_lm model family, sourced by tts_rl.sh (which has parsed the options and
# defined log, run_stage, score_system and logged_curve_keys). It sets family_stages, the
# stages it builds beyond the common ones, base_model, stage3_model_args, prompted_by_speaker and
# given_base_model, and defines family_needs and family_stage<N> for its part of stage N.
# <tag> is tts_rl.sh's ${tag_suffix}.
#
#   2  speech tokenizer on the training features, speech tokens of every set (JOB array)
#        -> dump/speech_tokenizer/tokenizer.pt, dump/<set>/speech_tokens
#   3  (the reward models that are not evaluators also get the tokenizer and the speech tokens)
#   4  base codec LM (supervised, zero-shot prompted)      -> exp/tts_base<tag>/model/
#   5  the method, for each of ${method_systems} side by side: local_lib.bin.train_<method> (the
#      one command every codec-LM method takes, see family_stage5) -> exp/tts_<system><tag>/model/
#   6  synthesis of each natural test set by base and every trained system, and resynthesis of
#      the natural audio through the tokenizer (JOB arrays)
#        -> exp/tts_<system><tag>/synth/<set>/, exp/tokenizer_resynth/<set>/
#   7  scoring: tokenizer resynthesis paired with natural, each method system paired with base;
#      the TTS systems again with the reward ASR (-> exp/tts_<system><tag>/synth/<set>/reward_asr/)
#   8  report -> exp/report<tag>/REPORT.md (with the emotion-contour figure of natural, base and
#      the method when the set has utt2emo), and exp/report_reward_asr<tag>/REPORT.md (the reward
#      ASR's view)
family_stages="2 4 5 6 7 8"

speech_tokenizer=dump/speech_tokenizer/tokenizer.pt
base_model=model
# Every utterance is synthesised (and trained) with another of its speaker's as the prompt.
prompted_by_speaker=true
# Stage 3's reward models may train on speech tokens (DiffRO's Token2Text).
stage3_model_args=(--tokenizer "${speech_tokenizer}" --train-tokens "dump/${train_set}/speech_tokens"
  --valid-tokens "dump/${dev_set}/speech_tokens")

# given_base_model DIR: DIR of --pretrained tts_base=DIR as an absolute path, when it is a
# CodecLM model directory (another tag's exp/tts_base/model); an error otherwise.
given_base_model() {
  [ -f "$1/config.json" ] || {
    echo "$0: --pretrained tts_base=$1: not a codec LM model directory (no $1/config.json; e.g. exp/tts_base/model)" >&2
    return 1
  }
  readlink -f "$1"
}

# family_needs: the inputs of this family's stages that earlier stages write (run_state.sh).
family_needs() {
  local name dset
  # A given base (--pretrained tts_base=DIR) is linked, not trained.
  [ -n "${given_base}" ] || needs 4 2 "${speech_tokenizer}" "dump/${train_set}/speech_tokens" "dump/${dev_set}/speech_tokens"
  needs 5 2 "${speech_tokenizer}" "dump/${train_set}/speech_tokens"
  for name in ${reward_models}; do
    [ -z "${given[${name}]:-}" ] || continue
    case "${name}" in eval_* | *_ctc) ;; *) needs 3 2 "dump/${train_set}/speech_tokens" ;; esac
  done
  for dset in ${test_sets}; do needs 6 2 "${speech_tokenizer}" "dump/${dset}/speech_tokens"; done
  needs 6 4 "exp/tts_base${tag_suffix}/model"
}

# merge_shards <shard name with JOB> <file>: join the shards 1..${nj} of a JOB array into
# <file>, C-sorted (with one job the tools write <file> themselves).
merge_shards() {
  local pattern=$1 file=$2 j
  [ "${nj}" -gt 1 ] || return 0
  for j in $(seq "${nj}"); do cat "${pattern//JOB/${j}}"; done | sort > "${file}"
  for j in $(seq "${nj}"); do rm "${pattern//JOB/${j}}"; done
}

family_stage2() {
  # The features' own markers stand for their content (feats.scp alone names ark offsets).
  local marker=dump/speech_tokenizer/.done
  local args=(--config "conf/speech_tokenizer${config_suffix}.yaml" --feats-config "${feats_config}"
    --feats-scp "dump/${train_set}/feats.scp" --out "${speech_tokenizer}" --seed "${seed}")
  if ! stage_is_done 2 "${marker}" --output "${speech_tokenizer}" -- "${args[@]}" "dump/${train_set}/.done"; then
    log "stage 2: speech tokenizer (conf/speech_tokenizer${config_suffix}.yaml)"
    stage_begin "${marker}" -- "${args[@]}" "dump/${train_set}/.done"
    ${train_cmd} dump/speech_tokenizer/log/train.log python -m local_lib.bin.train_speech_tokenizer "${args[@]}"
    stage_finish "${marker}"
  fi
  local dset
  for dset in ${all_sets}; do
    marker="dump/${dset}/.speech_tokens.done"
    # Tokens are redone when the tokenizer or the set's features change.
    args=("${speech_tokenizer}" "dump/${dset}/.done")
    stage_is_done 2 "${marker}" --output "dump/${dset}/speech_tokens" -- "${args[@]}" && continue
    stage_begin "${marker}" -- "${args[@]}"
    ${train_cmd} JOB=1:"${nj}" "dump/${dset}/log/speech_tokens.JOB.log" \
      python -m local_lib.bin.dump_speech_tokens --tokenizer "${speech_tokenizer}" \
      --feats-scp "dump/${dset}/feats.scp" --out "dump/${dset}/speech_tokens" --nj "${nj}" --job JOB
    merge_shards "dump/${dset}/speech_tokens.JOB" "dump/${dset}/speech_tokens"
    stage_finish "${marker}"
  done
}

# train_system <out dir> <seed> <module> <args...>: one (DDP) training job, skipped when done
# with the same inputs, and refused when its checkpoints were made from other inputs. Each
# process computes single-threaded (intra-op threads on a shared CPU cost far more than they
# gain); --nproc N puts N cores to work through DDP instead.
train_system() {
  local out=$1 train_seed=$2 module=$3
  shift 3
  local args=("${module}" --seed "${train_seed}" "$@")
  stage_is_done "${current_stage}" "${out}/.done" --output "${out}/model" -- "${args[@]}" && return 0
  stage_begin "${out}/.done" --resume-dir "${out}/checkpoints" -- "${args[@]}"
  log "stage ${current_stage}: ${module} -> ${out} (${nproc} process(es); log ${out}/log/train.log)"
  ${cuda_cmd} --gpu "${ngpu}" "${out}/log/train.log" utils/launch.sh --nproc "${nproc}" -- \
    "local_lib.bin.${module}" --seed "${train_seed}" --num-threads 1 --out-dir "${out}" "$@"
  stage_finish "${out}/.done"
}

family_stage4() {
  current_stage=4
  train_system "exp/tts_base${tag_suffix}" "${seed}" train_codec_lm --config "conf/codec_lm${config_suffix}.yaml" \
    --tokenizer "${speech_tokenizer}" \
    --train-dir "data/${train_set}" --train-tokens "dump/${train_set}/speech_tokens" \
    --valid-dir "data/${dev_set}" --valid-tokens "dump/${dev_set}/speech_tokens" \
    --token-list "${token_list}"
}

# Every codec-LM method trains through local_lib.bin.train_<method>, its variants too (a variant
# only changes the config), with one command (local_lib/train/method_entry.py parses it): the
# base, the tokenizer, the training prompts and their speech tokens, and each of --reward_models
# in order as --reward-model NAME=exp/NAME/model.pt.
# The systems train side by side, one job each (as stage 3's models do), and the stage fails
# naming the logs of those that failed.
family_stage5() {
  current_stage=5
  local sys name conf_name i failed="" reward_opts=() pids=() outs=()
  for name in ${reward_models}; do reward_opts+=(--reward-model "${name}=exp/${name}/model.pt"); done
  for sys in ${method_systems}; do
    # the method itself may train with another config (--method_config); its variants never do
    conf_name=$(system_source "${sys}")
    [ "${conf_name}" != "${method}" ] || conf_name=${method_config:-${method}}
    train_system "exp/tts_${sys}${tag_suffix}" "$(system_seed "${sys}")" "train_${method}" --config "conf/${conf_name}${config_suffix}.yaml" \
      --base-dir "exp/tts_base${tag_suffix}/model" --tokenizer "${speech_tokenizer}" \
      --train-dir "data/${train_set}" --tokens "dump/${train_set}/speech_tokens" "${reward_opts[@]}" &
    pids+=($!) outs+=("exp/tts_${sys}${tag_suffix}")
  done
  for i in "${!pids[@]}"; do wait "${pids[$i]}" || failed+=" ${outs[$i]}/log/train.log"; done
  [ -z "${failed}" ] || { echo "$0: stage 5 failed, see${failed}" >&2; exit 1; }
}

# synth_set <out dir> <synth_codec_lm args...>: one test set ${dset} as a JOB array.
synth_set() {
  local out=$1
  shift
  local inputs=("$@" "${speech_tokenizer}" "data/${dset}" "dump/${dset}/.speech_tokens.done" "${feats_config}")
  stage_is_done 6 "${out}/.done" --output "${out}/wav.scp" -- "${inputs[@]}" && return 0
  stage_begin "${out}/.done" -- "${inputs[@]}"
  log "stage 6: ${out}"
  ${train_cmd} JOB=1:"${nj}" "${out}/log/synth.JOB.log" python -m local_lib.bin.synth_codec_lm "$@" \
    --tokenizer "${speech_tokenizer}" --data-dir "data/${dset}" --tokens "dump/${dset}/speech_tokens" \
    --feats-config "${feats_config}" --out-dir "${out}" --seed "${seed}" --nj "${nj}" --job JOB
  merge_shards "${out}/wav.JOB.scp" "${out}/wav.scp"
  stage_finish "${out}/.done"
}

# The trained TTS systems: base, then each method system whose model exists.
tts_systems() {
  local sys
  for sys in base ${method_systems}; do
    if [ -d "exp/tts_${sys}${tag_suffix}/model" ]; then echo "${sys}"; else log "no exp/tts_${sys}${tag_suffix}/model: ${sys} is left out" >&2; fi
  done
}

# The reward ASR of stage 7's second view: the first of --reward_models.
reward_asr() {
  local names=(${reward_models})
  echo "exp/${names[0]}/model.pt"
}

# is_natural DSET: the set has natural audio of its own text (a seed-tts-eval list has only
# prompts, and is synthesised from each utterance's own prompt).
is_natural() { [[ " ${natural_sets} " == *" $1 "* ]]; }

family_stage6() {
  local sys
  for dset in ${test_sets}; do
    if is_natural "${dset}"; then synth_set "exp/tokenizer_resynth/${dset}" --tokens-only; fi
    for sys in $(tts_systems); do
      synth_set "exp/tts_${sys}${tag_suffix}/synth/${dset}" --model-dir "exp/tts_${sys}${tag_suffix}/model" \
        --config "conf/codec_lm${config_suffix}.yaml" --num-samples "${synth_samples}"
    done
  done
}

# score_tts_systems <sub> <title suffix>: every TTS system's audio of test set ${dset}, scored
# with ${score_opts[@]} into <synth dir>[/<sub>], each method system paired with base.
score_tts_systems() {
  local sub=${1:+/$1} what=$2 sys synth
  for sys in $(tts_systems); do
    synth="exp/tts_${sys}${tag_suffix}/synth/${dset}"
    if [ "${sys}" = base ]; then
      score_system --wav-scp "${synth}/wav.scp" "${synth}${sub}" "base codec LM${what}"
    else
      score_system --wav-scp "${synth}/wav.scp" "${synth}${sub}" "${sys}${what}" \
        "exp/tts_base${tag_suffix}/synth/${dset}${sub}" base
    fi
  done
}

family_stage7() {
  for dset in ${test_sets}; do
    if is_natural "${dset}"; then
      score_system --wav-scp "exp/tokenizer_resynth/${dset}/wav.scp" "exp/tokenizer_resynth/${dset}" \
        "resynthesis through the speech tokenizer (tokens -> mel decoder -> Griffin-Lim)" \
        "exp/natural/${dset}" natural
    elif [ -f "data/${dset}/utt2target_wav" ]; then
      # a seed-tts-eval list's own recordings of the target texts: the ceiling of its table
      score_system --wav-scp "data/${dset}/utt2target_wav" "exp/ground_truth/${dset}" \
        "ground-truth recordings of the target texts"
    fi
    score_tts_systems "" ""
  done
  [ -n "${reward_models}" ] && [ "${method_reward_asr_view}" = true ] || return 0
  # The reward ASR's view of the same audio (<synth>/reward_asr): a gain the reward ASR sees
  # and the evaluators do not is reward hacking.
  local evaluator_opts=("${score_opts[@]}")
  score_opts=(--asr "$(reward_asr)" --no-prosody)
  # once W3AR's stage 5 chose the reward ASR's aligning heads: their purity and monotonicity too
  [ ! -f "$(reward_asr).heads.json" ] || score_opts+=(--attention)
  for dset in ${test_sets}; do score_tts_systems reward_asr " (reward ASR)"; done
  score_opts=("${evaluator_opts[@]}")
}

family_stage8() {
  local dset sys opts report reward_report figure scps figures contoured
  local curves=() curve_opts=() keys metrics seed_means
  seed_means=$(seed_mean_opts $(tts_systems))
  for sys in ${method_systems}; do
    metrics="exp/tts_${sys}${tag_suffix}/metrics.jsonl"
    if [ -f "${metrics}" ]; then curves+=("${metrics}"); curve_opts+=(--curves "${sys}=${metrics}"); fi
  done
  keys=$(logged_curve_keys "${curves[@]}")
  [ -z "${keys}" ] || curve_opts+=(--curve-keys "${keys}")
  for dset in ${test_sets}; do
    report=$(report_dir report "${dset}")
    if is_natural "${dset}"; then
      opts=(--system "natural=exp/natural/${dset}" "resynth=exp/resynth/${dset}"
        "tokenizer_resynth=exp/tokenizer_resynth/${dset}")
    else
      opts=(--metric-set seedtts --system)
      [ ! -f "data/${dset}/utt2target_wav" ] || opts+=("ground_truth=exp/ground_truth/${dset}")
    fi
    # the contour figure shows base and the method only: a column per variant would leave each
    # too narrow to read once the recipe README shrinks the figure
    contoured=()
    for sys in $(tts_systems); do
      opts+=("${sys}=exp/tts_${sys}${tag_suffix}/synth/${dset}")
      [[ " base ${method} " != *" ${sys} "* ]] || contoured+=("${sys}")
    done
    figures=()
    emotion_contours "${dset}" "${report}" "${contoured[@]}"
    ${train_cmd} "${report}/log/report.log" python -m local_lib.bin.report --out-dir "${report}" \
      --title "${method}${tag:+ (${tag})}: ${dset}" "${opts[@]}" "${curve_opts[@]}" --baseline base \
      --scatter wer --seed "${seed}" ${figures[@]:+--figure "${figures[@]}"} ${seed_means}
    log "stage 8: ${report}/REPORT.md"
    [ -n "${reward_models}" ] && [ "${method_reward_asr_view}" = true ] || continue
    reward_report=$(report_dir report_reward_asr "${dset}")
    opts=()
    for sys in $(tts_systems); do opts+=("${sys}=exp/tts_${sys}${tag_suffix}/synth/${dset}/reward_asr"); done
    figure=()
    if [ -f "$(reward_asr).heads.json" ] && is_natural "${dset}"; then
      # what the attention reward sees: one utterance's chosen heads, natural audio and each system
      scps=("natural=data/${dset}/wav.scp")
      for sys in $(tts_systems); do scps+=("${sys}=exp/tts_${sys}${tag_suffix}/synth/${dset}/wav.scp"); done
      ${train_cmd} "${reward_report}/log/plot_attention.log" python -m local_lib.bin.plot_attention \
        --model "$(reward_asr)" --data-dir "data/${dset}" --system "${scps[@]}" \
        --out "${reward_report}/attention.png"
      figure=(--figure "${reward_report}/attention.png")
    fi
    ${train_cmd} "${reward_report}/log/report.log" python -m local_lib.bin.report \
      --out-dir "${reward_report}" --title "${method}${tag:+ (${tag})}: ${dset}, scored by the reward ASR" \
      --system "${opts[@]}" --baseline base --scatter wer --seed "${seed}" "${figure[@]}" ${seed_means}
    log "stage 8: ${reward_report}/REPORT.md"
  done
}
