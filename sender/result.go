package sender

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/gearbridge/gearbridge/modgearman"
	pb "github.com/gearbridge/gearbridge/proto/gearbridge/v1"
)

// Sources written into the source= line of classic payloads.
const (
	SourceSendGearman = "send_gearman"
	SourceSendMulti   = "send_multi"
)

// Result is one passive (or, with Active, active) check result. Its
// strings are bytes as the classic wire carries them and need not be UTF-8.
// (The spool writes it in its own form, spoolResult.)
type Result struct {
	Host    string
	Service string // empty for a host result
	// ReturnCode is 0..3 (OK, WARNING, CRITICAL, UNKNOWN).
	ReturnCode int
	// Output is the plugin output with real newlines: first line, long
	// output, performance data after the pipe sign.
	Output string
	Start  time.Time
	Finish time.Time
	// Latency is reported to the core in addition to its own.
	Latency time.Duration
	// Active makes it an active result (type=active, send_gearman --active).
	Active bool
	// Source is the source= line of the classic payload; empty means
	// send_gearman. The bridge writes its own source for results it takes
	// over gRPC.
	Source string
}

// ErrInvalid marks a result that no receiver would accept.
var ErrInvalid = errors.New("invalid result")

// Validate checks what every receiver requires: a host name and a service
// without newline or NUL (they would break the key=value payload), and a
// return code 0..3.
func (r Result) Validate() error {
	switch {
	case r.Host == "":
		return fmt.Errorf("%w: empty host name", ErrInvalid)
	case strings.ContainsAny(r.Host, "\n\r\x00"):
		return fmt.Errorf("%w: host name %q contains a newline or NUL", ErrInvalid, r.Host)
	case strings.ContainsAny(r.Service, "\n\r\x00"):
		return fmt.Errorf("%w: service %q contains a newline or NUL", ErrInvalid, r.Service)
	case r.ReturnCode < 0 || r.ReturnCode > 3:
		return fmt.Errorf("%w: return code %d is not 0..3", ErrInvalid, r.ReturnCode)
	}
	return nil
}

// Classic returns the result as the classic payload codec models it; its
// MarshalPassive is the send_gearman form of specification §2.7.
func (r Result) Classic() modgearman.Result {
	typ := modgearman.ResultPassive
	if r.Active {
		typ = modgearman.ResultActive
	}
	src := r.Source
	if src == "" {
		src = SourceSendGearman
	}
	return modgearman.Result{
		Type:               typ,
		HostName:           r.Host,
		ServiceDescription: r.Service,
		StartTime:          r.Start,
		FinishTime:         r.Finish,
		Latency:            r.Latency,
		HasLatency:         true,
		ReturnCode:         r.ReturnCode,
		ExitedOK:           true,
		Source:             src,
		Output:             r.Output,
	}
}

// Proto returns the result as a ResultService message. The output is split
// into first line, performance data and long output as the message
// describes them; when that split would not rebuild the exact text (a
// trailing pipe, an empty first line), the whole text goes into output, so
// that the bridge's payload always carries the output byte for byte.
func (r Result) Proto() *pb.PassiveResult {
	ct := pb.CheckType_CHECK_TYPE_PASSIVE
	if r.Active {
		ct = pb.CheckType_CHECK_TYPE_ACTIVE
	}
	p := &pb.PassiveResult{
		HostName:           []byte(r.Host),
		ServiceDescription: []byte(r.Service),
		ReturnCode:         int32(r.ReturnCode),
		CheckType:          ct,
	}
	out, perf, long := splitOutput(r.Output)
	p.Output, p.PerfData, p.LongOutput = []byte(out), []byte(perf), []byte(long)
	if !r.Start.IsZero() {
		p.StartTime = timestamppb.New(r.Start)
	}
	if !r.Finish.IsZero() {
		p.FinishTime = timestamppb.New(r.Finish)
	}
	if r.Latency != 0 {
		p.Latency = durationpb.New(r.Latency)
	}
	return p
}

// splitOutput splits plugin output into the first line without its
// performance data, the performance data of the first line, and the
// remaining lines. It falls back to (out, "", "") when joinOutput would not
// give back out.
func splitOutput(out string) (first, perf, long string) {
	first, long, _ = strings.Cut(out, "\n")
	first, perf, _ = strings.Cut(first, "|")
	if first == "" || joinOutput(first, perf, long) != out {
		return out, "", ""
	}
	return first, perf, long
}

// joinOutput is how the bridge rebuilds the output of a PassiveResult.
func joinOutput(first, perf, long string) string {
	out := first
	if perf != "" {
		out += "|" + perf
	}
	if long != "" {
		out += "\n" + long
	}
	return out
}
