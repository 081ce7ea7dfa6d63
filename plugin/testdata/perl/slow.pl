#!/usr/bin/perl
# nagios: +epn
$| = 1;
print "started\n";
sleep($ARGV[0] // 30);
print "finished\n";
exit 0;
