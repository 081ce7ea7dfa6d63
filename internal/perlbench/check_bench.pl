#!/usr/bin/perl
# nagios: +epn
# The Monitoring::Plugin check of gearbridge bench perl: state, text,
# perfdata and long output from its arguments.
use strict;
use warnings;
use Monitoring::Plugin;

my $np = Monitoring::Plugin->new(
    usage     => 'Usage: %s --state N [--text T] [--lines N]',
    shortname => 'MPCHECK',
);
$np->add_arg(spec => 'state=i', help => 'state to return', default => 0);
$np->add_arg(spec => 'text=s',  help => 'text',            default => 'all fine');
$np->add_arg(spec => 'lines=i', help => 'long output lines', default => 0);
$np->getopts;

$np->add_perfdata(label => 'time', value => 0.5, uom => 's', warning => 1, critical => 2);
$np->add_perfdata(label => 'args', value => scalar(@ARGV) + 0);
for my $i (1 .. $np->opts->lines) {
    $np->add_message(OK, "line $i of long output");
}
my $long = join("\n", map { "detail $_" } 1 .. $np->opts->lines);
print STDERR "note on stderr\n" if $np->opts->state;
$np->plugin_exit($np->opts->state, $np->opts->text . ($long ? "\n$long" : ''));
