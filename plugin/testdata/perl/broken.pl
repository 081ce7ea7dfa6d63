#!/usr/bin/perl
# nagios: +epn
use strict;
print "never printed\n";
my $x = ;
