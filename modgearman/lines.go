package modgearman

import (
	"bytes"
	"fmt"
)

// KV is a key=value line that the parsers do not know, kept in input order.
type KV struct {
	Key   string
	Value string // unescaped (backslash-n already turned into LF)
}

// lineFunc receives one key=value line; lineNo is 1-based.
type lineFunc func(lineNo int, key, value string) error

// scanLines calls fn for each key=value line of text until the first empty
// line, the first NUL or the end of text. A non-empty line without '=' or
// with an empty key is an error naming the line. Values are unescaped.
func scanLines(text []byte, fn lineFunc) error {
	text = cutAtNUL(text)
	for lineNo := 1; len(text) > 0; lineNo++ {
		line := text
		if i := bytes.IndexByte(text, '\n'); i >= 0 {
			line, text = text[:i], text[i+1:]
		} else {
			text = nil
		}
		if len(line) == 0 {
			return nil
		}
		key, value, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return fmt.Errorf("line %d: no '=' in line", lineNo)
		}
		if len(key) == 0 {
			return fmt.Errorf("line %d: empty key", lineNo)
		}
		if err := fn(lineNo, string(key), UnescapeNewlines(string(value))); err != nil {
			return fmt.Errorf("line %d: key %q: %w", lineNo, key, err)
		}
	}
	return nil
}

// appendLine appends "key=value\n" with value escaped.
func appendLine(b []byte, key, value string) []byte {
	b = append(b, key...)
	b = append(b, '=')
	b = append(b, EscapeNewlines(value)...)
	return append(b, '\n')
}
