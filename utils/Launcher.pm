package Launcher;

# Shared by utils/run.pl and utils/slurm.pl so both honour one contract: the same command line,
# the same JOB substitution and quoting, the same per-task log format and the same failure
# report. Only where tasks run differs (local processes vs. a Slurm job array).

use strict;
use warnings;
use File::Basename qw(dirname basename);
use File::Path qw(make_path);

# Bash function that runs one task and writes its log. run.pl passes it to `bash -c`, slurm.pl
# embeds it in the array job script, so a log looks the same whichever backend wrote it.
our $TASK_RUNNER = <<'BASH';
# Odd local names and an empty "$@" so the task's own command sees a clean shell.
run_task() {
  local __rt_log=$1 __rt_cmd=$2 __rt_threads=$3 __rt_start __rt_ret __rt_elapsed
  __rt_start=$(date +%s)
  {
    printf '# %s\n' "$__rt_cmd"
    printf '# Started at %s on %s\n#\n' "$(date)" "$(hostname)"
  } > "$__rt_log" || return 1
  ( set -o pipefail; set --; eval "$__rt_cmd" ) >> "$__rt_log" 2>&1
  __rt_ret=$?
  __rt_elapsed=$(( $(date +%s) - __rt_start ))
  {
    printf '# Accounting: time=%d threads=%d\n' "$__rt_elapsed" "$__rt_threads"
    printf '# Ended (code %d) at %s, elapsed time %d seconds\n' \
      "$__rt_ret" "$(date)" "$__rt_elapsed"
  } >> "$__rt_log"
  return "$__rt_ret"
}
BASH

sub usage {
    my ($prog) = @_;
    return <<"USAGE";
Usage: $prog [options] [JOB=1:N] <log-file> <command...>
  Runs <command> (under bash) once, or once per value of JOB (any variable name works), with
  JOB replaced by the task number wherever it is a whole word in the log name and the command
  (exp/log/x.JOB.log, split4/JOB; not inside \$SLURM_JOB_ID). Each log starts with the
  command and start time and ends with '# Accounting: ...' and '# Ended (code N) ...'.
  Exits 1 if any task failed, naming the failed logs. A single command argument is run as a
  whole bash command line ('a | b > c'); with several arguments, each one with spaces is
  quoted as one word and pipes/redirections for the task are passed escaped (\\| \\>).
Options (--opt value or --opt=value; dashes and underscores are equivalent):
  --max-jobs-run K   at most K tasks at a time (default: all)
  --num-threads T    threads per task (reported in the log; slurm: --cpus-per-task)
  --mem M, --gpu N, --time T, other --name value
                     resource requests; mapped by the config in slurm.pl, ignored by run.pl
  --config F         slurm.pl only: option mapping (Kaldi slurm.conf format)
USAGE
}

# Single-quote a string for bash, whatever it contains.
sub shell_quote {
    my ($text) = @_;
    (my $escaped = $text) =~ s/'/'\\''/g;
    return "'$escaped'";
}

# Quote one argument for the task's bash command line the way Kaldi does: words without
# whitespace or quotes pass through untouched (so \| and \> act in the task), anything else is
# single-quoted as one word.
sub quote_word {
    my ($word) = @_;
    return $word =~ m/^[^\s'"]+$/ ? $word : shell_quote($word);
}

sub _die_usage {
    my ($prog, $message) = @_;
    print STDERR "$prog: $message\n\n", usage($prog);
    exit 1;
}

# Parse the shared command line. Returns a hash with options (names normalised to
# underscores), jobvar (undef without JOB=), start, end, log (pattern) and cmd (one string).
sub parse_command_line {
    my ($prog, @args) = @_;
    my %options;
    my ($jobvar, $start, $end);
    # Options and the JOB=A:B range may come in any order before the log file (as in Kaldi).
    while (@args) {
        if ($args[0] =~ m/^([A-Za-z_]\w*)=(\d+)(?::(\d+))?$/) {
            _die_usage($prog, "more than one job range: $jobvar= and $1=") if defined $jobvar;
            ($jobvar, $start, $end) = ($1, $2, defined $3 ? $3 : $2);
            shift @args;
            _die_usage($prog, "bad job range $jobvar=$start:$end (start must be <= end)")
                if $start > $end;
            next;
        }
        last unless $args[0] =~ m/^--?(\w[\w-]*)(?:=(.*))?$/s;
        shift @args;
        my ($name, $value) = ($1, $2);
        if ($name eq 'help' || $name eq 'h') {
            print usage($prog);
            exit 0;
        }
        if (!defined $value) {
            _die_usage($prog, "option --$name needs a value") unless @args;
            $value = shift @args;
        }
        $name =~ s/-/_/g;
        $name = 'max_jobs_run' if $name eq 'tc';    # Kaldi's old spelling
        $options{$name} = $value;
    }
    for my $name (qw(max_jobs_run num_threads)) {
        next unless defined $options{$name};
        _die_usage($prog, "--$name must be a positive integer, got '$options{$name}'")
            unless $options{$name} =~ m/^[1-9]\d*$/;
    }
    _die_usage($prog, 'expected a log file and a command') if @args < 2;
    my $log = shift @args;
    _die_usage($prog, "log file '$log' looks like an option; options go before JOB=")
        if $log =~ m/^-/;
    _die_usage($prog, "log file '$log' does not contain $jobvar; every task would write it")
        if defined $jobvar && $start != $end && $log !~ m/\b\Q$jobvar\E\b/;

    return {
        options => \%options,
        jobvar  => $jobvar,
        start   => defined $start ? $start : 1,
        end     => defined $end ? $end : 1,
        log     => $log,
        # A lone command argument is a whole bash command line ("a | b > c"); several arguments
        # are words, quoted where needed (Kaldi's convention).
        cmd => @args == 1 ? $args[0] : join(' ', map { quote_word($_) } @args),
    };
}

# The text for task $id: the job variable replaced where it stands as a whole word
# (foo.JOB.log, split4/JOB, --seed=JOB), so names like $SLURM_JOB_ID are left alone.
sub for_task {
    my ($job, $text, $id) = @_;
    return $text unless defined $job->{jobvar};
    (my $out = $text) =~ s/\b\Q$job->{jobvar}\E\b/$id/g;
    return $out;
}

sub task_ids {
    my ($job) = @_;
    return ($job->{start} .. $job->{end});
}

sub threads {
    my ($job) = @_;
    return defined $job->{options}{num_threads} ? $job->{options}{num_threads} : 1;
}

# Create every task's log directory up front so a bad path fails before anything runs.
sub make_log_dirs {
    my ($prog, $job) = @_;
    for my $id (task_ids($job)) {
        my $dir = dirname(for_task($job, $job->{log}, $id));
        next if -d $dir;
        eval { make_path($dir); 1 } or do {
            print STDERR "$prog: cannot create log directory '$dir': $@";
            exit 1;
        };
    }
}

# Print the failure summary the Kaldi way and return the exit code for the launcher.
sub report {
    my ($prog, $job, $failed) = @_;
    return 0 unless @$failed;
    my $n = $job->{end} - $job->{start} + 1;
    my $pattern = defined $job->{jobvar} ? for_task($job, $job->{log}, '*') : $job->{log};
    print STDERR sprintf("%s: %d / %d failed, log is in %s\n", $prog, scalar(@$failed), $n,
        $pattern);
    print STDERR "  failed: $_\n" for @$failed;
    return 1;
}

1;
