#!/usr/bin/env perl
# Run a command, or an array of tasks JOB=1:N, on this machine in parallel.
#
# Usage: utils/run.pl [options] [JOB=1:N] <log> <command...>   (see --help)
#
# Same contract as utils/slurm.pl, so recipes switch backend in cmd.sh only. Resource options
# (--gpu, --mem, --time, ...) are accepted and ignored here: local tasks see whatever GPUs the
# caller's environment exposes (set CUDA_VISIBLE_DEVICES yourself to restrict them).
# --max-jobs-run K caps how many tasks run at once (default: all of them).

use strict;
use warnings;
use FindBin qw($RealBin);
use lib $RealBin;
use Launcher;

my $prog = 'run.pl';
my $job = Launcher::parse_command_line($prog, @ARGV);
Launcher::make_log_dirs($prog, $job);

my @ids = Launcher::task_ids($job);
my $max_running = $job->{options}{max_jobs_run} || scalar(@ids);
my %running;    # pid => task id
my %exit_code;  # task id => exit status

# Each task runs in its own process group so an interrupt can stop whole pipelines.
sub stop_all {
    my ($signal) = @_;
    kill 'TERM', map { -$_ } keys %running;
    print STDERR "$prog: caught SIG$signal, stopped running tasks\n";
    exit 1;
}
$SIG{INT} = $SIG{TERM} = \&stop_all;

sub start_task {
    my ($id) = @_;
    my $pid = fork();
    die "$prog: fork failed: $!\n" unless defined $pid;
    if ($pid == 0) {
        setpgrp(0, 0);
        $SIG{INT} = $SIG{TERM} = 'DEFAULT';
        exec('bash', '-c', "$Launcher::TASK_RUNNER\nrun_task \"\$@\"", 'run_task',
            Launcher::for_task($job, $job->{log}, $id),
            Launcher::for_task($job, $job->{cmd}, $id), Launcher::threads($job))
            or die "$prog: cannot run bash: $!\n";
    }
    $running{$pid} = $id;
}

sub reap_one {
    my $pid = waitpid(-1, 0);
    return if $pid <= 0 || !exists $running{$pid};
    my $id = delete $running{$pid};
    $exit_code{$id} = $?;
}

for my $id (@ids) {
    reap_one() while keys(%running) >= $max_running;
    start_task($id);
}
reap_one() while %running;

my @failed = map { Launcher::for_task($job, $job->{log}, $_) } grep { $exit_code{$_} != 0 } @ids;
exit Launcher::report($prog, $job, \@failed);
