#!/usr/bin/env perl
# Run a command, or an array of tasks JOB=1:N, as one Slurm job array and wait for it.
#
# Usage: utils/slurm.pl [options] [JOB=1:N] <log> <command...>   (see --help)
#
# Same contract and log files as utils/run.pl. Options are turned into sbatch flags by a
# config in Kaldi's slurm.conf format, taken from --config FILE, else conf/slurm.conf in the
# current directory, else utils/slurm.conf beside this script. --max-jobs-run K becomes the
# array throttle (--array=A-B%K). The job script is written to <log dir>/q/<name>.sh; it cds to
# the submitting directory and inherits the submitting environment (sbatch --export=ALL).
# Success is read from each task's log ("# Ended (code N)"), so a task killed by Slurm (time
# limit, memory, node failure) counts as failed; Slurm's own output is in q/<name>.<task>.out.

use strict;
use warnings;
use FindBin qw($RealBin);
use lib $RealBin;
use Cwd qw(getcwd);
use File::Basename qw(dirname basename);
use File::Path qw(make_path);
use Time::HiRes qw(sleep time);
use Launcher;

my $prog = 'slurm.pl';
my $job = Launcher::parse_command_line($prog, @ARGV);

sub fail {
    print STDERR "$prog: @_\n";
    exit 1;
}

sub config_path {
    my ($given) = @_;
    if (defined $given) {
        fail("config file '$given' not found") unless -f $given;
        return $given;
    }
    return -f 'conf/slurm.conf' ? 'conf/slurm.conf' : "$RealBin/slurm.conf";
}

# Parse the Kaldi slurm.conf format: "command ...", "option name=value|* flags",
# "default name=value". Returns the command words, option rules and defaults.
sub read_config {
    my ($path) = @_;
    open(my $fh, '<', $path) or fail("cannot read config '$path': $!");
    my (@command, %exact, %wildcard, %defaults);
    while (my $line = <$fh>) {
        $line =~ s/#.*//;
        next unless $line =~ m/\S/;
        my ($kind, $rest) = $line =~ m/^\s*(\S+)\s*(.*?)\s*$/;
        if ($kind eq 'command') {
            @command = split(' ', $rest);
        } elsif ($kind eq 'option' && $rest =~ m/^(\w+)=(\S+)\s*(.*)$/) {
            my ($name, $value, $flags) = ($1, $2, $3);
            if ($value eq '*') {
                $wildcard{$name} = $flags;
            } else {
                $exact{"$name=$value"} = $flags;
            }
        } elsif ($kind eq 'default' && $rest =~ m/^(\w+)=(\S+)$/) {
            $defaults{$1} = $2;
        } else {
            fail("$path:$.: cannot parse line: $line");
        }
    }
    fail("$path: no 'command' line (e.g. 'command sbatch --export=ALL')") unless @command;
    return (\@command, \%exact, \%wildcard, \%defaults);
}

# sbatch flags for the caller's options plus the config's defaults.
sub option_flags {
    my ($path, $exact, $wildcard, $defaults) = @_;
    my %wanted = (%$defaults, %{ $job->{options} });
    delete @wanted{qw(config max_jobs_run)};
    my @flags;
    for my $name (sort keys %wanted) {
        my $value = $wanted{$name};
        my $flags;
        if (exists $exact->{"$name=$value"}) {
            $flags = $exact->{"$name=$value"};
        } elsif (exists $wildcard->{$name}) {
            ($flags = $wildcard->{$name}) =~ s/\$0/$value/g;
        } else {
            (my $dashed = $name) =~ tr/_/-/;
            fail("option --$dashed $value is not described in $path");
        }
        push @flags, split(' ', $flags);
    }
    return @flags;
}

# The array job script: the shared task runner and one case branch per task.
sub write_job_script {
    my ($path, $cwd) = @_;
    open(my $fh, '>', "$path.tmp") or fail("cannot write '$path.tmp': $!");
    print $fh "#!/bin/bash\n# Written by utils/slurm.pl for $job->{log}\n";
    print $fh 'cd ', Launcher::shell_quote($cwd), " || exit 1\n";
    print $fh $Launcher::TASK_RUNNER;
    print $fh "case \"\$SLURM_ARRAY_TASK_ID\" in\n";
    for my $id (Launcher::task_ids($job)) {
        my $log = Launcher::shell_quote(Launcher::for_task($job, $job->{log}, $id));
        my $cmd = Launcher::shell_quote(Launcher::for_task($job, $job->{cmd}, $id));
        print $fh "  $id) run_task $log $cmd ", Launcher::threads($job), " ;;\n";
    }
    print $fh "  *) echo \"slurm.pl: no task \$SLURM_ARRAY_TASK_ID here\" >&2; exit 1 ;;\n";
    print $fh "esac\n";
    close($fh) or fail("cannot write '$path.tmp': $!");
    rename("$path.tmp", $path) or fail("cannot rename '$path.tmp': $!");
    chmod(0755, $path);
}

sub submit {
    my (@sbatch) = @_;
    open(my $out, '-|', @sbatch) or fail("cannot run $sbatch[0]: $!");
    my $reply = join('', <$out>);
    close($out);
    fail("submission failed (exit code " . ($? >> 8) . "), so no task ran and no task log was "
        . "written; sbatch's message is above (SLURM_CONF="
        . ($ENV{SLURM_CONF} // 'unset') . "): @sbatch") if $? != 0;
    my ($job_id) = $reply =~ m/^(\d+)/ or fail("cannot read a job id from sbatch's reply: $reply");
    return $job_id;
}

# Poll squeue until the array has left the queue, about ten times per elapsed time (0.25 s to
# 10 s apart), so short jobs return promptly and long ones cost the controller little.
sub wait_for {
    my ($job_id) = @_;
    my ($started, $errors) = (time(), 0);
    while (1) {
        my $interval = (time() - $started) / 10;
        sleep($interval < 0.25 ? 0.25 : $interval > 10 ? 10 : $interval);
        my $reply = qx(squeue -h -j $job_id -o %T 2>&1);
        if ($? == 0) {
            return if $reply !~ m/\S/;
            $errors = 0;
            next;
        }
        return if $reply =~ m/Invalid job id/i;
        $errors++;
        print STDERR "$prog: squeue failed ($errors): $reply";
        fail("giving up on job $job_id after $errors squeue failures") if $errors >= 30;
    }
}

# A task's exit code from its log footer; undef if the task never finished writing it.
sub logged_exit_code {
    my ($log) = @_;
    open(my $fh, '<', $log) or return undef;
    my $code;
    while (my $line = <$fh>) {
        $code = $1 if $line =~ m/^# Ended \(code (\d+)\)/;
    }
    return $code;
}

my $config = config_path($job->{options}{config});
my ($command, $exact, $wildcard, $defaults) = read_config($config);
my @flags = option_flags($config, $exact, $wildcard, $defaults);

Launcher::make_log_dirs($prog, $job);
my @ids = Launcher::task_ids($job);
my %log_of = map { $_ => Launcher::for_task($job, $job->{log}, $_) } @ids;
# A stale log from an earlier run must not pass for this run's result.
unlink(values %log_of);

my $name = basename($job->{log});
$name =~ s/\.log$//;
$name =~ s/\.?\b\Q$job->{jobvar}\E\b//g if defined $job->{jobvar};
$name = 'job' if $name eq '';
my $qdir = dirname($log_of{ $ids[0] }) . '/q';
make_path($qdir) unless -d $qdir;
my $cwd = getcwd();
write_job_script("$qdir/$name.sh", $cwd);

my $array = "$job->{start}-$job->{end}";
$array .= "%$job->{options}{max_jobs_run}" if $job->{options}{max_jobs_run};
my $job_id = submit(@$command, @flags, "--array=$array", "--job-name=$name", "--chdir=$cwd",
    "--output=$qdir/$name.%a.out", '--parsable', "$qdir/$name.sh");

$SIG{INT} = $SIG{TERM} = sub {
    system('scancel', $job_id);
    fail("caught SIG$_[0], cancelled job $job_id");
};
wait_for($job_id);

# Logs on a network file system may show up a little after the job has left the queue.
my %code;
for my $attempt (1 .. 12) {
    $code{$_} //= logged_exit_code($log_of{$_}) for @ids;
    last unless grep { !defined $code{$_} } @ids;
    sleep(0.25);
}
my @failed;
for my $id (@ids) {
    next if defined $code{$id} && $code{$id} == 0;
    push @failed, defined $code{$id} ? $log_of{$id}
        : "$log_of{$id} (no exit code in the log: killed by Slurm? see $qdir/$name.$id.out)";
}
exit Launcher::report($prog, $job, \@failed);
