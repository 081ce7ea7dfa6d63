package classicconf

import (
	"errors"
	"fmt"
)

// Sentinel errors for callers that branch on the kind of a parse error. They
// are matched with errors.Is through [Error.Err].
var (
	// ErrUnknownKey reports a key that is not in the option table.
	ErrUnknownKey = errors.New("unknown option")
	// ErrSyntax reports a line or argument that is not key=value, an empty
	// key, or a bare flag for an option that needs a value.
	ErrSyntax = errors.New("syntax error")
	// ErrInvalidValue reports a value the option does not accept.
	ErrInvalidValue = errors.New("invalid value")
	// ErrInclude reports a failed include: missing file, depth or cycle.
	ErrInclude = errors.New("include failed")
)

// Error is a parse error. It names where the offending option was found.
type Error struct {
	// File is the file name as given or resolved, "broker line" or
	// "command line". It is empty for [Config.Set].
	File string
	// Line is the 1-based line number in File, or the 1-based argument
	// position for the broker line and the command line. It is 0 when the
	// error concerns the file as a whole.
	Line int
	// Key is the key as written in the source (not lower-cased).
	Key string
	// Err is the cause.
	Err error
}

// Error formats the error as "file:line: key "name": cause".
func (e *Error) Error() string {
	s := ""
	switch {
	case e.File != "" && e.Line > 0:
		s = fmt.Sprintf("%s:%d: ", e.File, e.Line)
	case e.File != "":
		s = e.File + ": "
	}
	if e.Key != "" {
		s += fmt.Sprintf("key %q: ", e.Key)
	}
	return s + e.Err.Error()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// kindError is a cause that reads well inside [Error] ("value "7" out of
// range 0..3") but still matches its sentinel with errors.Is.
type kindError struct {
	kind  error
	msg   string
	cause error
}

func (e *kindError) Error() string {
	if e.cause != nil {
		return e.msg + ": " + e.cause.Error()
	}
	return e.msg
}

func (e *kindError) Is(target error) bool { return target == e.kind }

func (e *kindError) Unwrap() error { return e.cause }

func invalidf(format string, args ...any) error {
	return &kindError{kind: ErrInvalidValue, msg: fmt.Sprintf(format, args...)}
}

func syntaxf(format string, args ...any) error {
	return &kindError{kind: ErrSyntax, msg: fmt.Sprintf(format, args...)}
}

func includef(cause error, format string, args ...any) error {
	return &kindError{kind: ErrInclude, msg: fmt.Sprintf(format, args...), cause: cause}
}
