#!/usr/bin/perl
# nagios: +epn
# Sets a global and exits: a second run must not see the first run's value.
our $seen;
$main::count++;
my $was = defined $seen ? "leaked $seen" : "clean";
$seen = "run $$";
print "global: $was count=$main::count env=" . ($ENV{EPN_TEST} // 'unset') . " args=@ARGV\n";
exit 0;
