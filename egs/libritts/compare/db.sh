# Corpus root. Empty: local/data.sh builds the mini_libritts corpus with espeak-ng.
LIBRITTS=
