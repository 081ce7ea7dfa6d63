#!/usr/bin/perl
# nagios: +epn
# Never finishes compiling: its BEGIN block runs in the Perl server.
BEGIN { 1 while 1 }
print "never\n";
