//go:build nagios4

package main

// #cgo CFLAGS: -DGEARBRIDGE_NAGIOS4
import "C"

// cancelHonoured: Nagios 4.4 ignores CANCEL at the INITIATE events, so a
// check that cannot be submitted gets an explicit result instead.
const cancelHonoured = false

const coreName = "Nagios 4"
