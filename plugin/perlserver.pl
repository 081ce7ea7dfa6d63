# gearbridge embedded Perl server (see plugin/perl.go for the protocol).
#
# Started by the worker as `perl -e <this file> <cache>` with file
# descriptor 3 a stream socket to the worker. For every request it compiles
# the plugin file once into an anonymous sub in a package of its own (kept
# while the file's mtime, size and inode stay the same, when <cache> is 1),
# forks a child that runs it and reports the child's pid and, once reaped,
# its wait status. The child writes to two FIFOs the worker reads, so the
# worker keeps the output cap and kills the child's process group itself.
#
# Frames in both directions: "<length>\n" + fields joined by NUL bytes.
# Requests:  run, id, path, $0, cwd, stdout fifo, stderr fifo, argc, args..., env...
# Replies:   started, id, pid | exit, id, wait status | compile, id, text | fail, id, text

# Plugins are compiled by this sub, which is defined before any pragma and
# lexical of the server, so that plugin code sees none of them (a script is
# not strict unless it says so).
sub Gearbridge::EPN::compile_string { return eval $_[0] }

# exit in a plugin ends the forked child as it ends a script; at compile time
# (a BEGIN block) it must not end the server.
BEGIN {
    *CORE::GLOBAL::exit = sub (;$) {
        my $code = @_ ? $_[0] : 0;
        die "exit($code) called while the plugin was compiled\n" if $Gearbridge::EPN::in_server;
        Gearbridge::EPN::leave($code);
    };
}

package Gearbridge::EPN;

use strict;
use warnings;
use B ();
use IO::Handle ();
use POSIX ();
use Fcntl qw(O_WRONLY O_NONBLOCK F_GETFL F_SETFL);

our $in_server = 1;

my $use_cache = ($ARGV[0] // q(1)) eq q(1) ? 1 : 0;
open(my $sock, '+<&=', 3) or die "gearbridge epn: fd 3: $!\n";
binmode($sock);

pipe(my $wake_r, my $wake_w) or die "gearbridge epn: pipe: $!\n";
for my $fh ($wake_r, $wake_w) {
    my $flags = fcntl($fh, Fcntl::F_GETFL(), 0);
    fcntl($fh, Fcntl::F_SETFL(), $flags | Fcntl::O_NONBLOCK());
}
sub on_child { syswrite($wake_w, 'c') }

# Modules a plugin loads at run time (Monitoring::Plugin loads most of its
# parts on first use) would be loaded again by every child. Children report
# them through this pipe and the server loads them too, so that the next
# children find them loaded.
pipe(my $learn_r, my $learn_w) or die "gearbridge epn: pipe: $!\n";
my %inc_at_fork;

my $inc_count = 0;

sub report_modules {
    return if $in_server || !$learn_w || keys(%INC) == $inc_count;
    my @new = grep { /\.pm\z/ && !$inc_at_fork{$_} && defined $INC{$_} && !ref $INC{$_} } keys %INC;
    my $buf = '';
    for my $m (@new) {
        if (length($buf) + length($m) + 1 > 4000) {    # one atomic write each
            syswrite($learn_w, $buf);
            $buf = '';
        }
        $buf .= "$m\n";
    }
    syswrite($learn_w, $buf) if length $buf;
    close($learn_w);
    $learn_w = undef;
}

# leave ends a child the way exit ends a script, minus perl's global
# destruction: END blocks run and STDOUT and STDERR are flushed, then the
# process ends with _exit. Global destruction in a forked copy of a large
# interpreter writes to most of its pages, which costs more than the plugin
# itself (objects still alive at exit are therefore not DESTROYed).
sub leave {
    my ($code) = @_;
    report_modules();
    my $end = B::end_av();
    if ($end && $end->isa('B::AV')) {
        for my $cv ($end->ARRAY) {
            eval { $cv->object_2svref->(); 1 } or print STDERR $@;
        }
    }
    STDOUT->flush;
    STDERR->flush;
    POSIX::_exit($code & 0xff);
}

my %learned;
my $learn_buf = '';

sub learn {
    my $n = sysread($learn_r, $learn_buf, 1 << 16, length $learn_buf);
    return unless $n;
    while ($learn_buf =~ s/\A([^\n]*)\n//) {
        my $m = $1;
        next if $learned{$m}++ || $INC{$m} || $m !~ m{\A[\w/]+\.pm\z};
        local $SIG{__WARN__} = sub { };
        local ($@, $!);
        eval { require $m };
        print STDERR "gearbridge epn: preload $m: $@" if $@;
    }
    $SIG{CHLD} = \&on_child;
    $SIG{PIPE} = 'IGNORE';
}
$SIG{CHLD} = \&on_child;
$SIG{PIPE} = 'IGNORE';
$SIG{INT}  = 'IGNORE';
$SIG{HUP}  = 'IGNORE';

my %running;    # pid => request id
my $server_cwd = do { require Cwd; Cwd::getcwd() } // '';
my %cache;      # path => { key, sub, pkg, err }
my $serial = 0;

sub send_frame {
    my $data = join("\0", @_);
    my $buf  = length($data) . "\n" . $data;
    while (length $buf) {
        my $n = syswrite($sock, $buf);
        if (!defined $n) {
            next if $!{EINTR} || $!{EAGAIN};
            POSIX::_exit(1);    # the worker is gone
        }
        substr($buf, 0, $n, '');
    }
}

# compile returns the plugin's sub, or undef and the classic ePN text.
sub compile {
    my ($path) = @_;
    my @st = stat($path);
    return (undef, qq(**ePN failed to compile $path: "cannot stat: $!"), undef) unless @st;
    my $key = join(':', $st[9], $st[7], $st[1], $st[0]);
    my $c = $cache{$path};
    if ($c && $c->{key} eq $key) {
        return ($c->{sub}, $c->{err}, $c->{pkg});
    }
    if ($c && $c->{pkg}) {
        forget($c->{pkg});
    }
    delete $cache{$path};
    my $src;
    if (open(my $fh, '<', $path)) {
        local $/;
        $src = <$fh>;
        close($fh);
    } else {
        return (undef, qq(**ePN failed to compile $path: "cannot read: $!"), undef);
    }
    # Text after __END__ or __DATA__ would end the wrapper too.
    $src =~ s/^__(?:END|DATA)__\b.*\z//ms;
    my $pkg  = 'Gearbridge::EPN::Plugin' . ++$serial;
    my $line = ($path =~ /["\n]/) ? "#line 1\n" : qq(#line 1 "$path"\n);
    # "#!/usr/bin/perl -w" turns warnings on for a script; here for the
    # plugin's own code only.
    my $w    = ($src =~ /\A#![^\n]*perl\S*[ \t]+-\w*w/) ? 'use warnings; ' : '';
    my $code = "package $pkg; ${w}sub {\n$line$src\n;}";
    my $sub;
    {
        local $SIG{__WARN__} = sub { print STDERR "gearbridge epn: compile $path: $_[0]" };
        local ($@, $!);
        $sub = Gearbridge::EPN::compile_string($code);
        if (!$sub || ref($sub) ne 'CODE') {
            my $err = $@ || 'the plugin did not compile to code';
            my @lines = grep { length } map { s/^\s+|\s+$//gr } split /\n/, $err;
            splice(@lines, 3) if @lines > 3;
            $err = join(' ', @lines);
            $sub = undef;
            $c = { key => $key, sub => undef, pkg => $pkg, err => qq(**ePN failed to compile $path: "$err") };
        } else {
            $c = { key => $key, sub => $sub, pkg => $pkg, err => undef };
        }
    }
    # A plugin's BEGIN blocks ran here: take back what the server relies on.
    $SIG{CHLD} = \&on_child;
    $SIG{PIPE} = 'IGNORE';
    select(STDOUT);
    $cache{$path} = $c if $use_cache;
    return ($c->{sub}, $c->{err}, $c->{pkg});
}

# forget drops a compiled plugin's package, so that recompiling a changed
# file (or use_perl_cache=no) does not pile up code in the server.
sub forget {
    my ($pkg) = @_;
    no strict 'refs';
    my ($parent, $leaf) = $pkg =~ /^(.*::)(\w+)$/;
    %{"${pkg}::"} = ();
    delete ${$parent}{"${leaf}::"};
}

sub run_request {
    my ($id, $path, $name, $cwd, $out, $err, $argc, @rest) = @_;
    my @args = splice(@rest, 0, $argc);
    my @env  = @rest;
    my ($sub, $cerr, $pkg) = compile($path);
    if (!$sub) {
        forget($pkg) if $pkg && !$use_cache;
        send_frame('compile', $id, $cerr);
        return;
    }
    # Without O_NONBLOCK, opening a FIFO whose reader has gone (the worker
    # gave up on the check) would block the server for good; with it the
    # open fails instead. The child gets blocking descriptors.
    my ($ofh, $efh);
    if (!sysopen($ofh, $out, O_WRONLY | O_NONBLOCK) || !sysopen($efh, $err, O_WRONLY | O_NONBLOCK)) {
        send_frame('fail', $id, "open output fifo: $!");
        return;
    }
    for my $fh ($ofh, $efh) {
        fcntl($fh, F_SETFL, fcntl($fh, F_GETFL, 0) & ~O_NONBLOCK);
    }
    if (keys(%INC) != $inc_count) {
        %inc_at_fork = %INC;
        $inc_count   = keys %INC;
    }
    my $pid = fork();
    if (!defined $pid) {
        send_frame('fail', $id, "fork: $!");
        return;
    }
    if ($pid == 0) {
        child($sub, $ofh, $efh, $path, $name, $cwd, \@args, \@env);
    }
    POSIX::setpgid($pid, $pid);    # also done by the child: no race with a kill
    close($ofh);
    close($efh);
    forget($pkg) if !$use_cache;
    $running{$pid} = $id;
    send_frame('started', $id, $pid);
}

sub child {
    my ($sub, $ofh, $efh, $path, $name, $cwd, $args, $env) = @_;
    $in_server = 0;
    POSIX::setpgid(0, 0);
    # Only what the server changed; every touched page costs a copy here.
    $SIG{$_} = 'DEFAULT' for qw(CHLD PIPE INT HUP);
    close($sock);
    close($wake_r);
    close($wake_w);
    close($learn_r);
    open(STDIN,  '<',  '/dev/null');
    open(STDOUT, '>&', $ofh) or POSIX::_exit(70);
    open(STDERR, '>&', $efh) or POSIX::_exit(70);
    close($ofh);
    close($efh);
    # The plugin's environment replaces the server's; unchanged entries are
    # left alone (each change rewrites the process environment).
    my %want;
    for my $kv (@$env) {
        my ($k, $v) = split(/=/, $kv, 2);
        $want{$k} = $v // '';
    }
    for my $k (keys %ENV) {
        delete $ENV{$k} unless exists $want{$k};
    }
    while (my ($k, $v) = each %want) {
        $ENV{$k} = $v unless defined $ENV{$k} && $ENV{$k} eq $v;
    }
    chdir($cwd) if length $cwd && $cwd ne $server_cwd;
    $0    = $name;
    @ARGV = @$args;
    ($/, $\, $,) = ("\n", undef, undef);
    $@ = '';
    $! = 0;
    $? = 0;
    my $ok = eval { $sub->(@ARGV); 1 };
    if (!$ok) {
        # As perl does for an uncaught die: $! if set, else $? >> 8, else 255.
        my ($e, $errno, $status) = ($@, $! + 0, $? >> 8);
        print STDERR $e;
        leave($errno || $status || 255);
    }
    leave(0);
}

sub reap {
    while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
        my $id = delete $running{$pid};
        send_frame('exit', $id, $?) if defined $id;
    }
}

my $in = '';
while (1) {
    my $rin = '';
    vec($rin, fileno($sock),   1) = 1;
    vec($rin, fileno($wake_r), 1) = 1;
    vec($rin, fileno($learn_r), 1) = 1;
    my $n = select(my $rout = $rin, undef, undef, 1);
    if ($n > 0 && vec($rout, fileno($wake_r), 1)) {
        1 while sysread($wake_r, my $junk, 512);
    }
    learn() if $n > 0 && vec($rout, fileno($learn_r), 1);
    reap();
    next unless $n > 0 && vec($rout, fileno($sock), 1);
    my $got = sysread($sock, $in, 1 << 16, length $in);
    if (!defined $got) {
        next if $!{EINTR} || $!{EAGAIN};
        last;
    }
    last if $got == 0;
    while ($in =~ /\A(\d+)\n/ && length($in) >= length($1) + 1 + $1) {
        my $len   = $1;
        my $frame = substr($in, length($len) + 1, $len);
        substr($in, 0, length($len) + 1 + $len, '');
        my ($op, @f) = split(/\0/, $frame, -1);
        if ($op eq 'run') {
            run_request(@f);
        } else {
            send_frame('fail', $f[0] // '', "unknown request $op");
        }
    }
}

# The worker closed the socket: stop what still runs and leave.
kill('KILL', -$_) for keys %running;
POSIX::_exit(0);
