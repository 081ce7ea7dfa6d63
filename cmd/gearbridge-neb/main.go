// Command gearbridge-neb is the broker module for Naemon and Nagios 4,
// built with -buildmode=c-shared into bin/gearbridge_neb.so (Naemon, NEB API
// 8) and bin/gearbridge_neb_nagios4.so (Nagios 4.4, API 4, build tag
// nagios4).
//
// The module is not implemented yet (issue 5). Until it is, nebmodule_init
// logs that and returns an error, so the core refuses to load it instead of
// silently running checks locally.
package main

/*
int gearbridge_neb_placeholder(void);
*/
import "C"

func main() {}

// keep the C shim linked in.
var _ = C.gearbridge_neb_placeholder
