package gearman

import "fmt"

// MaxUniqueLen is the longest unique key gearmand 1.1.20 accepts; a longer
// one is answered with ERROR ARGUMENT_TOO_LARGE.
const MaxUniqueLen = 64

// MaxFunctionLen is the longest function name libgearman 1.1.20, the
// library of the classic NEB and workers, lets through ("function name
// longer then GEARMAN_MAX_FUNCTION_SIZE"). gearmand itself took a 1000-byte
// name in our probe; this package holds names to the classic limit.
const MaxFunctionLen = 512

// MaxClientIDLen is the longest client ID gearmand 1.1.20 keeps: it cuts a
// longer SET_CLIENT_ID to its first 127 bytes without a word.
const MaxClientIDLen = 127

// ValidFunctionName returns nil if name can be used as a function (queue)
// name by gearmand and the classic system alike: 1 to MaxFunctionLen bytes
// with no NUL, no ASCII whitespace and no control byte (below 0x20, or
// DEL). gearmand takes names with spaces or control bytes, but prints them
// raw in the text admin protocol, where "status" and "workers" split
// fields on whitespace and lines on LF, so such a queue cannot be
// monitored. Bytes from 0x80 up (UTF-8) are allowed. The error wraps
// ErrInvalidArgument, so Permanent reports it as permanent.
//
// Client and WorkerConn check only what the binary protocol cannot carry
// (an empty or over-long name, a NUL), so that they still reach queues
// named by older setups; callers that take names from configuration or
// from jobs check them with ValidFunctionName. Admin.MaxQueue, which sends
// the name in the text protocol, applies it.
func ValidFunctionName(name string) error {
	if err := checkFunction(name); err != nil {
		return err
	}
	if i := indexUnprintable(name); i >= 0 {
		return fmt.Errorf("%w: function name %q has %s at byte %d", ErrInvalidArgument, name, describeByte(name[i]), i)
	}
	return nil
}

// ValidClientID returns nil if id can be sent with SET_CLIENT_ID (the ID
// the admin command "workers" shows; Mod-Gearman workers send their
// identifier) and comes back unchanged: 1 to MaxClientIDLen bytes with no
// NUL, no ASCII whitespace and no control byte. WorkerConn.SetClientID and
// DialWorker refuse anything else. The error wraps ErrInvalidArgument.
//
// What gearmand 1.1.20 does with other IDs (TestClientIDOnGearmand): it
// never refuses one, never answers SET_CLIENT_ID and keeps the connection
// open, so a bad ID fails silently. It keeps only the first 127 bytes and
// stops at the first NUL. It prints the rest raw in "workers" lines of the
// form "FD IP CLIENT-ID : functions": a space or tab makes the ID look like
// several fields (a lone ":" even like the separator), a newline splits the
// line in two, a control byte goes out as is, and an empty ID leaves an
// empty column; ParseWorkers cannot read the last two.
func ValidClientID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: empty client id", ErrInvalidArgument)
	case len(id) > MaxClientIDLen:
		return fmt.Errorf("%w: client id of %d bytes; gearmand keeps only %d", ErrInvalidArgument, len(id), MaxClientIDLen)
	}
	if i := indexUnprintable(id); i >= 0 {
		return fmt.Errorf("%w: client id %q has %s at byte %d", ErrInvalidArgument, id, describeByte(id[i]), i)
	}
	return nil
}

// indexUnprintable returns the index of the first NUL, ASCII whitespace,
// control byte or DEL in s, or -1.
func indexUnprintable(s string) int {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return i
		}
	}
	return -1
}

func describeByte(c byte) string {
	switch c {
	case 0:
		return "a NUL"
	case ' ':
		return "a space"
	case '\t', '\n', '\v', '\f', '\r':
		return fmt.Sprintf("whitespace %q", c)
	}
	return fmt.Sprintf("control byte 0x%02x", c)
}

// validArg reports whether s can be sent as a NUL-separated argument.
func validArg(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return false
		}
	}
	return true
}

func checkFunction(fn string) error {
	if fn == "" || len(fn) > MaxFunctionLen || !validArg(fn) {
		return fmt.Errorf("%w: function name %q", ErrInvalidArgument, fn)
	}
	return nil
}

func checkUnique(u string) error {
	if len(u) > MaxUniqueLen || !validArg(u) {
		return fmt.Errorf("%w: unique key %q", ErrInvalidArgument, u)
	}
	return nil
}
