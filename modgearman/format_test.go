package modgearman

import (
	"strings"
	"testing"
	"time"
)

// TestUniq uses the make_uniq and MD5 vectors of C:t/01-utils.c (spec §9).
func TestUniq(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  string
	}{
		{[]string{""}, "D41D8CD98F00B204E9800998ECF8427E"},
		{[]string{"The quick brown fox jumps over the lazy dog."}, "E4D909C290D0FB1CA068FFADDF22CBD0"},
		{[]string{"test - test"}, "3A9E4A6A2E66AF990948D81E004B3AC0"},
		{[]string{"test ", " test"}, "3A9E4A6A2E66AF990948D81E004B3AC0"},
		// The spec lists this digest for 200×"x", but it is the MD5 of
		// 192×"x" (checked with an independent MD5). Uniq hashes its whole
		// input; ids only need to be stable within one NEB (spec §1.4).
		{[]string{strings.Repeat("x", 192)}, "06750ADDEC6E07D61B2EAF2D24FAE87E"},
		{[]string{strings.Repeat("x", 200)}, "30A83621CE5422FBDFDD539777458C78"},
		{[]string{"xxx-xxxxx-xxxxxx.xxxxxxxxxx.xxxxxx.xx", "xxxx_xxxx_xxxxx_xxx_xx"}, "91DE277E8197840A3261751C712698E0"},
	} {
		if got := Uniq(tc.parts...); got != tc.want {
			t.Errorf("Uniq(%q) = %s, want %s", tc.parts, got, tc.want)
		}
	}
}

func TestEscapeNewlines(t *testing.T) {
	for _, tc := range []struct{ plain, escaped string }{
		{" test\n", ` test\n`},
		{"a\nb\n\nc", `a\nb\n\nc`},
		{`back\slash`, `back\slash`},
		{"a\\\nb", `a\\nb`},
		{"cr\r\n", "cr\r\\n"},
		{"", ""},
	} {
		if got := EscapeNewlines(tc.plain); got != tc.escaped {
			t.Errorf("EscapeNewlines(%q) = %q, want %q", tc.plain, got, tc.escaped)
		}
		if got := UnescapeNewlines(tc.escaped); got != tc.plain {
			t.Errorf("UnescapeNewlines(%q) = %q, want %q", tc.escaped, got, tc.plain)
		}
	}
	// Only backslash-n is special.
	if got := UnescapeNewlines(`\t\r\\`); got != `\t\r\\` {
		t.Errorf("UnescapeNewlines changed other escapes: %q", got)
	}
}

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"100.000050", ts(100, 50)},
		{"100.5", ts(100, 500000)},
		{"100", ts(100, 0)},
		{"100.", ts(100, 0)},
		{".5", ts(0, 500000)},
		{"1691536537.000288", ts(1691536537, 288)},
		{"1700000000.1234569", ts(1700000000, 123456)},
		{"-1.5", ts(-2, 500000)},
		{"", time.Time{}},
		{"0", time.Time{}},
		{"0.000000", time.Time{}},
		{"-0", time.Time{}},
		{"253402300799.999999", ts(253402300799, 999999)},
	} {
		got, err := ParseTime(tc.in)
		if err != nil {
			t.Errorf("ParseTime(%q): %v", tc.in, err)
			continue
		}
		if got != tc.want {
			t.Errorf("ParseTime(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{".", "-", "x", "1e9", " 1", "1 ", "+1", "1.2.3", "1,5", "0x10", "253402300800", "99999999999999999999999"} {
		if got, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) = %v, want error", bad, got)
		}
	}
}

func TestFormatTime(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Time{}, "0.000000"},
		{time.Unix(0, 0), "0.000000"},
		{ts(100, 50), "100.000050"},
		{time.Unix(1700000000, 123456789), "1700000000.123456"},
		{time.Unix(1700000000, 0).In(time.FixedZone("X", 3600)), "1700000000.000000"},
		{ts(-2, 500000), "-1.500000"},
	} {
		if got := FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
