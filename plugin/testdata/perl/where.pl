#!/usr/bin/perl
# Has no marker: embedded only with use_embedded_perl_implicitly.
open(my $fh, '<', "/proc/" . getppid() . "/cmdline") or die "ppid: $!";
my $cmd = do { local $/; <$fh> };
print(($cmd =~ /Gearbridge::EPN/ ? "embedded" : "executed") . " pid=$$ cwd=" . `pwd`);
exit 1;
