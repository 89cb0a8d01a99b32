# Corpus root. Empty: local/data.sh builds the mini_esd corpus with espeak-ng.
ESD=
