package modgearman

import "bytes"

// KeySize is the size of an AES-256 key in bytes.
const KeySize = 32

// Key is a Mod-Gearman AES-256 key: the configured secret copied byte by byte
// and zero-filled to 32 bytes. There is no key derivation.
type Key [KeySize]byte

// NewKey builds the key for the configured secret s (option key= or
// password=). Bytes beyond the 32nd are ignored, as the classic
// implementations silently truncate long keys.
func NewKey(s string) Key {
	var k Key
	copy(k[:], s)
	return k
}

// KeyFromFile returns the secret stored in a key file (option keyfile= or
// passwordfile=) following the C rule: only the first line counts, only its
// first 32 bytes, and trailing spaces, tabs, CR and LF are removed. Like the C
// string handling, the secret also ends at the first NUL byte.
//
// The Go worker instead uses the whole file minus one trailing LF; the two
// differ for files with several lines, CRLF line ends or trailing blanks, and
// gearbridge follows the C rule (specification §3.1, §11).
func KeyFromFile(content []byte) string {
	line := content
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if len(line) > KeySize {
		line = line[:KeySize]
	}
	if i := bytes.IndexByte(line, 0); i >= 0 {
		line = line[:i]
	}
	return string(bytes.TrimRight(line, " \t\r\n"))
}
