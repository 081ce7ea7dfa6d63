package classicconf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that every error is an *Error
// with a line inside the input, that Sniff recognises what parses, and that
// a successful parse is stable: the configuration written back as text
// parses to the same configuration.
func FuzzParse(f *testing.F) {
	for _, name := range []string{"mod_gearman_neb.conf", "mod_gearman_worker.conf", "send_gearman.conf", "conf.d/10-groups.cfg", "conf.d/20-export.conf"} {
		data, err := os.ReadFile(filepath.Join("testdata", "good", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The same bytes as a broker line must not panic either.
		if err := (&Parser{FS: noFS{}}).ParseBrokerArgs(string(data)); err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != SourceBrokerLine {
				t.Fatalf("broker line: error %v (%T) is not a broker line *Error", err, err)
			}
		}

		p := &Parser{FS: noFS{}}
		err := p.Parse(bytes.NewReader(data), "fuzz.conf")
		if err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v (%T) is not an *Error", err, err)
			}
			if lines := strings.Count(string(data), "\n") + 1; e.Line < 1 || e.Line > lines {
				t.Fatalf("error line %d outside 1..%d: %v", e.Line, lines, err)
			}
			assertEqual(t, "config after error", p.Config(), Defaults())
			return
		}
		// What the parser accepts, Sniff takes for classic.
		if classic, found := Sniff(data); found && !classic {
			t.Fatalf("Sniff(%q) says not classic, but it parses", data)
		}
		c := p.Config()
		text := format(c)
		again, err := parseString(t, text)
		if err != nil {
			t.Fatalf("re-parse of %q: %v", text, err)
		}
		if !reflect.DeepEqual(comparable(again), comparable(c)) {
			t.Fatalf("unstable:\ninput %q\nfirst  %#v\nsecond %#v\ntext %q", data, c, again, text)
		}
		if text2 := format(again); text2 != text {
			t.Fatalf("format unstable:\n%q\n%q", text, text2)
		}
	})
}

// TestFormatRoundTrip runs the fuzz property over the sample files with
// their includes resolved.
func TestFormatRoundTrip(t *testing.T) {
	for _, name := range []string{"mod_gearman_neb.conf", "mod_gearman_worker.conf", "send_gearman.conf"} {
		c, err := ParseFile(filepath.Join("testdata", "good", name))
		if err != nil {
			t.Fatal(err)
		}
		again := mustParse(t, format(c))
		assertEqual(t, name, comparable(again), comparable(c))
	}
}
