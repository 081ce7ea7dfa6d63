#!/usr/bin/perl
# nagios: +epn
$| = 1;
print "looping\n";
1 while 1;
