package classicconf

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// asciiSpace is the white space trimmed from keys, values and list entries;
// classic C trims with isspace, which knows only ASCII.
const asciiSpace = " \t\r\n\v\f"

func trim(s string) string { return strings.Trim(s, asciiSpace) }

// asciiLower and asciiUpper change ASCII letters only and keep every other
// byte, as C's tolower/toupper do.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// parseBool implements the C rule: yes/on/true/1 and no/off/false/0, in any
// case. Anything else is an error (C silently keeps the default).
func parseBool(v string) (bool, error) {
	switch asciiLower(v) {
	case "yes", "on", "true", "1":
		return true, nil
	case "no", "off", "false", "0":
		return false, nil
	}
	return false, invalidf("value %q is not a boolean (want yes/on/true/1 or no/off/false/0)", v)
}

func isBoolWord(v string) bool {
	_, err := parseBool(v)
	return err == nil
}

func formatBool(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func parseInt(v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, invalidf("value %q is not an integer", v)
	}
	if n < lo || n > hi {
		switch {
		case hi == math.MaxInt:
			return 0, invalidf("value %q out of range (minimum %d)", v, lo)
		default:
			return 0, invalidf("value %q out of range %d..%d", v, lo, hi)
		}
	}
	return n, nil
}

// parseDuration accepts whole seconds or a Go duration with a unit, not
// negative and at most a day.
func parseDuration(v string) (time.Duration, error) {
	if v == "" {
		return 0, invalidf("value %q is not a duration", v)
	}
	if strings.Trim(v, "0123456789") == "" {
		v += "s"
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, invalidf("value %q is not a duration (seconds, or a number with a unit such as 2s or 500ms)", v)
	}
	if d < 0 || d > 24*time.Hour {
		return 0, invalidf("value %q out of range 0s..24h", v)
	}
	return d, nil
}

// parseFloat accepts plain decimal numbers (optionally with exponent) that
// are finite and at least lo. strconv alone would also take "NaN", "Inf",
// hex floats and underscores.
func parseFloat(v string, lo float64) (float64, error) {
	if v == "" || strings.Trim(v, "0123456789.eE+-") != "" {
		return 0, invalidf("value %q is not a number", v)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, invalidf("value %q is not a number", v)
	}
	if f < lo {
		return 0, invalidf("value %q out of range (minimum %g)", v, lo)
	}
	return f, nil
}

func formatFloat(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// splitList splits a comma list, trims the entries and drops empty ones.
func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = trim(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// appendUnique appends the entries not yet in list and returns a warning for
// every duplicate.
func appendUnique(list, entries []string, what string) ([]string, []string) {
	var warnings []string
	seen := make(map[string]bool, len(list)+len(entries))
	for _, e := range list {
		seen[e] = true
	}
	list = slices.Clip(list) // never append into an array another Config shares
	for _, e := range entries {
		if seen[e] {
			warnings = append(warnings, "duplicate "+what+" "+strconv.Quote(e)+" ignored")
			continue
		}
		seen[e] = true
		list = append(list, e)
	}
	return list, warnings
}

func containsString(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// parseServer normalizes "host[:port]": the port defaults to 4730 and an
// empty host means 0.0.0.0. Like C, the first ':' splits, so IPv6 literals
// are not supported.
func parseServer(s string) (string, error) {
	host, port, hasPort := strings.Cut(s, ":")
	host, port = trim(host), trim(port)
	if strings.HasPrefix(host, "[") {
		return "", invalidf("server %q: IPv6 literals are not supported", s)
	}
	for _, c := range []byte(host) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return "", invalidf("server %q: invalid host name %q", s, host)
		}
	}
	if host == "" {
		host = "0.0.0.0"
	}
	p := DefaultPort
	if hasPort && port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return "", invalidf("server %q: invalid port %q (want 1..65535)", s, port)
		}
		p = n
	}
	return host + ":" + strconv.Itoa(p), nil
}

func parseServers(v string) ([]string, error) {
	var out []string
	for _, e := range splitList(v) {
		s, err := parseServer(e)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func parseGroups(v string) ([]string, error) {
	groups := splitList(v)
	for _, g := range groups {
		if len(g) > MaxGroupNameLen {
			return nil, invalidf("group name %q is longer than %d characters", g, MaxGroupNameLen)
		}
	}
	return groups, nil
}

// expandEscapes turns the two-character sequences \t, \r and \n into TAB, CR
// and LF, scanning left to right; other backslashes stay.
func expandEscapes(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			var r byte
			switch s[i+1] {
			case 't':
				r = '\t'
			case 'r':
				r = '\r'
			case 'n':
				r = '\n'
			}
			if r != 0 {
				b.WriteByte(r)
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// escapeControls is the inverse of expandEscapes for values it produced.
func escapeControls(s string) string {
	return strings.NewReplacer("\t", `\t`, "\r", `\r`, "\n", `\n`).Replace(s)
}

// parseExport parses "<queue>:<returncode>:<callback>[,<callback>...]".
// A callback is a number or an NEBCALLBACK_* name; names are kept as
// written, only their shape is checked.
func parseExport(v string) (ExportSpec, error) {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 {
		return ExportSpec{}, invalidf("value %q: want <queue>:<returncode>:<callback>[,<callback>]", v)
	}
	spec := ExportSpec{Queue: trim(parts[0])}
	if spec.Queue == "" {
		return ExportSpec{}, invalidf("value %q: empty queue name", v)
	}
	rc, err := strconv.Atoi(trim(parts[1]))
	if err != nil {
		return ExportSpec{}, invalidf("value %q: return code %q is not an integer", v, trim(parts[1]))
	}
	spec.ReturnCode = rc
	for _, cb := range splitList(parts[2]) {
		if !isCallback(cb) {
			return ExportSpec{}, invalidf("value %q: callback %q is neither a number nor an NEBCALLBACK_* name", v, cb)
		}
		spec.Callbacks = append(spec.Callbacks, cb)
	}
	if len(spec.Callbacks) == 0 {
		return ExportSpec{}, invalidf("value %q: no callback given", v)
	}
	return spec, nil
}

func isCallback(s string) bool {
	if strings.Trim(s, "0123456789") == "" {
		return true
	}
	name, ok := strings.CutPrefix(s, "NEBCALLBACK_")
	return ok && name != "" && strings.Trim(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == ""
}

// keyFromFile applies the C keyfile rule: the first line only, at most 32
// characters, trailing white space (space, TAB, CR, LF) removed.
func keyFromFile(data []byte) string {
	if i := strings.IndexByte(string(data), '\n'); i >= 0 {
		data = data[:i]
	}
	if len(data) > 32 {
		data = data[:32]
	}
	return strings.TrimRight(string(data), " \t\r\n")
}

func itoa(n int) string { return strconv.Itoa(n) }
