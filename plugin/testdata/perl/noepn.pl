#!/usr/bin/perl
# nagios: -epn
# Opts out of the embedded Perl server: reports whether it runs in a
# process of its own (its parent is not a Perl server).
open(my $fh, '<', "/proc/" . getppid() . "/cmdline") or die "ppid: $!";
my $cmd = do { local $/; <$fh> };
print(($cmd =~ /Gearbridge::EPN/ ? "embedded" : "executed") . "\n");
exit 0;
