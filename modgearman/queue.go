package modgearman

import "fmt"

// MaxQueueNameLen is the longest queue name libgearman, the library of the
// classic NEB and workers, lets through.
const MaxQueueNameLen = 512

// ValidQueueName returns nil if name can serve as a Gearman queue (function)
// name across the classic system: 1 to MaxQueueNameLen bytes with no NUL,
// no ASCII whitespace and no control byte (below 0x20, or DEL); bytes from
// 0x80 up (UTF-8) are allowed. gearmand takes other names but prints them
// raw in its text admin protocol, which splits fields on whitespace and
// lines on LF, so such a queue cannot be watched; names with a NUL or over
// the limit cannot be sent at all.
//
// It is the same rule as gearman.ValidFunctionName, kept here because the
// payload codec must not depend on the protocol package; a test of the
// worker, which imports both, holds the two to the same answers.
func ValidQueueName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("queue name is empty")
	case len(name) > MaxQueueNameLen:
		return fmt.Errorf("queue name %q… of %d bytes is longer than %d", name[:32], len(name), MaxQueueNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c == 0x7f {
			return fmt.Errorf("queue name %q has %s at byte %d", name, describeByte(c), i)
		}
	}
	return nil
}

// describeByte names a byte that ValidQueueName refuses.
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
