package modgearman

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Result types of the type= line. Only [ResultPassive] changes how the core
// treats a result; anything else, including no type line at all (C worker),
// is an active check.
const (
	ResultActive  = "active"
	ResultPassive = "passive"
)

// Result is a check result as workers, send_gearman and send_multi send it to
// the NEB's result queue (specification §2.6, §2.7). Output holds real LFs;
// the wire form escapes them.
type Result struct {
	// Type is the type= value: [ResultActive], [ResultPassive], or "" when
	// the sender wrote no type line (C worker).
	Type string

	HostName           string
	ServiceDescription string // empty for host results

	// CoreStartTime echoes the job's core_time; the NEB computes latency
	// from it. The zero time means absent.
	CoreStartTime time.Time
	StartTime     time.Time // zero means absent (the NEB uses "now")
	FinishTime    time.Time // zero means absent (the NEB uses "now")

	// Latency is extra latency added by send_gearman; HasLatency tells an
	// explicit latency=0.000000 from an absent key.
	Latency    time.Duration
	HasLatency bool

	ReturnCode int
	// ExitedOK is exited_ok=1. It defaults to true when the key is absent:
	// send_gearman never sends it and its results are not failures.
	ExitedOK bool
	// EarlyTimeout is early_timeout=1 (the core reports a timeout). No
	// known worker sends it.
	EarlyTimeout bool

	Source string // informational, e.g. "Mod-Gearman Worker @ <id>"
	Output string // plugin output: first line, long output, perfdata after '|'

	// Extra holds keys this package does not know (check_options,
	// scheduled_check, …) in input order.
	Extra []KV
}

// IsPassive reports whether the core must treat the result as a passive
// check (type=passive).
func (r Result) IsPassive() bool { return r.Type == ResultPassive }

// ParseResult parses the decoded text of a check result (see
// [Codec.Decode]), in any key order: Go worker, C worker (no type line,
// service_description after source) and send_gearman.
//
// Lines are split as by [ParseJob] and parsing stops at the first empty line
// or NUL. host_name (non-empty) and output (possibly empty) are required; a
// missing one is what a wrong key or a foreign payload looks like, so the
// error names the key and points at the encryption settings. An empty value
// of any other key counts as absent. Integers and timestamps must be well
// formed; the error names the line and key. exited_ok, early_timeout: any
// non-zero integer is true.
func ParseResult(plain []byte) (Result, error) {
	r := Result{ExitedOK: true}
	var hasOutput bool
	err := scanLines(plain, func(_ int, key, value string) error {
		if key == "output" {
			r.Output, hasOutput = value, true
			return nil
		}
		if value == "" {
			return nil
		}
		var err error
		switch key {
		case "type":
			r.Type = value
		case "host_name":
			r.HostName = value
		case "service_description":
			r.ServiceDescription = value
		case "core_start_time":
			r.CoreStartTime, err = ParseTime(value)
		case "start_time":
			r.StartTime, err = ParseTime(value)
		case "finish_time":
			r.FinishTime, err = ParseTime(value)
		case "latency":
			r.Latency, err = parseDuration(value)
			r.HasLatency = err == nil
		case "return_code":
			r.ReturnCode, err = strconv.Atoi(value)
		case "exited_ok":
			r.ExitedOK, err = parseFlag(value)
		case "early_timeout":
			r.EarlyTimeout, err = parseFlag(value)
		case "source":
			r.Source = value
		default:
			r.Extra = append(r.Extra, KV{Key: key, Value: value})
		}
		return err
	})
	if err != nil {
		return Result{}, fmt.Errorf("parse result: %w", err)
	}
	switch {
	case r.HostName == "":
		return Result{}, errors.New(`parse result: missing key "host_name" (check your encryption settings)`)
	case !hasOutput:
		return Result{}, errors.New(`parse result: missing key "output" (check your encryption settings)`)
	}
	return r, nil
}

func parseFlag(value string) (bool, error) {
	n, err := strconv.Atoi(value)
	return n != 0, err
}

// Marshal returns the result in the Go worker's form, the reference for new
// senders (specification §2.6):
//
//	type=active            (r.Type, or "active" when empty)
//	host_name=…
//	service_description=…  (only if set)
//	core_start_time=…      (only if set)
//	start_time=…           (only if set)
//	finish_time=…          (only if set)
//	latency=…              (only if HasLatency)
//	return_code=…
//	exited_ok=0|1
//	early_timeout=1        (only if set)
//	source=…               (only if set)
//	<Extra>                (empty values skipped)
//	output=…               (always, always last)
//
// The text ends with the LF of the output line and no empty line, like the
// Go worker; [Codec.Encode] appends the NUL that ends it for C receivers.
// Only LFs in values are escaped (backslashes are kept as they are; C
// send_gearman doubled them, the NEB no longer undoes that). CR is passed
// through unchanged.
func (r Result) Marshal() []byte {
	return r.marshal(ResultActive, false)
}

// MarshalPassive returns the result in the form of the C send_gearman tool:
// type (r.Type, or "passive" when empty), host_name, service_description
// (only if set), start_time, finish_time (only if set), latency (always,
// 0.000000 by default), return_code, source (only if set), Extra, output,
// then one empty line. CoreStartTime, ExitedOK and EarlyTimeout are not
// written (send_gearman has no such options). Escaping is as for
// [Result.Marshal].
//
// The order puts service_description right after host_name, which is the
// byte layout of the verified send_gearman vector of specification §3.5.
func (r Result) MarshalPassive() []byte {
	return r.marshal(ResultPassive, true)
}

func (r Result) marshal(defaultType string, passive bool) []byte {
	b := make([]byte, 0, 256+len(r.Output))
	str := func(key, v string) {
		if v != "" {
			b = appendLine(b, key, v)
		}
	}
	tm := func(key string, t time.Time) {
		if !t.IsZero() && t.UnixMicro() != 0 {
			b = appendLine(b, key, FormatTime(t))
		}
	}
	typ := r.Type
	if typ == "" {
		typ = defaultType
	}
	str("type", typ)
	str("host_name", r.HostName)
	str("service_description", r.ServiceDescription)
	if !passive {
		tm("core_start_time", r.CoreStartTime)
	}
	tm("start_time", r.StartTime)
	tm("finish_time", r.FinishTime)
	if passive || r.HasLatency {
		str("latency", formatDuration(r.Latency))
	}
	str("return_code", strconv.Itoa(r.ReturnCode))
	if !passive {
		str("exited_ok", boolDigit(r.ExitedOK))
		if r.EarlyTimeout {
			str("early_timeout", "1")
		}
	}
	str("source", r.Source)
	for _, kv := range r.Extra {
		str(kv.Key, kv.Value)
	}
	b = appendLine(b, "output", r.Output)
	if passive {
		b = append(b, '\n')
	}
	return b
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
}
