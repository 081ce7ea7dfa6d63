#!/usr/bin/perl
# nagios: +epn
# Prints more than any test's output cap.
my $line = ("x" x 99) . "\n";
print $line for 1 .. 20000;
exit 2;
