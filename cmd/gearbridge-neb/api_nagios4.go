//go:build nagios4

package main

// #cgo CFLAGS: -DGEARBRIDGE_NAGIOS4
import "C"
