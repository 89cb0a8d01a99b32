#!/usr/bin/env perl
# Convert spk2utt ("spk utt1 utt2 ..." lines) to utt2spk ("utt spk" lines).
#
# Usage: utils/spk2utt_to_utt2spk.pl [spk2utt] > utt2spk   (reads stdin without a file)
#
# Lines come out in spk2utt order; pipe through `LC_ALL=C sort` if the utterance ids do not
# start with the speaker id.

use strict;
use warnings;

while (my $line = <>) {
    my ($spk, @utts) = split(' ', $line);
    if (!@utts) {
        chomp $line;
        die "spk2utt_to_utt2spk.pl: $ARGV:$.: expected '<spk> <utt> ...', got '$line'\n";
    }
    print "$_ $spk\n" for @utts;
} continue {
    close ARGV if eof;    # restart $. for each input file
}
