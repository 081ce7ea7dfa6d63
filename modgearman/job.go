package modgearman

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// JobType is the value of a job's type= line.
type JobType string

// The job types the NEB sends to workers.
const (
	JobHost         JobType = "host"
	JobService      JobType = "service"
	JobEventHandler JobType = "eventhandler"
	JobNotification JobType = "notification"
)

func (t JobType) known() bool {
	switch t {
	case JobHost, JobService, JobEventHandler, JobNotification:
		return true
	}
	return false
}

// Job is a check, event handler or notification job as the NEB sends it to a
// worker (specification §2.2–§2.5). String values hold real LFs; the wire
// form escapes them. Zero values mean "absent": [Job.Marshal] omits them and
// [ParseJob] treats an empty value like a missing key.
type Job struct {
	Type        JobType
	ResultQueue string // queue for the result (host and service checks)
	TargetQueue string // queue the job was submitted to (informational)

	HostName           string
	ServiceDescription string // service checks only

	// CoreTime is the planned start of the check on the core; workers echo
	// it as the result's core_start_time and judge max-age by it.
	CoreTime time.Time
	// Timeout is the check timeout, in whole seconds on the wire.
	Timeout     time.Duration
	CommandLine string

	// StartTime is sent for event handlers and notifications (and by old
	// NEBs for checks).
	StartTime time.Time

	// Notification fields.
	Contact          string
	PluginOutput     string
	LongPluginOutput string

	// Legacy keys of old NEBs, still accepted and round-tripped.
	NextCheck      time.Time
	CheckOptions   int
	ScheduledCheck bool
	Latency        time.Duration

	// Extra holds keys this package does not know, in input order.
	Extra []KV
}

// ParseJob parses the decoded text of a job (see [Codec.Decode]).
//
// Lines are split on LF and each line at its first '='; parsing stops at the
// first empty line or NUL. A line without '=' is an error. Values are
// unescaped (backslash-'n' becomes LF) and not trimmed (so CRLF text fails);
// an empty value counts as absent (the C worker stops parsing there instead;
// senders never write empty values, so only malformed input differs). When a
// key repeats, the last value wins, except for unknown keys, which are all
// kept in Extra. Integers and timestamps must be well formed (see
// [ParseTime]), and result_queue must pass [ValidQueueName]; the error
// names the line and key. Finally the job must pass [Job.Validate].
func ParseJob(plain []byte) (Job, error) {
	var j Job
	err := scanLines(plain, func(_ int, key, value string) error {
		if value == "" {
			return nil
		}
		var err error
		switch key {
		case "type":
			j.Type = JobType(value)
			if !j.Type.known() {
				return fmt.Errorf("unknown job type %q", value)
			}
		case "result_queue":
			// The worker submits the result to this queue: a name gearmand
			// cannot take would fail every submit, so the job is refused
			// here, before it runs.
			j.ResultQueue = value
			err = ValidQueueName(value)
		case "target_queue":
			j.TargetQueue = value
		case "host_name":
			j.HostName = value
		case "service_description":
			j.ServiceDescription = value
		case "core_time":
			j.CoreTime, err = ParseTime(value)
		case "timeout":
			var n int64
			n, err = strconv.ParseInt(value, 10, 32)
			if err == nil && n < 0 {
				err = errors.New("negative timeout")
			}
			j.Timeout = time.Duration(n) * time.Second
		case "command_line":
			j.CommandLine = value
		case "start_time":
			j.StartTime, err = ParseTime(value)
		case "contact":
			j.Contact = value
		case "plugin_output":
			j.PluginOutput = value
		case "long_plugin_output":
			j.LongPluginOutput = value
		case "next_check":
			j.NextCheck, err = ParseTime(value)
		case "check_options":
			j.CheckOptions, err = strconv.Atoi(value)
		case "scheduled_check":
			var n int
			n, err = strconv.Atoi(value)
			j.ScheduledCheck = n != 0
		case "latency":
			j.Latency, err = parseDuration(value)
		default:
			j.Extra = append(j.Extra, KV{Key: key, Value: value})
		}
		return err
	})
	if err != nil {
		return Job{}, fmt.Errorf("parse job: %w", err)
	}
	if err := j.Validate(); err != nil {
		return Job{}, fmt.Errorf("parse job: %w", err)
	}
	return j, nil
}

// Validate checks that the job has a known type, a result_queue (when set)
// that passes [ValidQueueName], and the keys a worker needs: host_name and
// command_line for host checks, additionally service_description for
// service checks, and command_line for event handlers and notifications.
// The error names the key.
func (j Job) Validate() error {
	if j.Type == "" {
		return errors.New(`missing key "type"`)
	}
	if !j.Type.known() {
		return fmt.Errorf("unknown job type %q", string(j.Type))
	}
	if j.ResultQueue != "" {
		if err := ValidQueueName(j.ResultQueue); err != nil {
			return fmt.Errorf("result_queue: %w", err)
		}
	}
	var required []string
	switch j.Type {
	case JobHost:
		required = []string{"host_name", "command_line"}
	case JobService:
		required = []string{"host_name", "service_description", "command_line"}
	default:
		required = []string{"command_line"}
	}
	for _, key := range required {
		var v string
		switch key {
		case "host_name":
			v = j.HostName
		case "service_description":
			v = j.ServiceDescription
		case "command_line":
			v = j.CommandLine
		}
		if v == "" {
			return fmt.Errorf("missing key %q for %s job", key, j.Type)
		}
	}
	return nil
}

// Marshal returns the job's wire text, byte-compatible with the NEB: keys in
// the order type, result_queue, target_queue, host_name,
// service_description, start_time, core_time, timeout, contact,
// command_line, plugin_output, long_plugin_output (which yields the exact
// orders of specification §2.2–§2.5), then the legacy keys next_check,
// check_options, scheduled_check, latency, then Extra; the text ends with two
// empty lines ("\n\n\n" after the last value).
//
// Zero values are omitted (an empty value would end the C worker's parser;
// a time at the epoch counts as zero, a duration under 1 µs too),
// timestamps have six decimals, Timeout is written in whole seconds, and LFs
// in values are escaped. Marshal does not validate; see [Job.Validate].
// Values must not contain NUL, and a literal backslash-'n' in a value reads
// back as an LF.
func (j Job) Marshal() []byte {
	b := make([]byte, 0, 256+len(j.CommandLine)+len(j.PluginOutput)+len(j.LongPluginOutput))
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
	str("type", string(j.Type))
	str("result_queue", j.ResultQueue)
	str("target_queue", j.TargetQueue)
	str("host_name", j.HostName)
	str("service_description", j.ServiceDescription)
	tm("start_time", j.StartTime)
	tm("core_time", j.CoreTime)
	if s := int64(j.Timeout / time.Second); s > 0 {
		str("timeout", strconv.FormatInt(s, 10))
	}
	str("contact", j.Contact)
	str("command_line", j.CommandLine)
	str("plugin_output", j.PluginOutput)
	str("long_plugin_output", j.LongPluginOutput)
	tm("next_check", j.NextCheck)
	if j.CheckOptions != 0 {
		str("check_options", strconv.Itoa(j.CheckOptions))
	}
	if j.ScheduledCheck {
		str("scheduled_check", "1")
	}
	if j.Latency.Microseconds() != 0 {
		str("latency", formatDuration(j.Latency))
	}
	for _, kv := range j.Extra {
		str(kv.Key, kv.Value)
	}
	return append(b, '\n', '\n')
}
