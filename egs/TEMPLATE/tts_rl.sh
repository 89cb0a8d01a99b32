#!/usr/bin/env bash
# The pipeline every recipe shares. A recipe's run.sh calls it with its method and configs;
# the corpus-specific part is the recipe's local/data.sh, db.sh and conf/.
#
# Stages (the same numbers in every recipe; README.md says which are built):
#   1 corpus preparation (local/data.sh)      -> data/{train,dev,test}
#   2 features, parallel over --nj, and the   -> dump/<set>/feats.scp,
#     text units                              -> dump/token_list
#   3 reward models and evaluators            -> exp/reward_*, exp/eval_*
#   4 base TTS                                -> exp/tts_base<tag>
#   5 the method                              -> exp/tts_<method><tag>
#   6 synthesis of the test sets              -> exp/*/synth
#   7 scoring                                 -> exp/*/RESULTS.md
#   8 report                                  -> exp/report<tag>
# <tag> is _<name> with --tag <name>, else empty.
#
# A method is local_lib/rl/<method>.py with a METHOD spec (local_lib/rl/method_spec.py): its
# model family picks the stages file, and stage 5 runs local_lib.bin.train_<method>.
# Each stage's inputs are checked before any stage runs, done markers record what each output
# was made from, and one run at a time owns a recipe dir and its jobs (run_state.sh).
set -euo pipefail

log() { echo "$(date '+%Y-%m-%dT%H:%M:%S') ($(basename "$0")) $*"; }

template_dir=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")
. "${template_dir}/run_state.sh"
# One run per recipe dir, owning its jobs (run_state.sh); the pipeline runs in the child.
[ -n "${TTS_RL_SUPERVISED:-}" ] || supervise_run "$@"

# Stages 1-3 and the vocoder-only part of 6-7 are the same for every method; the model family's
# file (stages_<family>.sh beside this script) adds its own stages and says which it builds.
# Stages in the asked range that are not built are reported and skipped; a range holding none
# of the built stages is an error.
common_stages="1 2 3 6 7"

stage=1
stop_stage=8
nj=2
ngpu=0
nproc=0
seed=0
tag=""
method=""
family=""
feats_config=conf/feats.yaml
train_set=train
reward_asr_train_set=""
dev_set=dev
test_sets="test"
synth_samples=1
config_suffix=auto
method_variants=""
train_seeds=1
method_config=""
reward_models=""
evaluators="eval_asr eval_speaker"
pretrained=""
token_type=""
nbpe=""
bpemode=""
local_data_opts=""
progress_every=30

help_message="Usage: $0 --method <name> [options]
  --stage N / --stop_stage N   run stages N..M (1..8; README.md says which each method builds)
  --nj N                       parallel jobs for stages 2 and 6 (default ${nj})
  --synth_samples K            stage 6 draws K takes of each test utterance from every sampled
                               system; stage 7 scores each utterance as the mean of its takes
                               (default ${synth_samples})
  --ngpu N                     GPUs per training job of stages 4-5 (default ${ngpu})
  --nproc N                    DDP processes per training job of stages 4-5 (default: --ngpu,
                               or 1 without GPUs; on CPU they use the gloo backend)
  --seed N                     seed for corpus generation and training (default ${seed})
  --tag NAME                   names an experiment: the trained systems and the reports go to
                               exp/tts_base_NAME, exp/tts_<system>_NAME, exp/report_NAME (and
                               exp/report_reward_asr_NAME); stage 3's models, data/, dump/ and the
                               natural and resynthesis scores are shared by every tag
  --family codec_lm|gradtts    the model family of a method not built yet (no METHOD spec in
                               local_lib/rl/<method>.py): every stage but 5 runs
  --feats_config FILE          log-mel settings (default ${feats_config})
  --token_type char|bpe        text units of the codec LM and the ASRs (stage 2; default: that of
                               conf/token_list\${S}.yaml: char for _mini/_debug, bpe for the full)
  --nbpe N / --bpemode unigram|bpe   sentencepiece size and kind for --token_type bpe
  --config_suffix S            model configs are conf/<name>\${S}.yaml; auto: _mini on the mini
                               corpora, none (the full configs) when a corpus root is given
  --method_variants \"A B\"      extra stage-5 runs (ablations): variant A trains with
                               conf/<method>_A\${S}.yaml into exp/tts_<method>_A, and stages 6-8
                               treat it as one more system
  --train_seeds N              stage 5 trains each method system with N seeds from the same base:
                               --seed keeps the system's name, seed s > --seed trains S_seed<s>
                               (S's config), one more system of stages 6-8; stage 8 adds
                               S_seedmean, each utterance's scores averaged over S's seeds
                               (default ${train_seeds})
  --method_config NAME         stage 5 trains the method itself with conf/NAME\${S}.yaml instead
                               of conf/<method>\${S}.yaml (codec LM; egs/libritts/compare)
  --reward_models \"A B\"        stage 3 reward models (conf/<name>*.yaml)
  --reward_asr_train_set NAME  stage 3 trains the reward models that read audio (*_ctc and
                               reward_asr) on data/NAME, e.g. train_asr (the LibriTTS recipes'
                               local/data.sh: train plus an ASR-only set); the evaluators and
                               the other reward models keep --train_set (default: --train_set)
  --evaluators \"A B\"           stage 3 evaluators, eval_asr eval_speaker [eval_emotion]
  --pretrained \"NAME=FILE ...\"  stage 3 takes these reward models/evaluators as trained
                               (exp/NAME/model.pt links to FILE) instead of training them;
                               tts_base=DIR: stage 4 links the base to DIR instead of training it
                               (codec LM: DIR a model dir such as another tag's
                               exp/tts_base/model; Grad-TTS: a dir with model.pt), so several
                               methods and tags start from one base
  --local_data_opts \"...\"     more options for local/data.sh (stage 1), e.g. \"--lang en\"
  --progress_every SECONDS     a console line per running training job (step n/N, time left)
                               this often (default ${progress_every}; 0: none)"

# Corpus roots: every upper-case variable db.sh sets (and ESD, LIBRITTS, SEEDTTS) is a root,
# NAME=DIR in db.sh or --name_root DIR here; local/data.sh gets it as NAME in its environment.
corpus_vars="ESD LIBRITTS SEEDTTS"
for var in $(sed -nE 's/^[[:space:]]*(export[[:space:]]+)?([A-Z][A-Z0-9_]*)=.*/\2/p' db.sh); do
  [[ " ${corpus_vars} " == *" ${var} "* ]] || corpus_vars+=" ${var}"
done
. ./db.sh
corpus_root_opts=""
for var in ${corpus_vars}; do
  declare "${var,,}_root=${!var:-}"
  corpus_root_opts+=" --${var,,}_root"
done
help_message+="
 ${corpus_root_opts# } DIR
                               corpus roots (default: db.sh; all empty = the mini corpus)"

. utils/parse_options.sh
. ./path.sh
. ./cmd.sh

[ -n "${method}" ] || { echo "$0: --method is required" >&2; exit 1; }
[[ "${progress_every}" =~ ^[0-9]+$ ]] || { echo "$0: --progress_every must be a number of seconds, got '${progress_every}'" >&2; exit 1; }
# A mistyped number must stop the run before any stage does work, not when a stage reaches it.
for opt in stage stop_stage nj ngpu nproc seed train_seeds; do
  [[ "${!opt}" =~ ^[0-9]+$ ]] || { echo "$0: --${opt} must be a non-negative integer, got '${!opt}'" >&2; exit 1; }
done
for opt in stage stop_stage; do
  [ "${!opt}" -ge 1 ] && [ "${!opt}" -le 8 ] || { echo "$0: --${opt} must be one of the stages 1..8, got ${!opt}" >&2; exit 1; }
done
[ "${stage}" -le "${stop_stage}" ] || { echo "$0: --stop_stage ${stop_stage} comes before --stage ${stage}" >&2; exit 1; }
[ "${nj}" -ge 1 ] || { echo "$0: --nj must be at least 1" >&2; exit 1; }
[ "${train_seeds}" -ge 1 ] || { echo "$0: --train_seeds must be at least 1" >&2; exit 1; }
[[ "${token_type}" =~ ^(|char|bpe)$ ]] || { echo "$0: --token_type must be char or bpe, got '${token_type}'" >&2; exit 1; }
[[ "${nbpe}" =~ ^([1-9][0-9]*)?$ ]] || { echo "$0: --nbpe must be a positive integer, got '${nbpe}'" >&2; exit 1; }
[[ "${bpemode}" =~ ^(|unigram|bpe)$ ]] || { echo "$0: --bpemode must be unigram or bpe, got '${bpemode}'" >&2; exit 1; }
[[ "${reward_asr_train_set}" =~ ^[A-Za-z0-9._-]*$ ]] || { echo "$0: --reward_asr_train_set may hold only letters, digits, '.', '_' and '-', got '${reward_asr_train_set}'" >&2; exit 1; }
reward_asr_train_set=${reward_asr_train_set:-${train_set}}
# Stage 2's text units (local_lib/data/text_units.py), read by stages 3 and 4.
token_list=dump/token_list
[ "${nproc}" -ge 1 ] || nproc=$(( ngpu > 0 ? ngpu : 1 ))
[[ "${tag}" =~ ^[A-Za-z0-9._-]*$ ]] || { echo "$0: --tag may hold only letters, digits, '.', '_' and '-', got '${tag}'" >&2; exit 1; }
tag_suffix=${tag:+_${tag}}
# The method's spec (method_family, method_curve_keys, method_built); an unknown method without
# --family stops here, naming the known ones.
method_spec=$(python -m local_lib.bin.method_info ${family:+--family "${family}"} "${method}") ||
  { echo "$0: no stage has run (--method ${method})" >&2; exit 1; }
eval "${method_spec}"
family=${method_family}
[ -z "${method_config}" ] || [ "${family}" = codec_lm ] ||
  { echo "$0: --method_config is built for the codec_lm family only, not ${family}" >&2; exit 1; }

# The model family decides stages 2 (extra), 3 (the reward models' extra options), 4, 5,
# 6 (extra), 7 (extra) and 8; stage 5 only for a method with a spec.
. "${template_dir}/stages_${family}.sh"
[ "${method_built}" = true ] || family_stages=${family_stages//5/}
built_stages=$(echo ${common_stages} ${family_stages} | tr ' ' '\n' | sort -nu | tr '\n' ' ')
built_stages=${built_stages% }
stage_names=([1]="corpus preparation" [2]="features" [3]="reward models and evaluators"
  [4]="base TTS" [5]="${method}" [6]="synthesis" [7]="scoring" [8]="report")
runnable=""
for n in $(seq "${stage}" "${stop_stage}"); do
  if [[ " ${built_stages} " == *" ${n} "* ]]; then
    runnable+=" ${n}"
  elif [ "${n}" = 5 ] && [ "${method_built}" = false ]; then
    log "stage 5 (${method}) is not built yet: no METHOD in local_lib/rl/${method}.py (declared with --family ${family}): skipped"
  else
    log "stage ${n} (${stage_names[$n]}) is not built yet in this repository: skipped (README.md)"
  fi
done
if [ -z "${runnable}" ]; then
  echo "$0: none of stages ${stage}..${stop_stage} is built yet (built: ${built_stages})" >&2
  exit 1
fi
# True when stage $1 is asked for and built.
run_stage() { [[ " ${runnable} " == *" $1 "* ]]; }
# The family's part of stage $1, when its file defines one (family_stage<N>).
run_family_hook() { if declare -F "family_stage$1" > /dev/null; then "family_stage$1"; fi; }

# local/data.sh reads the roots from the environment, so run.sh options reach it unchanged.
given_roots=""
for var in ${corpus_vars}; do
  root_opt=${var,,}_root
  export "${var}=${!root_opt}"
  [ -z "${!root_opt}" ] || given_roots+=" ${var}=${!root_opt}"
done
if [ "${config_suffix}" = auto ]; then
  if [ -z "${given_roots}" ]; then
    config_suffix=_mini
    log "configs: conf/<name>_mini.yaml (--config_suffix auto: no corpus root given, the mini corpus)"
  else
    config_suffix=""
    log "configs: conf/<name>.yaml, the full ones (--config_suffix auto: corpus root${given_roots})"
  fi
else
  log "configs: conf/<name>${config_suffix}.yaml (--config_suffix ${config_suffix:-\"\"})"
fi
all_sets="${train_set} ${dev_set} ${test_sets}"
# The optimised systems of stages 5-8: the method itself, then each variant (source_systems),
# each followed by its copies trained with the further --train_seeds (S_seed<s>).
source_systems="${method}"
for v in ${method_variants}; do
  [[ ! "${v}" =~ _seed[0-9]+$ ]] || { echo "$0: --method_variants ${v}: a variant name may not end in _seed<N> (--train_seeds names its systems so)" >&2; exit 1; }
  source_systems+=" ${method}_${v}"
done
# seeded_name S SEED: the system that is S trained with training seed SEED.
seeded_name() { if [ "$2" -eq "${seed}" ]; then echo "$1"; else echo "$1_seed$2"; fi; }
method_systems=""
for sys in ${source_systems}; do
  for s in $(seq "${seed}" $((seed + train_seeds - 1))); do method_systems+=" $(seeded_name "${sys}" "${s}")"; done
done
method_systems=${method_systems# }
# system_source SYS: the system whose config SYS trains with; system_seed SYS: its training seed.
system_source() { if [[ "$1" =~ ^(.+)_seed[0-9]+$ ]]; then echo "${BASH_REMATCH[1]}"; else echo "$1"; fi; }
system_seed() { if [[ "$1" =~ _seed([0-9]+)$ ]]; then echo "${BASH_REMATCH[1]}"; else echo "${seed}"; fi; }
# seed_mean_opts SYSTEM...: stage 8's report options (--seed-mean S_seedmean=S,S_seed<s>,...) for
# each source system with at least two of its seeds among SYSTEM... (the trained ones).
seed_mean_opts() {
  local sys s name members n opts=() present=" $* "
  [ "${train_seeds}" -gt 1 ] || return 0
  for sys in ${source_systems}; do
    members="" n=0
    for s in $(seq "${seed}" $((seed + train_seeds - 1))); do
      name=$(seeded_name "${sys}" "${s}")
      if [[ "${present}" == *" ${name} "* ]]; then members+=",${name}"; n=$((n + 1)); fi
    done
    [ "${n}" -lt 2 ] || opts+=("${sys}_seedmean=${members#,}")
  done
  [ "${#opts[@]}" -eq 0 ] || echo "--seed-mean ${opts[*]}"
}

# --pretrained, checked before any stage runs: given[NAME] is the absolute path of a stage-3
# model, given_base that of the base (the family's given_base_model checks DIR).
declare -A given=()
given_base=""
for item in ${pretrained}; do
  name=${item%%=*} file=${item#*=}
  if [ "${name}" = tts_base ] && [[ "${item}" == *=* ]]; then
    given_base=$(given_base_model "${file}") || exit 1
    continue
  fi
  [[ " ${reward_models} ${evaluators} " == *" ${name} "* && "${item}" == *=* ]] || {
    echo "$0: --pretrained ${item}: expected NAME=FILE with NAME one of: $(echo ${reward_models} ${evaluators}), or tts_base=DIR" >&2; exit 1; }
  [ -f "${file}" ] || { echo "$0: --pretrained ${name}: no such file: ${file}" >&2; exit 1; }
  python -m local_lib.bin.check_checkpoint "${file}" > /dev/null ||
    { echo "$0: --pretrained ${name}: not a usable model file" >&2; exit 1; }
  given[${name}]=$(readlink -f "${file}")
done

# What each stage reads that an earlier stage writes (the family's file declares its own):
# check_stage_inputs names every one missing before any stage runs.
for dset in ${all_sets}; do needs 2 1 "data/${dset}/wav.scp"; done
to_train=""  # stage 3's models that are not given
for name in ${reward_models} ${evaluators}; do [ -n "${given[${name}]:-}" ] || to_train+=" ${name}"; done
[ -z "${to_train}" ] || needs 3 1 "data/${train_set}/wav.scp" "data/${dev_set}/wav.scp"
# stage3_train_set NAME: the data set stage 3 trains model NAME on. The reward ASRs, whose
# trainers read audio and text only, may take a larger set (--reward_asr_train_set).
stage3_train_set() {
  case "$1" in
    eval_*) echo "${train_set}" ;;
    *_ctc | reward_asr) echo "${reward_asr_train_set}" ;;
    *) echo "${train_set}" ;;
  esac
}
# asr_set_users: the models to train on --reward_asr_train_set when it is not --train_set.
asr_set_users=""
for name in ${to_train}; do
  [ "$(stage3_train_set "${name}")" = "${train_set}" ] || asr_set_users+=" ${name}"
done
asr_set_hint="--reward_asr_train_set trains${asr_set_users} on it"
if [ -n "${asr_set_users}" ]; then
  needs 3 1 "data/${reward_asr_train_set}/wav.scp"
  base_hint["data/${reward_asr_train_set}/wav.scp"]="'s local/data.sh; ${asr_set_hint}"
fi
for dset in ${test_sets}; do needs 6 1 "data/${dset}/wav.scp"; done
for name in ${reward_models}; do [ -n "${given[${name}]:-}" ] || needs 5 3 "exp/${name}/model.pt"; done
for name in ${evaluators}; do [ -n "${given[${name}]:-}" ] || needs 7 3 "exp/${name}/model.pt"; done
[ -n "${given_base}" ] || needs 5 4 "exp/tts_base${tag_suffix}/${base_model}"
base_hint["exp/tts_base${tag_suffix}/${base_model}"]=", or --pretrained tts_base=DIR"
family_needs
check_stage_inputs
[ "${progress_every}" -eq 0 ] || show_progress "${progress_every}" &

# link_model <stage> <link> <model>: a model given by --pretrained stands where stage <stage>
# would write <link>. A model already there (--pretrained X=exp/X/model.pt) is accepted; one
# trained here as a directory is not replaced.
link_model() {
  local stage=$1 link=$2 model=$3
  mkdir -p "$(dirname "${link}")"
  if [ "$(readlink -f "${link}")" != "${model}" ]; then
    if [ -d "${link}" ] && [ ! -L "${link}" ]; then
      echo "$0: stage ${stage}: ${link} was trained here; remove it to use ${model} instead" >&2
      exit 1
    fi
    ln -sfn "${model}" "${link}"
  fi
  log "stage ${stage}: ${link} -> ${model} (given, not trained)"
}

# validate_set SET [OPTION...]: utils/validate_data_dir.sh on data/SET; a set synthesised from
# each utterance's speaker's other utterances (the codec LM's prompts) needs two of each.
validate_set() {
  local dset=$1 min_utts=1
  shift
  [ "${prompted_by_speaker}" = false ] || [ -f "data/${dset}/utt2prompt_wav" ] || min_utts=2
  utils/validate_data_dir.sh --min-utts-per-spk "${min_utts}" "$@" "data/${dset}"
}

if run_stage 1; then
  log "stage 1: corpus preparation"
  # data/ is made from local/ (data.sh and any helper beside it), the options of local/data.sh
  # and the corpus roots (--nj changes nothing).
  data_cmd=(local/data.sh ${local_data_opts} --seed "${seed}")
  if ! stage_is_done 1 data/.done -- "${data_cmd[@]}" local ${given_roots}; then
    stage_begin data/.done -- "${data_cmd[@]}" local ${given_roots}
    "${data_cmd[@]}" --nj "${nj}" data
    for dset in ${all_sets}; do validate_set "${dset}"; done
    if [ -n "${asr_set_users}" ] && [ -d "data/${reward_asr_train_set}" ]; then
      validate_set "${reward_asr_train_set}"
    fi
    stage_finish data/.done
  fi
  # Checked before any stage when stage 1 is not asked for (check_stage_inputs); here once it ran.
  if run_stage 3 && [ -n "${asr_set_users}" ] && [ ! -f "data/${reward_asr_train_set}/wav.scp" ]; then
    echo "$0: stage 1 wrote no data/${reward_asr_train_set}/wav.scp (${asr_set_hint}); no later stage has run" >&2
    exit 1
  fi
fi

if run_stage 2; then
  log "stage 2: log-mel features (nj=${nj}, backend=${cmd_backend})"
  for dset in ${all_sets}; do
    stage_is_done 2 "dump/${dset}/.done" --output "dump/${dset}/feats.scp" -- \
      "data/${dset}" "${feats_config}" && continue
    # a set made after stage 1 (utils/subset_data_dir.sh) is checked here; its audio by dump_feats
    validate_set "${dset}" --no-audio
    stage_begin "dump/${dset}/.done" -- "data/${dset}" "${feats_config}"
    utils/dump_feats.sh --cmd "${train_cmd}" --nj "${nj}" --config "${feats_config}" \
      "data/${dset}" "dump/${dset}"
    stage_finish "dump/${dset}/.done"
  done
  # Made again only when its settings or the training text changed (the tool checks its own
  # record, dump/token_list/config.yaml), so what was trained on it stays valid otherwise.
  ${train_cmd} "${token_list}/log/make_token_list.log" python -m local_lib.bin.make_token_list \
    --config "conf/token_list${config_suffix}.yaml" --text "data/${train_set}/text" \
    --out-dir "${token_list}" ${token_type:+--token-type "${token_type}"} \
    ${nbpe:+--nbpe "${nbpe}"} ${bpemode:+--bpemode "${bpemode}"}
  log "stage 2: $(grep -o 'make_token_list: .*' "${token_list}/log/make_token_list.log" | tail -n 1)"
  run_family_hook 2
fi

# Test sets with audio of their own text get a "natural" and a vocoder-only "resynth" system;
# a seed-tts-eval list (utt2prompt_wav) has no such audio.
natural_sets=""
for dset in ${test_sets}; do
  [ -f "data/${dset}/utt2prompt_wav" ] || natural_sets+=" ${dset}"
done

declare -A stage3_pids=()
if run_stage 3; then
  log "stage 3: reward models and evaluators (configs conf/<name>${config_suffix}.yaml)"
  for name in ${reward_models} ${evaluators}; do
    if [ -n "${given[${name}]:-}" ]; then
      link_model 3 "exp/${name}/model.pt" "${given[${name}]}"
      continue
    fi
    # Evaluators, CTC reward ASRs (*_ctc) and reward classifiers (*_clf) share the evaluator
    # trainer, which reads audio only; the others have their own and also get the family's
    # stage3_model_args.
    case "${name}" in
      eval_* | *_ctc | *_clf) tool=train_evaluator extra=() ;;
      *) tool="train_${name}" extra=("${stage3_model_args[@]}") ;;
    esac
    extra+=(--token-list "${token_list}")  # the ASRs' units; the other models ignore it
    train_args=(--config "conf/${name}${config_suffix}.yaml" --seed "${seed}"
      --train-dir "data/$(stage3_train_set "${name}")" --valid-dir "data/${dev_set}" --out-dir "exp/${name}"
      "${extra[@]}")
    stage_is_done 3 "exp/${name}/.done" --output "exp/${name}/model.pt" -- "${tool}" "${train_args[@]}" &&
      continue
    stage_begin "exp/${name}/.done" --resume-dir "exp/${name}/checkpoints" -- "${tool}" "${train_args[@]}"
    # Each model trains as its own job (one CPU thread each); they run side by side.
    ${cuda_cmd} "exp/${name}/log/train.log" python -m "local_lib.bin.${tool}" "${train_args[@]}" &
    stage3_pids[${name}]=$!
  done
fi

# Stage 3's jobs run in the background and each is waited for only where it is first needed:
# the base TTS (stage 4) needs none of them, stage 5 its reward models, stage 7 the evaluators.
# So stage 5 starts while a slow evaluator is still training. wait_stage3 NAME... waits for
# those still running, marks them done and fails naming the logs of any that failed.
wait_stage3() {
  local name failed=""
  for name in "$@"; do
    [ -n "${stage3_pids[${name}]:-}" ] || continue
    if wait "${stage3_pids[${name}]}"; then
      stage_finish "exp/${name}/.done"
    else
      failed+=" exp/${name}/log/train.log"
    fi
    unset "stage3_pids[${name}]"
  done
  [ -z "${failed}" ] || { echo "$0: stage 3 failed, see${failed}" >&2; exit 1; }
}

# The family's stage 4 writes ${base_model} (its base model) under exp/tts_base<tag>.
if run_stage 4; then
  log "stage 4: ${stage_names[4]}"
  if [ -n "${given_base}" ]; then
    link_model 4 "exp/tts_base${tag_suffix}/${base_model}" "${given_base}"
  elif [ -L "exp/tts_base${tag_suffix}/${base_model}" ]; then
    # never train into a base given by an earlier run's --pretrained tts_base
    log "stage 4: exp/tts_base${tag_suffix}/${base_model} links to a given base ($(readlink -f "exp/tts_base${tag_suffix}/${base_model}")), not trained here: skipping (remove the link to train)"
  else
    run_family_hook 4
  fi
fi
wait_stage3 ${reward_models}

if run_stage 5; then
  log "stage 5: ${stage_names[5]}"
  run_family_hook 5
fi

if run_stage 6; then
  log "stage 6: synthesis (vocoder-only resynthesis of the natural test audio)"
  for dset in ${natural_sets}; do
    out="exp/resynth/${dset}"
    stage_is_done 6 "${out}/.done" --output "${out}/wav" -- "data/${dset}" "${feats_config}" && continue
    stage_begin "${out}/.done" -- "data/${dset}" "${feats_config}"
    ${train_cmd} JOB=1:"${nj}" "${out}/log/resynth.JOB.log" python -m local_lib.bin.resynth \
      --data-dir "data/${dset}" --out-dir "${out}" --feats-config "${feats_config}" \
      --nj "${nj}" --job JOB
    if [ "${nj}" -gt 1 ]; then
      for j in $(seq "${nj}"); do cat "${out}/wav.${j}.scp"; done | sort > "${out}/wav.scp"
    fi
    stage_finish "${out}/.done"
  done
  run_family_hook 6
fi

# score_system <audio: --wav-dir DIR | --wav-scp FILE> <out dir> <title> [<compare dir> <compare name>]
# Scores one system's audio of test set ${dset} with the evaluators into <out dir>/RESULTS.md and
# scores.tsv; with a compare system, RESULTS.md also gets the paired difference to it.
# A system already scored is skipped while its marker is newer than its audio and its compare
# system's scores (re-synthesised audio or a re-scored compare system is scored again).
score_system() {
  local audio_opt=$1 audio=$2 out=$3 title=$4 compare_dir=${5:-} compare_name=${6:-}
  local opts=("${score_opts[@]}") marker="${out}/.score.done"
  if [ -f "${marker}" ] && [ "${marker}" -nt "${audio}" ] &&
     { [ -z "${compare_dir}" ] || [ "${marker}" -nt "${compare_dir}/scores.tsv" ]; }; then
    log "stage 7: ${marker} is newer than ${audio}, skipping"
    return 0
  fi
  [ -z "${compare_dir}" ] || opts+=(--compare-scores "${compare_dir}/scores.tsv" --compare-name "${compare_name}")
  ${train_cmd} "${out}/log/score.log" python -m local_lib.bin.score \
    --data-dir "data/${dset}" "${audio_opt}" "${audio}" --reference data "${opts[@]}" \
    --title "${dset}: ${title}" --out-dir "${out}"
  touch "${marker}"
  log "stage 7: ${out}/RESULTS.md"
}

# logged_curve_keys METRICS_FILE...: the method's curve keys (its spec, in order) that some of
# the given metrics.jsonl files logged; e.g. GRPO with beta 0 has no reference model, hence no kl.
logged_curve_keys() {
  local key keys=""
  [ $# -gt 0 ] || return 0
  for key in ${method_curve_keys}; do
    if grep -qF "\"${key}\":" "$@"; then keys+=" ${key}"; fi
  done
  echo "${keys# }"
}

# report_dir <name> <set>: exp/<name><tag> for the first of --test_sets, exp/<name><tag>_<set>
# for each further one, so every test set keeps its own report (the families' stage 8).
report_dir() {
  local sets=(${test_sets})
  if [ "$2" = "${sets[0]}" ]; then echo "exp/$1${tag_suffix}"; else echo "exp/$1${tag_suffix}_$2"; fi
}

# emotion_contours SET REPORT_DIR SYSTEM...: when SET has emotion labels (data/SET/utt2emo),
# stage 8's figure of one sentence read in each emotion (local_lib.bin.plot_emotion_contours):
# the natural audio when SET has it, then each SYSTEM's exp/tts_<system><tag>/synth/SET/wav.scp
# (take 0 of each utterance when stage 6 drew several), drawn into
# REPORT_DIR/emotion_contours_SET.png and appended to the caller's array figures. Nothing
# otherwise.
emotion_contours() {
  local dset=$1 report=$2 sys opts=()
  shift 2
  [ -f "data/${dset}/utt2emo" ] || return 0
  local png="${report}/emotion_contours_${dset}.png"
  [[ " ${natural_sets} " != *" ${dset} "* ]] || opts+=(--system "natural=data/${dset}/wav.scp")
  for sys in "$@"; do opts+=(--system "${sys}=exp/tts_${sys}${tag_suffix}/synth/${dset}/wav.scp"); done
  ${train_cmd} "${report}/log/plot_emotion_contours.log" python -m local_lib.bin.plot_emotion_contours \
    --data-dir "data/${dset}" --feats-config "${feats_config}" "${opts[@]}" --out "${png}"
  figures+=("${png}")
}

wait_stage3 ${evaluators}
if run_stage 7; then
  log "stage 7: scoring with the evaluators (${evaluators})"
  score_opts=()
  for name in ${evaluators}; do score_opts+=("--${name#eval_}" "exp/${name}/model.pt"); done
  for dset in ${natural_sets}; do
    score_system --wav-scp "data/${dset}/wav.scp" "exp/natural/${dset}" "natural audio"
    score_system --wav-dir "exp/resynth/${dset}/wav" "exp/resynth/${dset}" \
      "Griffin-Lim resynthesis of the natural audio" "exp/natural/${dset}" natural
  done
  run_family_hook 7
fi

if run_stage 8; then
  log "stage 8: report"
  run_family_hook 8
fi

log "finished ${method}${tag:+ (${tag})}: stages${runnable}"
