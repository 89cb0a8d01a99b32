#!/usr/bin/env perl
# Convert utt2spk ("utt spk" lines) to spk2utt ("spk utt1 utt2 ..." lines).
#
# Usage: utils/utt2spk_to_spk2utt.pl [utt2spk] > spk2utt   (reads stdin without a file)
#
# Speakers come out in order of first appearance and their utterances in input order, so a
# C-sorted utt2spk whose utterance ids start with the speaker id gives a C-sorted spk2utt.

use strict;
use warnings;

my (@speakers, %utts_of);
while (my $line = <>) {
    my @fields = split(' ', $line);
    if (@fields != 2) {
        chomp $line;
        die "utt2spk_to_spk2utt.pl: $ARGV:$.: expected '<utt> <spk>', got '$line'\n";
    }
    my ($utt, $spk) = @fields;
    push @speakers, $spk unless exists $utts_of{$spk};
    push @{ $utts_of{$spk} }, $utt;
} continue {
    close ARGV if eof;    # restart $. for each input file
}
print join(' ', $_, @{ $utts_of{$_} }), "\n" for @speakers;
