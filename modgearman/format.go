package modgearman

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// EscapeNewlines writes every LF in s as the two characters backslash and
// 'n'. Nothing else is escaped; backslashes are not doubled (the Go-worker
// rule, which the NEB since 5.1.4 expects).
func EscapeNewlines(s string) string {
	return strings.ReplaceAll(s, "\n", `\n`)
}

// UnescapeNewlines turns every backslash-'n' sequence of s back into an LF.
// It is the inverse of [EscapeNewlines] except for text that already
// contained a literal backslash-'n', which the wire format cannot express.
func UnescapeNewlines(s string) string {
	return strings.ReplaceAll(s, `\n`, "\n")
}

// FormatTime formats t as seconds since the epoch with six decimals
// ("1700000000.500000"), the way every classic sender writes timestamps.
// Sub-microsecond parts are truncated. The zero time is written as
// "0.000000", which receivers read as "not set".
func FormatTime(t time.Time) string {
	if t.IsZero() {
		return "0.000000"
	}
	return formatMicros(t.UnixMicro())
}

// maxTimeSeconds bounds parsed timestamps to the year 9999 so that every
// accepted value converts to a time.Time and back without overflow.
const maxTimeSeconds = 253402300799

// ParseTime parses a timestamp written as decimal seconds since the epoch,
// like C's string2timeval: "100.000050" is 100 s 50 µs, "100.5" is 100 s
// 500000 µs, "100" is 100 s. Digits beyond the sixth decimal are truncated.
// The empty string and zero give the zero time.Time (C treats both as
// "not set"); other results are in UTC.
//
// Unlike C's atof, ParseTime is strict: only an optional '-', digits and one
// '.' are allowed (no spaces, exponents or trailing text), and values beyond
// the year 9999 are rejected.
func ParseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	us, err := parseMicros(s, maxTimeSeconds)
	if err != nil {
		return time.Time{}, err
	}
	if us == 0 {
		return time.Time{}, nil
	}
	return time.UnixMicro(us).UTC(), nil
}

// maxDurationSeconds keeps durations (in nanoseconds) within int64.
const maxDurationSeconds = math.MaxInt64 / int64(time.Second)

func formatDuration(d time.Duration) string {
	return formatMicros(d.Microseconds())
}

func parseDuration(s string) (time.Duration, error) {
	us, err := parseMicros(s, maxDurationSeconds)
	if err != nil {
		return 0, err
	}
	if us > math.MaxInt64/1000 || us < -math.MaxInt64/1000 {
		return 0, fmt.Errorf("%q: out of range", s)
	}
	return time.Duration(us) * time.Microsecond, nil
}

func formatMicros(us int64) string {
	sign := ""
	u := uint64(us)
	if us < 0 {
		sign = "-"
		u = -u
	}
	return fmt.Sprintf("%s%d.%06d", sign, u/1e6, u%1e6)
}

var errNumber = errors.New("not a decimal number of seconds")

// parseMicros parses [-]digits[.digits] into microseconds; at least one digit
// is required and the whole seconds must not exceed maxSec.
func parseMicros(s string, maxSec int64) (int64, error) {
	rest := s
	neg := strings.HasPrefix(rest, "-")
	if neg {
		rest = rest[1:]
	}
	intPart, frac, _ := strings.Cut(rest, ".")
	if intPart == "" && frac == "" {
		return 0, fmt.Errorf("%q: %w", s, errNumber)
	}
	var sec int64
	for i := 0; i < len(intPart); i++ {
		d := intPart[i]
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("%q: %w", s, errNumber)
		}
		sec = sec*10 + int64(d-'0')
		if sec > maxSec {
			return 0, fmt.Errorf("%q: out of range", s)
		}
	}
	var us int64
	for i := 0; i < len(frac); i++ {
		d := frac[i]
		if d < '0' || d > '9' {
			return 0, fmt.Errorf("%q: %w", s, errNumber)
		}
		if i < 6 {
			us = us*10 + int64(d-'0')
		}
	}
	for i := len(frac); i < 6; i++ {
		us *= 10
	}
	total := sec*1e6 + us
	if neg {
		total = -total
	}
	return total, nil
}
