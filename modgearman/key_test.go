package modgearman

import (
	"bytes"
	"strings"
	"testing"
)

func TestNewKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []byte
	}{
		{"empty", "", make([]byte, 32)},
		{"short", "test", append([]byte("test"), make([]byte, 28)...)},
		{"exact", strings.Repeat("k", 32), []byte(strings.Repeat("k", 32))},
		{"truncated", strings.Repeat("k", 32) + "ignored", []byte(strings.Repeat("k", 32))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := NewKey(tc.in)
			if !bytes.Equal(k[:], tc.want) {
				t.Errorf("NewKey(%q) = %x, want %x", tc.in, k, tc.want)
			}
		})
	}
}

// TestKeyFromFile uses the key files of C:t/data (spec §3.1) and the cases
// where the C and Go rules differ.
func TestKeyFromFile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		content string
		want    string
	}{
		{"test1.key", strings.Repeat("1", 30) + "\n", strings.Repeat("1", 30)},
		{"test2.key", "abcdef \nmore text\n", "abcdef"},
		{"test3.key", strings.Repeat("1", 40) + "\n", strings.Repeat("1", 32)},
		{"no newline", "secret", "secret"},
		{"CRLF", "secret\r\n", "secret"},
		{"trailing tabs and spaces", "secret \t \t\n", "secret"},
		{"leading blanks kept", "  secret\n", "  secret"},
		{"blank after 32 chars trimmed", strings.Repeat("a", 31) + "  x\n", strings.Repeat("a", 31)},
		{"empty", "", ""},
		{"empty first line", "\nsecret\n", ""},
		{"NUL ends the key", "sec\x00ret\n", "sec"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := KeyFromFile([]byte(tc.content)); got != tc.want {
				t.Errorf("KeyFromFile(%q) = %q, want %q", tc.content, got, tc.want)
			}
		})
	}
	k := NewKey(KeyFromFile([]byte(strings.Repeat("1", 30) + "\n")))
	if want := append(bytes.Repeat([]byte{0x31}, 30), 0, 0); !bytes.Equal(k[:], want) {
		t.Errorf("test1.key bytes = %x, want %x", k, want)
	}
}
