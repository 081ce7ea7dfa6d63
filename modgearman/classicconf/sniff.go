package classicconf

import (
	"bytes"
	"strings"
)

// Sniff reports whether data looks like a classic key=value configuration
// file rather than YAML, so that a program taking either can decide by
// content instead of by file name. It looks at the first line that is
// neither blank nor a comment: key=value, --key=value and a bare --flag are
// classic; anything else (key: value, ---, - item, a flow mapping) is not.
// found is false when there is no such line (an empty file, or only
// comments): then nothing tells the two apart.
//
// Sniff only decides which parser to use; that parser still reports every
// bad line.
func Sniff(data []byte) (classic, found bool) {
	data = bytes.TrimPrefix(data, utf8BOM)
	for line := range strings.SplitSeq(string(data), "\n") {
		line = trim(line)
		if line == "" || line[0] == '#' {
			continue
		}
		return looksClassic(line), true
	}
	return false, false
}

// looksClassic reports whether one trimmed, non-comment line is a classic
// option line.
func looksClassic(line string) bool {
	rest := strings.TrimLeft(line, "-")
	dashed := len(rest) < len(line)
	key, _, hasValue := strings.Cut(rest, "=")
	if hasValue {
		key = trim(key)
	} else if !dashed {
		return false // a bare word: neither an option nor a YAML mapping
	}
	return isOptionName(key)
}

// isOptionName reports whether s could be an option name: letters, digits,
// '_' and '-'. A YAML key is followed by ':', which is not among them.
func isOptionName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
		default:
			return false
		}
	}
	return true
}
