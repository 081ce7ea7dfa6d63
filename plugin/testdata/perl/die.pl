#!/usr/bin/perl
# nagios: +epn
print "before the die\n";
die "plugin died here\n";
