package sender

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseLine parses one line of send_gearman's third input mode:
//
//	host<D>service<D>return code<D>output   (service result)
//	host<D>return code<D>output             (host result)
//
// As in C send_gearman (strtok), delim is a set of characters: any of them
// separates fields, runs of them count as one, and leading ones are
// skipped. The output runs to the end of the line and may contain delimiter
// characters. A trailing CR (CRLF input) is removed.
//
// The two forms are told apart by where the return code is: when the line
// has a fourth field and the third field is a return code, it is a service
// result; otherwise the second field must be the return code. (A line such
// as "web1<D>0<D>2<D>text" is therefore service "0" with return code 2.)
// A service result may have empty output; a host result needs at least the
// return code. The caller fills in times, latency and type.
func ParseLine(line, delim string) (Result, error) {
	if delim == "" {
		delim = "\t"
	}
	line = strings.TrimSuffix(line, "\r")
	host, rest := nextField(line, delim)
	if host == "" {
		return Result{}, fmt.Errorf("%w: no host name", ErrInvalid)
	}
	f2, afterF2 := nextField(rest, delim)
	f3, afterF3 := nextField(afterF2, delim)
	rest4 := skipDelims(afterF3, delim)
	if rc, ok := returnCode(f3); ok && f2 != "" {
		if _, f2rc := returnCode(f2); !f2rc || rest4 != "" {
			return Result{Host: host, Service: f2, ReturnCode: rc, Output: rest4}, nil
		}
	}
	if f2 == "" {
		return Result{}, fmt.Errorf("%w: host %q: no return code", ErrInvalid, host)
	}
	rc, ok := returnCode(f2)
	if !ok {
		if f3 != "" {
			if _, err := strconv.Atoi(f3); err == nil {
				return Result{}, fmt.Errorf("%w: host %q service %q: return code %s is not 0..3", ErrInvalid, host, f2, f3)
			}
		}
		return Result{}, fmt.Errorf("%w: host %q: %q is not a return code 0..3", ErrInvalid, host, f2)
	}
	return Result{Host: host, ReturnCode: rc, Output: skipDelims(afterF2, delim)}, nil
}

// nextField skips leading delimiter characters and returns the field up to
// the next delimiter character and the text after the field.
func nextField(s, delim string) (field, rest string) {
	s = skipDelims(s, delim)
	if i := strings.IndexAny(s, delim); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

func skipDelims(s, delim string) string {
	return strings.TrimLeft(s, delim)
}

// returnCode parses a return code 0..3 written as a plain decimal number.
func returnCode(s string) (int, bool) {
	if s == "" || len(s) > 3 {
		return 0, false
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 3 || strings.HasPrefix(s, "+") {
		return 0, false
	}
	return n, true
}
