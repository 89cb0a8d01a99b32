# Stages of the gradtts model family, sourced by tts_rl.sh (which has parsed the options and
# defined log, run_stage and score_system). It sets family_stages, the stages it builds beyond
# the common ones, and defines family_stage<N> for its part of stage N.
family_stages=""
