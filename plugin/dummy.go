package plugin

import (
	"strconv"
	"strings"
	"time"
)

// InternalDummy answers a check_dummy command line without starting a
// process (internal_check_dummy, spec §4.3). ok is false when the line is
// not one it handles; the caller then runs it for real.
//
// Handled are lines that Parse splits without a shell, whose program ends in
// "/check_dummy" and whose first argument is not an option. The result is
// what the monitoring-plugins check_dummy prints: state 0..3 gives
// "OK", "WARNING", "CRITICAL" or "UNKNOWN", followed by ": <text>" when a
// second argument is given (further arguments are ignored, as by
// check_dummy); any other state gives return code 3 and
// "UNKNOWN: Status <state> is not a supported error state".
func InternalDummy(commandLine string) (Result, bool) {
	argv, _, useShell := Parse(commandLine)
	return internalDummy(argv, useShell)
}

// internalDummy is InternalDummy for a command line Parse has split.
func internalDummy(argv []string, useShell bool) (Result, bool) {
	if useShell || len(argv) < 2 || !strings.HasSuffix(argv[0], "/check_dummy") ||
		strings.HasPrefix(argv[1], "-") {
		return Result{}, false
	}
	now := time.Now()
	res := Result{StartTime: now, FinishTime: now, ExitedOK: true}
	state := argv[1]
	rc, err := strconv.Atoi(state)
	if err != nil || rc < 0 || rc > 3 {
		res.ReturnCode = 3
		res.Output = "UNKNOWN: Status " + state + " is not a supported error state"
		return res, true
	}
	res.ReturnCode = rc
	res.Output = stateName(rc)
	if len(argv) > 2 {
		res.Output += ": " + argv[2]
	}
	res.Output = trimOutput(res.Output)
	return res, true
}

// stateName is the Nagios state label of return code 0..3.
func stateName(rc int) string {
	switch rc {
	case 0:
		return "OK"
	case 1:
		return "WARNING"
	case 2:
		return "CRITICAL"
	}
	return "UNKNOWN"
}
